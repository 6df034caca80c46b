"""The Ray executor (#13) on a real multi-node cluster on loopback: a head without CPUs and two
1-CPU worker nodes (ray.cluster_utils.Cluster, every node on 127.0.0.1).  A real OpenSTA study of
three stages (the last placed and routed, so trials run long enough to lose one); a worker node
removed mid-stage; the driver SIGKILLed mid-stage and resumed; each compared with a local run."""
from __future__ import annotations

import glob
import importlib.util
import os
import re
import shutil
import signal
import subprocess
import sys

import orjson
import pytest

from tests.conftest import ROOT, cli_env
from tests.waiting import journal_lines, wait_until

pytestmark = pytest.mark.skipif(importlib.util.find_spec("ray") is None
                                or any(shutil.which(t) is None for t in ("sta", "yosys", "qflow")),
                                reason="needs Ray (the ray extra) and OpenSTA, Yosys, qflow (.ci/setup installs them)")

MAC8 = ROOT / "sample_studies" / "designs" / "mac8"
STUDY = f"""
[study]
name = "rayst"
safety_domain = "guarded"
seed = 9

[design]
top = "mac8"
tech = "osu018"
rtl = ["{MAC8 / 'mac8.v'}"]
sdc = "{MAC8 / 'mac8.sdc'}"

[execution]
{{execution}}
max_parallel = 2
retries = 2
soft_timeout_s = 300

[[stages]]
name = "explore"
mode = "sta"
trials = 4
survivors = 2
ecos = ["resize_critical", "buffer_fanout", "pin_swap", "clone_driver"]

[[stages]]
name = "refine"
mode = "sta"
trials = 3
survivors = 2
ecos = ["pin_swap", "resize_critical", "buffer_fanout"]

[[stages]]
name = "route"
mode = "route"
trials = 2
survivors = 1
ecos = ["noop"]
"""


@pytest.fixture(scope="module")
def cluster():
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1 (TOOLS.md)
    from ray.cluster_utils import Cluster

    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
    workers = [c.add_node(num_cpus=1), c.add_node(num_cpus=1)]
    c.wait_for_nodes()
    yield c, workers
    c.shutdown()


def study_file(tmp_path, execution: str, name: str):
    path = tmp_path / f"{name}.toml"
    path.write_text(STUDY.replace("{execution}", execution))
    return path


def events(d):
    return [orjson.loads(x) for x in (d / "journal.jsonl").read_bytes().splitlines()]


def outcome(d) -> dict:
    """What a study decided: survivors per stage and every finished trial's timing."""
    evs = events(d)
    return {"survivors": [e["survivors"] for e in evs if e["type"] == "survivors_chosen"],
            "metrics": {e["case_id"]: (e["metrics"]["wns_ps"], e["metrics"]["tns_ps"])
                        for e in evs if e["type"] == "trial_finished"}}


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("local")
    d = tmp / "study"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(study_file(tmp, "", "local")), "--unattended",
                        "--study-dir", str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return outcome(d)


def _start(tmp_path, address, name):
    d = tmp_path / name
    path = study_file(tmp_path, f'executor = "ray"\naddress = "{address}"', name)
    p = subprocess.Popen([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                         cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return p, d


def test_a_worker_node_lost_mid_stage_and_the_study_still_equals_a_local_run(cluster, local_run, tmp_path):
    c, workers = cluster
    p, d = _start(tmp_path, c.address, "lost")
    # journaled as started is not yet running: a trial may still wait for its lease in Ray's queue
    wait_until(lambda: all(_alive(str(d / "trials" / f"mac8_2_{i}")) for i in (0, 1)) or p.poll() is not None,
               "both route trials' tools running on the workers", progress=lambda: journal_lines(d))
    assert p.poll() is None
    gone = workers[1].node_id[:8]
    c.remove_node(workers[1])  # one of the two route trials loses its node
    try:
        _lost_node_run(p, d, local_run, gone)
    finally:  # back to two workers for the next tests, whatever this one found
        workers[1] = c.add_node(num_cpus=1)
        c.wait_for_nodes()


def _lost_node_run(p, d, local_run, gone: str):
    out, err = p.communicate(timeout=600)
    assert p.returncode == 0, out[-2000:] + err[-2000:]
    evs = events(d)
    lost = [e for e in evs if e["type"] == "trial_failed" and e["failure"]["type"] == "worker_lost"]
    assert len(lost) == 1 and lost[0]["retry"] is True, [e["failure"] for e in evs if e["type"] == "trial_failed"]
    assert outcome(d) == local_run  # same survivors, same numbers, to the picosecond
    nodes = {e["resources"].get("node") for e in evs if e["type"] == "trial_finished"}
    assert all(n and n.split(":")[0] for n in nodes)  # every trial says where it ran
    status = [e for e in evs if e["type"] == "cluster_status"]
    assert status and status[0]["nodes"] == 3 and status[0]["cpus"] == 2
    assert out.count("◎ Ray ") == 1 and "3 nodes" in out and "CPUs" in out
    # #23: the report says, per node, trials run, busy time, utilisation, and which node was lost
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "report", str(d)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    md = (d / "report" / "summary.md").read_text().split("## Ray nodes", 1)[1].split("\n## ", 1)[0]
    rows = [ln.split("|")[1:-1] for ln in md.splitlines() if ln.startswith("| 127.0.0.1/")]
    ran = {n.split(":")[-1] for n in nodes}
    # the two CPU nodes; the lost one may have finished nothing (Ray may have placed every earlier
    # trial on the other, as on a loaded machine its resource report can lag)
    assert len(rows) == 2 and {r[0].strip().split("/")[1] for r in rows} == ran | {gone}, md
    assert sum(int(r[1]) for r in rows) == len([e for e in evs if e["type"] == "trial_finished"])
    assert [(r[0].strip().split("/")[1], r[4].strip()) for r in rows if r[4].strip()] == [(gone, "lost")], md
    assert all(r[3].strip().endswith("%") for r in rows)
    assert "1 trial attempt(s) lost their worker" in md


def test_sigkill_of_the_driver_mid_stage_then_resume_equals_a_local_run(cluster, local_run, tmp_path):
    c, _ = cluster
    p, d = _start(tmp_path, c.address, "killed")
    wait_until(lambda: any(_alive(str(d / "trials" / f"mac8_2_{i}")) for i in (0, 1)) or p.poll() is not None,
               "a route trial's tool running on a worker", progress=lambda: journal_lines(d))
    assert p.poll() is None
    scratch = _scratch_roots([pid for i in (0, 1) for pid in _alive(str(d / "trials" / f"mac8_2_{i}"))])
    assert scratch, "the route tools run in the workers' scratch directories"
    p.send_signal(signal.SIGKILL)
    p.communicate()
    # Ray ends a dead driver's workers and their children, the tools' own sessions included
    wait_until(lambda: not any(_alive(str(d / "trials" / f"mac8_2_{i}")) for i in (0, 1)), "the route tools gone")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "resume", str(d)], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert outcome(d) == local_run
    finished = [e["case_id"] for e in events(d) if e["type"] == "trial_finished"]
    assert len(finished) == len(set(finished))  # nothing that finished ran again
    # the killed trials' scratch directories are gone: the task's own cleanup if Ray let it run,
    # else the reap when the resume's workers started.  Only this test's: another suite on the
    # machine may have killed workers of its own at this moment
    assert not [x for x in scratch if os.path.exists(x)], scratch


def test_with_a_shared_dir_workers_run_in_place_and_equal_a_local_run(cluster, local_run, tmp_path):
    c, _ = cluster
    d = tmp_path / "shared"
    path = study_file(tmp_path, f'executor = "ray"\naddress = "{c.address}"\nshared_dir = true', "shared")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert outcome(d) == local_run
    assert (d / "trials" / "mac8_2_0" / "pnr").is_dir()  # the routed trial's files, written where it ran
    # a Ray worker process keeps its warm OpenSTA workers from one task to the next
    warm = [e["resources"].get("warm_trial", 0) for e in events(d) if e["type"] == "trial_finished"]
    assert max(warm) >= 2, warm
    import ray

    from noodle2.engine.executors.base import Command, Job
    from noodle2.engine.executors.ray_exec import RayExecutor

    t = d / "trials" / "mac8_2_0"
    cmd = Command(["sta", "run.tcl"], t, t / "stdout.log", t / "stderr.log")
    try:  # what a task is sent: nothing but where to run
        spec = RayExecutor(d, c.address, shared_dir=True)._bundle(cmd, Job(lambda: cmd, None, 1, 2, [str(t / "run.tcl")]))
    finally:
        ray.shutdown()
    assert spec["shared_root"] == str(d) and spec["files"] == {} and spec["cwd"] == "trials/mac8_2_0"


def test_a_node_whose_sta_cannot_start_a_warm_worker_runs_its_trials_cold(cluster, local_run, tmp_path):
    """A node's OpenSTA that cannot load the worker program (here an `sta` first on PATH that
    swaps worker.tcl for a script that errors) is the installation's fault: the trials run cold
    there and measure what the local run measured, each says why, and the log says it once."""
    c, _ = cluster
    bad, wrapper = tmp_path / "bad.tcl", tmp_path / "bin" / "sta"
    bad.write_text('error "no such OpenSTA command"\n')
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nfor a in "$@"; do last=$a; done\ncase "$last" in *worker.tcl) '
                       f'exec {shutil.which("sta")} -no_init -no_splash -exit {bad} ;; esac\nexec {shutil.which("sta")} "$@"\n')
    wrapper.chmod(0o755)
    # a node keeps its own PATH, unless the study's [tool] env sets one
    tool = f'[tool]\nenv = {{ PATH = "{wrapper.parent}:{os.environ["PATH"]}" }}\n\n[execution]'
    text = STUDY.replace("{execution}", f'executor = "ray"\naddress = "{c.address}"').replace("[execution]", tool)
    path, d = tmp_path / "refused.toml", tmp_path / "refused"
    path.write_text(text[:text.index('[[stages]]\nname = "route"')])  # the sta stages: the ones a worker serves
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    got, want = outcome(d), local_run
    assert got["survivors"] == want["survivors"][:2] and got["metrics"] == {
        case: m for case, m in want["metrics"].items() if not case.startswith("mac8_2_")}
    finished = [e["resources"] for e in events(d) if e["type"] == "trial_finished"]
    assert len(finished) == 8 and all("no such OpenSTA command" in res["warm_refused"] for res in finished)
    assert not any("warm_trial" in res for res in finished)
    logs = [e["msg"] for e in events(d) if e["type"] == "log" and "warm worker" in e["msg"]]
    assert len(logs) == 1 and "could not start" in logs[0], logs


def test_ray_check_lists_nodes_tools_and_a_round_trip(cluster):
    c, _ = cluster
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "ray-check", c.address], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "node(s), 2 CPUs" in r.stdout and r.stdout.count("trial round trip ok") == 2
    assert "127.0.0.1/" in r.stdout and "sta ok, yosys ok" in r.stdout and "ray-check: ok" in r.stdout
    bad = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "ray-check", c.address, "--tools", "sta,no-such-tool"],
                         cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert bad.returncode == 1 and "no-such-tool MISSING" in bad.stdout


FAKE = ROOT / "tests" / "fake_tools"
FAULT = """
[study]
name = "rayfault"
[design]
top = "x"
[tool]
kind = "command"
command = ["{tool}"]
metrics_file = ""
[execution]
executor = "ray"
address = "{address}"
max_parallel = 2
retries = 1
{timeouts}
[[stages]]
name = "one"
trials = 2
survivors = 1
ecos = ["pin_swap"]
"""


def _fault_study(tmp_path, tool, address, timeouts, name):
    """The base case passes (its no-op run must, or the study is blocked); ECO trials run `tool`."""
    wrapper = tmp_path / f"{name}.sh"
    wrapper.write_text(f'#!/bin/sh\nif [ "$N2_ECO" = "noop" ]; then exit 0; fi\nexec {FAKE / tool}\n')
    wrapper.chmod(0o755)
    path = tmp_path / f"{name}.toml"
    path.write_text(FAULT.format(tool=wrapper, address=address, timeouts=timeouts))
    return path, tmp_path / name


def _scratch_roots(pids: list[int]) -> set[str]:
    """The per-trial scratch directories (<tmpfs or tmp>/n2ray-<worker pid>-*) these tools run in."""
    roots = set()
    for pid in pids:
        try:
            m = re.match(r"(.*?/n2ray-\d+-[^/]+)", os.readlink(f"/proc/{pid}/cwd"))
        except OSError:
            continue
        if m:
            roots.add(m.group(1))
    return roots


def _alive(marker: str) -> list[int]:
    """Live (not zombie) processes a trial's marker names, on this host (the loopback cluster)."""
    from noodle2.engine.executors.contain import marked_pids

    out = []
    for pid in marked_pids({marker}):
        try:
            if open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] != "Z":
                out.append(pid)
        except OSError:
            pass
    return out


def test_timeouts_and_crashes_on_a_worker_are_the_tools_not_the_nodes(cluster, tmp_path):
    c, _ = cluster
    path, d = _fault_study(tmp_path, "hang.sh", c.address, "soft_timeout_s = 0.5\nhard_timeout_s = 1.5", "hang")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 1, r.stdout[-2000:] + r.stderr[-2000:]
    failed = [e for e in events(d) if e["type"] == "trial_failed"]
    assert {e["failure"]["type"] for e in failed} == {"timeout"}  # each attempt, retried once: still the tool's
    for t in ("x_0_0", "x_0_1"):  # the hung tool's backgrounded child died with its group, on the worker
        child = int((d / "trials" / t / "stdout.log").read_text().split()[1])
        wait_until(lambda: not _alive(str(d / "trials" / t)), f"{t}'s processes gone (child {child})")
    path, d = _fault_study(tmp_path, "segfault.sh", c.address, "", "crash")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                       cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    failed = [e["failure"] for e in events(d) if e["type"] == "trial_failed"]
    assert failed and {f["type"] for f in failed} == {"tool_crash"}, failed
    assert "about to crash" in failed[0]["excerpt"]  # the worker's stderr came home


def test_cancel_and_stop_reach_the_remote_tools_process_group(cluster, tmp_path):
    from noodle2.console.follow import send_control

    c, _ = cluster
    path, d = _fault_study(tmp_path, "hang.sh", c.address, "soft_timeout_s = 600", "cancel")
    p = subprocess.Popen([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir", str(d)],
                         cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wait_until(lambda: all(_alive(str(d / "trials" / t)) for t in ("x_0_0", "x_0_1")) or p.poll() is not None,
               "both hung tools running on the workers")
    send_control(d, "cancel", "x_0_0")
    wait_until(lambda: any(e["type"] == "trial_cancelled" for e in events(d)), "the cancel journaled")
    wait_until(lambda: not _alive(str(d / "trials" / "x_0_0")), "the cancelled tool and its child gone")
    assert _alive(str(d / "trials" / "x_0_1"))  # the other trial still runs
    send_control(d, "stop")
    out, err = p.communicate(timeout=120)
    assert p.returncode == 3, out[-2000:] + err[-2000:]
    wait_until(lambda: not _alive(str(d / "trials" / "x_0_1")), "the stopped tool and its child gone")


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a small tmpfs needs root")
def test_a_full_disk_on_the_driver_is_the_machines_fault_and_resume_equals_a_clean_run(cluster, tmp_path):
    """The trials' files come home to a 2.2 MB study disk that fills: exit 3, N2-E208, nothing
    charged to an ECO; resume after the disk grows equals an uninterrupted local run."""
    from tests.test_real_hardening import cli, full_disk_then_resume, small_study

    c, _ = cluster
    ref = tmp_path / "ref"
    r = cli("run", str(small_study(tmp_path / "l", trials=(6, 4))), "--unattended", "--study-dir", str(ref))
    assert r.returncode == 0, r.stderr[-1500:]
    path = small_study(tmp_path / "s", trials=(6, 4), extra=f'executor = "ray"\naddress = "{c.address}"')
    full_disk_then_resume(path, tmp_path, ref)  # the disk fills as workers' files come home (or as trials start)


def test_a_snapshot_cache_someone_else_could_write_is_not_used(tmp_path, monkeypatch):
    from noodle2.engine.executors import ray_exec

    monkeypatch.setattr(ray_exec, "_scratch", lambda: str(tmp_path))
    mine = ray_exec._cache_dir()
    assert mine == tmp_path / f"n2ray-cache-{os.getuid()}" and (mine.stat().st_mode & 0o777) == 0o700
    mine.chmod(0o777)  # as if another user had made it first, open to all
    other = ray_exec._cache_dir()
    assert other != mine and other.name.startswith(f"n2ray-{os.getpid()}-cache-")
    mine.chmod(0o700)
    mine.rename(tmp_path / "real")
    (tmp_path / f"n2ray-cache-{os.getuid()}").symlink_to(tmp_path / "real")  # a link is not ours either
    assert ray_exec._cache_dir() != tmp_path / f"n2ray-cache-{os.getuid()}"


def test_an_address_nobody_answers_is_a_coded_error_at_once(tmp_path):
    import socket

    with socket.socket() as s:  # a port that was free a moment ago
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    path = study_file(tmp_path, f'executor = "ray"\naddress = "127.0.0.1:{port}"', "nobody")
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(tmp_path / "d")], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and f"N2-E211 execution.address: cannot reach the Ray cluster at 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr and "ray start --head" in r.stderr
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "ray-check", f"127.0.0.1:{port}"], cwd=ROOT, env=cli_env(),
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 1 and "N2-E211" in r.stderr and "Traceback" not in r.stderr


def test_a_local_instance_started_by_noodle2_keeps_rays_notices_out_of_the_output(tmp_path):
    """#22.17: headless output carried Ray's token-authentication notice; a local instance (the
    default address) runs the study and prints only the study."""
    from tests.test_real_hardening import small_study

    path = small_study(tmp_path / "s", trials=(2,), extra='executor = "ray"')
    env = {**cli_env(), "HOME": str(tmp_path)}  # Ray's token goes to this test's ~/.ray
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(tmp_path / "d")], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert "execute  ray" in r.stdout and "✓ study small complete" in r.stdout
    assert "Token authentication" not in r.stdout + r.stderr and r.stderr.strip() == "", r.stderr[-2000:]
    # #23: its dashboard when ray[default] is installed (on 127.0.0.1), else what to install for it
    from noodle2.engine.executors.ray_exec import NO_DASHBOARD, dashboard_installed

    url = next(e["dashboard"] for e in events(tmp_path / "d") if e["type"] == "cluster_status")
    assert url.startswith("http://127.0.0.1:") if dashboard_installed() else url == NO_DASHBOARD
    assert f"dashboard {url}" in r.stdout


def test_ray_tasks_are_named_counted_per_study_and_an_impossible_request_is_refused(cluster, tmp_path):
    """#23: a memory request no node meets is refused before anything runs (N2-E217, the largest
    node's figures); while another driver's tasks hold every CPU, this study's tasks count as
    queued, not running; each task carries its case's name into the workers' logs."""
    import ray

    from tests.test_real_hardening import small_study

    c, _ = cluster
    too_big = small_study(tmp_path / "big", trials=(2,), extra=f'executor = "ray"\naddress = "{c.address}"\n'
                                                                 'memory_limit_mb = 1000000')
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(too_big), "--unattended", "--study-dir",
                        str(tmp_path / "bigd")], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "N2-E217" in r.stderr and "1000000 MB" in r.stderr and "largest node" in r.stderr
    assert not (tmp_path / "bigd" / "trials").exists() or not any((tmp_path / "bigd" / "trials").iterdir())

    flag = tmp_path / "release"
    ray.init(address=c.address, namespace="other-study", log_to_driver=False)
    try:
        @ray.remote(num_cpus=1)
        def hog(path: str) -> None:  # another study's task holding a CPU until released
            import os
            import time
            while not os.path.exists(path):
                time.sleep(0.05)

        held = [hog.remote(str(flag)) for _ in range(2)]
        wait_until(lambda: ray.available_resources().get("CPU", 0) == 0, "the other driver holding every CPU")
        path = small_study(tmp_path / "s", trials=(3,), extra=f'executor = "ray"\naddress = "{c.address}"')
        d = tmp_path / "d"
        p = subprocess.Popen([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended",
                              "--study-dir", str(d)], cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        queued = lambda: [e for e in (events(d) if (d / "journal.jsonl").exists() else [])  # noqa: E731
                          if e["type"] == "cluster_status" and e["queued"] >= 1]
        wait_until(lambda: queued() or p.poll() is not None, "this study's trials waiting behind the other's")
        assert p.poll() is None and all(e["running"] == 0 and e["cpus_busy"] == 2 for e in queued())  # not its own
        flag.touch()
        ray.get(held)
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, out[-2000:] + err[-2000:]
    finally:
        flag.touch()
        ray.shutdown()
    plan = [t for e in events(d) if e["type"] == "stage_started" for t in e["plan"]]
    logs = "".join(open(f, errors="replace").read() for f in glob.glob(f"{c.head_node.get_logs_dir_path()}/worker-*.out"))
    for t in plan:
        assert f":task_name:{t['case_id']} {t['eco']}\n" in logs, t["case_id"]  # Ray's own name for the task
        assert f"[noodle2 {t['case_id']} {t['eco']}] rc=0" in logs, t["case_id"]  # its outcome under that name


def test_an_escaped_write_on_a_workers_scratch_copy_is_caught_there(cluster, tmp_path):
    """#23: under Ray a trial runs in a scratch copy on its worker; a write outside its directory
    there is caught by the worker's own manifest and charged to that trial alone."""
    from tests.test_custom import escape_study

    c, _ = cluster
    path = tmp_path / "esc.toml"
    path.write_text(escape_study(f'[execution]\nexecutor = "ray"\naddress = "{c.address}"\n'))
    d = tmp_path / "d"
    r = subprocess.run([sys.executable, "-m", "noodle2.console.cli", "run", str(path), "--unattended", "--study-dir",
                        str(d)], cwd=ROOT, env=cli_env(), capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    evs = events(d)
    escaper = next(t["case_id"] for e in evs if e["type"] == "stage_started" for t in e["plan"] if t["eco"] == "escape")
    failed = {e["case_id"]: e["failure"] for e in evs if e["type"] == "trial_failed"}
    assert set(failed) == {escaper} and failed[escaper]["type"] == "escaped_write", failed
    assert "snapshot/extra.txt" in failed[escaper]["reason"] and "other trials" not in failed[escaper]["reason"]
    assert not (d / "snapshot" / "extra.txt").exists()  # the scratch copy took the write, not the study
