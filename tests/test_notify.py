"""[notify] (#12) against a real HTTP server on 127.0.0.1: success, a slow server (timeout), a 500
then a 200 (retry), an unreachable server; a command; every attempt journaled, the study never
held back by a notification that fails."""
from __future__ import annotations

import http.server
import json
import socket
import subprocess
import sys
import threading

import orjson
import pytest

from tests.conftest import ROOT, cli_env, fake_study

STAGES = '[[stages]]\nname = "one"\ntrials = 2\nsurvivors = 1\necos = ["resize_critical"]\n'


class Server:
    """Answers each POST with the next status in `script` ("slow" holds the request until the
    test ends); keeps every payload."""

    def __init__(self, script: list) -> None:
        self.script, self.payloads, self.release = list(script), [], threading.Event()
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                outer.payloads.append(json.loads(body))
                step = outer.script.pop(0) if outer.script else 200
                if step == "slow":
                    outer.release.wait()  # longer than the client's timeout: it gives up first
                    return
                self.send_response(step)
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *a):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    made = []

    def make(script):
        made.append(Server(script))
        return made[-1]
    yield make
    for s in made:
        s.close()


def run(tmp_path, notify: str, name: str = "n"):
    path = fake_study(tmp_path, stages=STAGES, extra=f"[notify]\n{notify}\n")
    d = tmp_path / name
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    sent = [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]
    return r, [e for e in sent if e["type"] == "notification_sent"], d


def test_a_webhook_gets_the_payload_once(tmp_path, server):
    s = server([200])
    r, sent, d = run(tmp_path, f'webhook = "{s.url}"\nbackoff_s = 0')
    assert r.returncode == 0, r.stderr
    assert [(e["channel"], e["trigger"], e["attempt"], e["ok"], e["detail"]) for e in sent] == [
        ("webhook", "complete", 1, True, "HTTP 200")]
    [p] = s.payloads
    assert p["study"] == "fake" and p["status"] == "complete" and p["trigger"] == "complete"
    assert p["best"]["metrics"]["wns_ps"] > p["base"]["metrics"]["wns_ps"]
    assert p["report"] == str(d / "report" / "summary.html") and (d / "report" / "summary.html").is_file()
    assert p["trials"] == {"finished": 2, "planned": 2} and p["study_dir"] == str(d)


def test_a_500_then_a_200_is_retried(tmp_path, server):
    s = server([500, 200])
    r, sent, _ = run(tmp_path, f'webhook = "{s.url}"\nbackoff_s = 0.01\nreport = false')
    assert r.returncode == 0
    assert [(e["attempt"], e["ok"], e["detail"]) for e in sent] == [
        (1, False, "HTTP 500 Internal Server Error"), (2, True, "HTTP 200")]


def test_a_slow_server_times_out_every_attempt_and_the_study_still_completes(tmp_path, server):
    s = server(["slow", "slow"])
    r, sent, d = run(tmp_path, f'webhook = "{s.url}"\ntimeout_s = 0.3\nretries = 1\nbackoff_s = 0\nreport = false')
    assert r.returncode == 0 and "complete" in r.stdout
    assert [(e["attempt"], e["ok"]) for e in sent] == [(1, False), (2, False)]
    assert all("timed out" in e["detail"] or "Timeout" in e["detail"] for e in sent), sent
    status = json.loads(subprocess.run([sys.executable, "-m", "noodle2.console.cli", "status", str(d), "--json"], cwd=ROOT,
                                       env=cli_env(), capture_output=True, text=True).stdout)
    assert status["status"] == "complete"


def test_an_unreachable_server_is_journaled_not_fatal(tmp_path):
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r, sent, _ = run(tmp_path, f'webhook = "http://127.0.0.1:{port}/x"\nretries = 2\nbackoff_s = 0\nreport = false')
    assert r.returncode == 0
    assert [(e["attempt"], e["ok"]) for e in sent] == [(1, False), (2, False), (3, False)]
    assert "Connection refused" in sent[0]["detail"] or "ConnectionRefused" in sent[0]["detail"]


def test_a_command_gets_the_payload_on_stdin_and_only_chosen_triggers_notify(tmp_path):
    out = tmp_path / "got.json"
    script = tmp_path / "hook.sh"
    script.write_text(f'#!/bin/sh\ncat > "{out}"\necho "$N2_NOTIFY_TRIGGER" >> "{out}.trigger"\n')
    script.chmod(0o755)
    r, sent, _ = run(tmp_path, f'command = ["{script}"]\nreport = false')
    assert r.returncode == 0 and [(e["channel"], e["ok"]) for e in sent] == [("command", True)]
    assert json.loads(out.read_text())["status"] == "complete"
    assert (tmp_path / "got.json.trigger").read_text() == "complete\n"
    r, sent, _ = run(tmp_path, f'command = ["{script}"]\non = ["failed"]\nreport = false', name="n2")
    assert r.returncode == 0 and sent == []  # complete is not in `on`


def test_a_bad_webhook_is_a_coded_validation_error(tmp_path):
    path = fake_study(tmp_path, stages=STAGES, extra='[notify]\nwebhook = "ftp://x"\n')
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "validate", str(path)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True)
    assert r.returncode == 2 and "N2-E120" in r.stderr and "notify.webhook" in r.stderr


def test_a_stage_abort_and_the_failed_study_both_notify(tmp_path, server):
    from tests.test_engine import _wrapper

    s = server([200, 200])
    path = fake_study(tmp_path, stages=STAGES, command=_wrapper(tmp_path, "exit 7"),
                      extra=f'[notify]\nwebhook = "{s.url}"\non = ["stage_aborted", "failed"]\nreport = false\n')
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(tmp_path / "a")], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    assert sorted(p["trigger"] for p in s.payloads) == ["failed", "stage_aborted"]
    aborted = next(p for p in s.payloads if p["trigger"] == "stage_aborted")
    assert aborted["reason"].startswith("stage one aborted:")


def test_a_notify_command_that_never_reads_its_stdin_is_delivered_not_a_crash():
    """Under load a notify command that exits before reading the payload made the write fail
    (BrokenResourceError) and took the engine down with a traceback.  A payload larger than a
    pipe makes that happen every time."""
    import anyio

    from noodle2.engine.run.notify import run_command

    payload = {"trigger": "study_finished", "status": "complete", "study_dir": "/x", "pad": "x" * (1 << 20)}
    got = anyio.run(run_command, ["true"], payload, 30.0)
    assert got.ok and got.detail == "exit 0"
    got = anyio.run(run_command, ["sh", "-c", "exit 4"], payload, 30.0)
    assert not got.ok and got.detail.startswith("exit 4") and got.retry
