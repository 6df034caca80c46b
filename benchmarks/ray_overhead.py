"""The Ray executor against the local one, measured in one process.

    .venv/bin/python benchmarks/ray_overhead.py [N] [STA_TRIALS]

1. N `/bin/true` trials (default 500), max_parallel 2: the engine with the local executor, then
   with the Ray executor on a local Ray instance; Ray's start-up is timed apart.  Per-trial
   overhead = (ray - local) / N.
2. STA_TRIALS real `sta` trials (default 200, mac16) on a 3-node loopback cluster (a head without
   CPUs, two 1-CPU workers), against the local executor at the same 2 CPUs: parallel efficiency
   = local time / Ray time.
3. The floor under (2): the same `sta` runs as bare subprocesses (a 2-thread pool) against bare
   Ray tasks submitted all at once on that cluster — what Ray itself reaches on this machine,
   where the cluster's daemons share the trials' CPUs.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"  # every node on 127.0.0.1

from harness import run_study

from benchmarks.engine_overhead import STUDY as TRUE_STUDY  # noqa: E402 - the /bin/true study, one text

ROOT = Path(__file__).resolve().parents[1]
ROUNDS = 2
STA = f"""
[study]
name = "throughput"
safety_domain = "guarded"
[design]
top = "mac16"
tech = "osu018"
rtl = ["{ROOT}/sample_studies/designs/mac16/mac16.v"]
sdc = "{ROOT}/sample_studies/designs/mac16/mac16.sdc"
[execution]
max_parallel = 2
{{ex}}
[verify]
equivalence = "off"
[[stages]]
name = "all"
mode = "sta"
trials = {{n}}
survivors = 1
ecos = ["resize_critical", "pin_swap", "buffer_fanout", "clone_driver"]
"""


def true_study(n: int, execution: str) -> str:
    return TRUE_STUDY.format(n=n).replace("max_parallel = 2", f"max_parallel = 2\n{execution}")


def run(text: str, tmp: Path, name: str) -> float:
    eng, status, wall = run_study(text, tmp / f"{name}.toml", tmp / "studies")
    assert status == "complete", (status, eng.state.reason)
    run.last_dir = eng.dir  # type: ignore[attr-defined]
    return wall


def sta_in(trial_dir: str) -> None:
    """One bare `sta` run of a finished trial's script, in place (the floor's unit of work)."""
    import subprocess

    subprocess.run(["sta", "-no_init", "-no_splash", "-exit", "run.tcl"], cwd=trial_dir, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def trial_dirs(study_dir: Path) -> list[str]:
    dirs = sorted(str(p) for p in (study_dir / "trials").iterdir() if (p / "run.tcl").exists())
    for p in dirs:
        os.chmod(p, 0o755)  # finished trials are read-only; the floor's runs write in place
        for f in Path(p).iterdir():
            os.chmod(f, 0o644)
    return dirs


def bare_local(dirs: list[str]) -> float:
    from concurrent.futures import ThreadPoolExecutor

    t = time.perf_counter()
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(sta_in, dirs))
    return time.perf_counter() - t


def bare_ray(dirs: list[str], ray) -> float:
    task = ray.remote(num_cpus=1)(sta_in)
    t = time.perf_counter()
    ray.get([task.remote(p) for p in dirs])
    return time.perf_counter() - t


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    sta_n = int(sys.argv[2]) if len(sys.argv) > 2 else 200
    import ray

    with tempfile.TemporaryDirectory() as t:
        tmp = Path(t)
        local = run(true_study(n, ""), tmp, "local")
        t0 = time.perf_counter()
        ray.init(address="local", include_dashboard=False, log_to_driver=False, namespace="noodle2", configure_logging=False)
        startup = time.perf_counter() - t0
        remote = run(true_study(n, 'executor = "ray"'), tmp, "ray")
        ray.shutdown()
        print(f"{n} /bin/true trials, max_parallel 2")
        print(f"{'executor':<34}{'seconds':>9}{'ms/trial':>10}")
        print(f"{'local':<34}{local:>9.2f}{local / n * 1e3:>10.2f}")
        print(f"{'ray (local instance)':<34}{remote:>9.2f}{remote / n * 1e3:>10.2f}")
        print(f"{'ray start-up (apart)':<34}{startup:>9.2f}")
        print(f"Ray executor overhead: {(remote - local) / n * 1e3:+.2f} ms per trial above local")

        from ray.cluster_utils import Cluster

        sta_local, sta_ray, bare, bare_ray_s = [], [], [], []
        for r in range(ROUNDS):  # this VM's speed swings 10-20 % minute to minute: alternate, keep the best
            sta_local.append(run(STA.format(n=sta_n, ex=""), tmp, f"sta_local{r}"))  # no Ray running
            dirs = trial_dirs(run.last_dir)  # type: ignore[attr-defined]
            bare.append(bare_local(dirs))
            c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0})
            c.add_node(num_cpus=1)
            c.add_node(num_cpus=1)
            c.wait_for_nodes()
            try:
                sta_ray.append(run(STA.format(n=sta_n, ex=f'executor = "ray"\naddress = "{c.address}"'), tmp,
                                   f"sta_ray{r}"))
                bare_ray_s.append(bare_ray(dirs, ray))
            finally:
                ray.shutdown()
                c.shutdown()
        lo, ra, b, br = min(sta_local), min(sta_ray), min(bare), min(bare_ray_s)
        print(f"\n{sta_n} real sta trials (mac16), 2 CPUs, best of {ROUNDS} alternating rounds")
        print(f"{'local executor':<34}{lo:>9.2f}{lo / sta_n * 1e3:>10.1f} ms/trial")
        print(f"{'ray, 3-node loopback cluster':<34}{ra:>9.2f}{ra / sta_n * 1e3:>10.1f} ms/trial")
        print(f"parallel efficiency of Ray against local at the same CPUs: {lo / ra:.2f}")
        print("\nthe floor: the same sta runs without noodle2")
        print(f"{'bare subprocesses, 2 threads':<34}{b:>9.2f}")
        print(f"{'bare Ray tasks, all submitted':<34}{br:>9.2f}")
        print(f"Ray's own efficiency on this machine (its daemons share the 2 CPUs): {b / br:.2f}")
        print(f"noodle2 above the bare runs: local executor {lo / b:.2f}x, Ray executor {ra / br:.2f}x")

if __name__ == "__main__":
    main()
