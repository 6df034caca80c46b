#!/bin/sh
# Fault injection: the tool crashes with SIGSEGV.
echo "about to crash" >&2
kill -SEGV $$
