#!/bin/sh
# Fault injection: the tool and a child of it hang; the whole group must die on timeout.
sleep 300 &
echo "child $!" 
sleep 300
