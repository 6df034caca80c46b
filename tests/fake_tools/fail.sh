#!/bin/sh
# Fault injection: the tool exits nonzero with a message.
echo "Error: cannot read liberty file" >&2
exit 7
