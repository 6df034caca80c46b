#!/usr/bin/env python3
# Fault injection for warm workers (executors/warm.py): speaks the worker protocol (a trial
# directory per line on stdin; "n2-ready" once, then "n2-done <rc>" per trial on the N2_REPLY_FD
# pipe) and does what the directory's `do` file says: ok, rc3, hang, ignore_term, crash, flood,
# stray (leaves a child), grow (keeps 96 MB more resident), wait (until a file `go` appears
# beside `do`).
import os
import signal
import subprocess
import sys
import time

kept = []  # what `grow` holds on to
reply = os.fdopen(int(os.environ["N2_REPLY_FD"]), "w", buffering=1)
reply.write("n2-ready\n")
for line in sys.stdin:
    d = line.rstrip("\n")
    do = open(os.path.join(d, "do")).read().strip()
    with open(os.path.join(d, "stdout.log"), "a") as out:
        out.write(f"pid {os.getpid()} ran {do}\n")
    if do == "hang":
        time.sleep(3600)
    elif do == "ignore_term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)
    elif do == "crash":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif do == "flood":
        with open(os.path.join(d, "stdout.log"), "a") as out:
            while True:
                out.write("x" * 65536)
                out.flush()
    elif do == "wait":
        while not os.path.exists(os.path.join(d, "go")):
            time.sleep(0.01)
    elif do == "grow":
        kept.append(b"x" * (96 << 20))  # written, so resident
    elif do == "stray":
        subprocess.Popen(["sleep", "3600"], start_new_session=True)
    reply.write(f"n2-done {3 if do == 'rc3' else 0}\n")
