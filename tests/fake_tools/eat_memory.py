#!/usr/bin/env python3
# Fault injection: the tool allocates until the memory limit stops it.
chunks = []
while True:
    chunks.append(bytearray(64 << 20))
