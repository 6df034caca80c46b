"""Trials as Ray tasks: the second implementation of the executor interface.

The driver prepares each trial in the study directory as always, then ships what the command
reads — the trial directory's files, the snapshot files and the parent's outputs the journal
hashed — through Ray's object store (snapshot files are put once, and each node keeps one copy
by content).  A worker lays them out under a scratch root (/dev/shm) in the same relative
places, runs the command with the local
executor's own code (process group, timeouts, log cap, marker), and returns the trial
directory's files as bytes; the driver writes them into <study>/trials/<case>/ and collects as
for a local run.  The journal stays single-writer on the driver.  With `shared_dir = true` the
worker runs in the study directory itself (a cluster with a shared filesystem).

A lost worker or node is an attempt that failed as `worker_lost` (retryable); a tool that crashes
on a worker is still a tool crash.  Cancelling a task (a cancelled trial, a stop, a timeout on
the driver) interrupts the worker, which kills the tool's process group before it returns.  When
the driver dies, Ray ends its workers and their children (the tools' own sessions included); the
next worker to start on that node removes their scratch roots.
"""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
import zlib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import anyio

from noodle2.engine.errors import env_fault
from noodle2.engine.executors.base import Command, ExecResult, Job, Warm
from noodle2.engine.executors.contain import MARKER
from noodle2.engine.executors.process import Proc, run_command
from noodle2.engine.executors.warm import WarmLimits, WarmPool
from noodle2.engine.policy.failures import Outcome

LOCAL = "local"
PYTHON = "{noodle2-python}"  # the driver's interpreter in a command: the worker's own on the node
MAX_RETURN_BYTES = 512 << 20  # what a trial may send home
CANCEL_GRACE_S = 30.0  # for a cancelled task to kill its tool and return


def ray_module() -> Any:
    """Ray, imported with every node on 127.0.0.1 for a local instance (TOOLS.md)."""
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    import ray

    return ray


def dashboard_installed() -> bool:
    """Whether Ray's dashboard can start here (the `ray-dashboard` extra: ray[default])."""
    import importlib.util

    return all(importlib.util.find_spec(m) is not None for m in ("aiohttp", "aiohttp_cors", "opencensus"))


NO_DASHBOARD = "not running (pip install 'noodle2[ray-dashboard]' for it)"


def _probe(address: str, timeout_s: float = 5.0) -> None:
    """A cluster address that does not answer fails at once (OSError), not after the minutes
    Ray spends retrying it."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if host and port.isdigit():  # "auto" and other forms: Ray judges them
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout_s):
            pass


def connect(address: str) -> Any:
    ray = ray_module()
    if not ray.is_initialized():
        _probe(address)
        kw: dict[str, Any] = {"namespace": "noodle2", "log_to_driver": False, "configure_logging": False}
        if address == LOCAL:
            # Ray's default for a local instance (a token in ~/.ray) is right; its notice about it is
            # not the operator's business in the engine's output (#22.17)
            logging.getLogger("ray._private.authentication.authentication_token_setup").addFilter(
                lambda r: not r.getMessage().startswith("Token authentication is enabled for this Ray cluster"))
            # a new instance, never a stale one; its dashboard (ray[default]) on this machine only
            ray.init(address="local", include_dashboard=dashboard_installed(), dashboard_host="127.0.0.1", **kw)
        else:
            ray.init(address=address, **kw)
    return ray


class RayExecutor:
    def __init__(self, study_dir: Path, address: str = LOCAL, shared_dir: bool = False,
                 warm: WarmLimits | None = None) -> None:
        self.dir = study_dir
        self.warm = warm  # each Ray worker process keeps its own warm workers
        self.address = address
        self.shared_dir = shared_dir
        self.ray = connect(address)
        self.task = self.ray.remote(run_remote)  # options go in one .options() call per submission
        # which of this study's tasks a worker has started: Ray's own counts mix every study's
        self.counter_name = "noodle2-running-" + hashlib.sha256(str(study_dir.resolve()).encode()).hexdigest()[:16]
        self.counter = self.ray.remote(num_cpus=0)(_Running).options(
            name=self.counter_name, namespace="noodle2", get_if_exists=True).remote()
        self._puts: dict[tuple[str, int, int], Any] = {}  # snapshot file -> its object, put once
        self.containment = "Ray worker process groups (environment marker)"

    # --- the executor interface -------------------------------------------------------------
    async def run(self, job: Job) -> tuple[ExecResult, Any]:
        cmd = await anyio.to_thread.run_sync(job.prepare)
        spec = await anyio.to_thread.run_sync(self._bundle, cmd, job)
        # retries are the engine's, journaled; SPREAD: trials share the cluster's nodes out instead
        # of Ray's default, which packs one node to half its CPUs before using the next
        opts: dict[str, Any] = {"num_cpus": 1, "max_retries": 0, "scheduling_strategy": "SPREAD",
                                "name": job.name or cmd.cwd.name}  # Ray's dashboard and `ray list tasks` say which trial
        if cmd.memory_limit_mb:
            opts["memory"] = cmd.memory_limit_mb << 20
        ref = self.task.options(**opts).remote(spec)
        try:
            back = await ref
        except anyio.get_cancelled_exc_class():
            self.ray.cancel(ref, force=False)  # the worker kills the tool's group, then returns
            with anyio.CancelScope(shield=True), anyio.move_on_after(CANCEL_GRACE_S) as waited:
                try:
                    await ref
                except Exception:  # noqa: BLE001 - cancelled or lost: either way it is over
                    pass
            if waited.cancelled_caught:  # a worker that does not answer: end its process (a stop never hangs)
                self.ray.cancel(ref, force=True)
            raise
        except Exception as e:  # noqa: BLE001 - Ray's errors for a dead worker, node or object
            return self._lost(cmd, e), None

        def home() -> tuple[ExecResult, Any]:
            try:
                result = self._unpack(cmd, back)
            except OSError as e:  # a full disk here is the machine's fault, never the trial's
                raise env_fault(e, f"writing {cmd.cwd.name}'s files home from Ray") or e from None
            return result, (job.collect(cmd, result) if job.collect else None)

        return await anyio.to_thread.run_sync(home)

    def queue_ahead(self, max_parallel: int) -> int:
        """Trials the engine may keep waiting in Ray's queue beyond max_parallel, so a worker
        starts its next trial the moment one ends instead of after a lease round trip (about
        30 ms on a loaded 3-node loopback cluster).  Ray's CPU accounting then bounds the
        running tools by the cluster's CPUs, so only when those are ≤ max_parallel."""
        cpus = int(self.ray.cluster_resources().get("CPU", 0))
        return max_parallel if 0 < cpus <= max_parallel else 0

    def close(self) -> None:
        self._puts.clear()

    def infeasible(self, memory_limit_mb: int | None, cpus: float = 1.0) -> str | None:
        """Why no node can run a trial (its CPU and memory request), with the largest node's
        figures; None when one can.  Ray would keep such a task queued forever."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        if not nodes:
            return "the cluster has no live node"
        most_cpu = max(r.get("CPU", 0.0) for r in nodes)
        most_mem = max(r.get("memory", 0.0) for r in nodes)
        want = (memory_limit_mb or 0) << 20
        if most_cpu < cpus:
            return f"a trial asks for {cpus:g} CPU and the largest node has {most_cpu:g}"
        if want and not any(r.get("CPU", 0.0) >= cpus and r.get("memory", 0.0) >= want for r in nodes):
            return (f"a trial asks for {memory_limit_mb} MB ([execution] memory_limit_mb) and the largest node "
                    f"offers {int(most_mem) >> 20} MB to Ray tasks ({most_cpu:g} CPUs)")
        return None

    # --- cluster facts for the console and the journal ------------------------------------------
    def status(self) -> dict[str, Any]:
        ray = self.ray
        nodes = [n for n in ray.nodes() if n.get("Alive")]
        total = ray.cluster_resources()
        free = ray.available_resources()
        try:
            url = ray._private.worker.global_worker.node.webui_url or ""  # noqa: SLF001 - no public API
        except Exception:  # noqa: BLE001
            url = ""
        if url and not url.startswith("http"):
            url = f"http://{url}"
        if not url and not dashboard_installed():
            url = NO_DASHBOARD
        try:
            here = int(ray.get(self.counter.running.remote(), timeout=5))
        except Exception:  # noqa: BLE001 - without the count the watcher falls back to Ray's CPU figures
            here = None
        return {"address": self.address, "nodes": len(nodes), "running_here": here,
                "cpus": total.get("CPU", 0.0), "cpus_busy": total.get("CPU", 0.0) - free.get("CPU", 0.0),
                "memory_gb": round(total.get("memory", 0.0) / 2**30, 1), "dashboard": url,
                "node_list": [{"id": n["NodeID"][:8], "host": n.get("NodeManagerAddress", ""),
                               "cpus": n.get("Resources", {}).get("CPU", 0.0)} for n in nodes]}

    # --- shipping ----------------------------------------------------------------------------
    def _rel(self, p: Path) -> str:
        return os.path.relpath(p, self.dir)

    def _bundle(self, cmd: Command, job: Job) -> dict[str, Any]:
        argv = [PYTHON if a == sys.executable else a for a in cmd.argv]  # a node runs its own Python
        spec: dict[str, Any] = {
            "argv": argv, "cwd": self._rel(cmd.cwd), "stdout": self._rel(cmd.stdout), "stderr": self._rel(cmd.stderr),
            # only what the command sets beyond this process's environment: a node keeps its own PATH
            "env": {k: v for k, v in (cmd.env or {}).items() if k != MARKER and os.environ.get(k) != v},
            "marker": (cmd.env or {}).get(MARKER, str(cmd.cwd)), "memory_limit_mb": cmd.memory_limit_mb,
            "log_cap_bytes": cmd.log_cap_bytes, "timeouts": (job.soft_timeout_s, job.hard_timeout_s),
            "shared_root": str(self.dir) if self.shared_dir else None, "files": {},
            "name": job.name or cmd.cwd.name, "counter": self.counter_name,
            "warm": None if cmd.warm is None or self.warm is None else
            {"key": cmd.warm.key, "argv": [_portable(a) for a in cmd.warm.argv],
             "limits": [self.warm.max_trials, self.warm.max_rss_mb]}}
        if self.shared_dir:
            return spec
        for p in sorted(Path(x) for x in job.inputs):
            st = p.stat()
            key = (str(p), st.st_size, st.st_mtime_ns)
            if "snapshot" in Path(self._rel(p)).parts[:1]:  # shared by every trial: one object
                if key not in self._puts:
                    data = p.read_bytes()
                    self._puts[key] = (self.ray.put(data), hashlib.sha256(data).hexdigest())
                spec["files"][self._rel(p)] = self._puts[key]
            else:
                spec["files"][self._rel(p)] = _pack(p.read_bytes())
        for p in sorted(cmd.cwd.rglob("*")):
            if p.is_file() and not p.is_symlink():
                spec["files"][self._rel(p)] = _pack(p.read_bytes())
        return spec

    def _unpack(self, cmd: Command, back: dict[str, Any]) -> ExecResult:
        if back.get("files") is not None:
            for rel, data in back["files"].items():
                dest = (cmd.cwd / rel).resolve()
                if cmd.cwd.resolve() not in dest.parents:
                    continue  # a worker writes only inside its trial directory
                dest.parent.mkdir(parents=True, exist_ok=True)
                dest.write_bytes(zlib.decompress(data))
        return ExecResult(Outcome(**back["outcome"]), back["started"], back["ended"], back["cpu_s"], back["maxrss_kb"],
                          cmd, node=back["node"], warm_trial=back.get("warm_trial", 0),
                          warm_refused=back.get("warm_refused", ""),
                          escaped=tuple(back.get("escaped") or ()))

    def _lost(self, cmd: Command, e: BaseException) -> ExecResult:
        now = time.time()
        return ExecResult(Outcome(worker_lost=f"{type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"),
                          now, now, command=cmd)


def _pack(data: bytes) -> bytes:
    """Netlists shrink about 5x at level 1 (under a millisecond for mac16's): a bundle small
    enough for Ray to pass inline skips two object-store hops per trial."""
    return zlib.compress(data, 1)


def _scratch() -> str | None:
    """Trial roots on tmpfs when the worker has one: directories are made per trial."""
    return "/dev/shm" if os.path.isdir("/dev/shm") and os.access("/dev/shm", os.W_OK) else None


def _cached(ref: Any, sha: str, ray: Any) -> Path:
    """This node's copy of a shared input (a snapshot file), by content: fetched once per node,
    kept for later studies with the same files; unused for two days, it goes."""
    d = _cache_dir()
    path = d / sha
    if path.exists():
        os.utime(path)
        return path
    tmp = d / f".{sha}.{os.getpid()}.tmp"
    tmp.write_bytes(ray.get(ref))
    tmp.chmod(0o444)
    os.replace(tmp, path)  # another worker may have written it too: same bytes
    stale = time.time() - 2 * 86400
    for old in d.iterdir():
        try:
            if old.stat().st_mtime < stale:
                old.unlink()
        except OSError:
            pass
    return path


def _cache_dir() -> Path:
    """/dev/shm/n2ray-cache-<uid>, only if it is ours alone: a directory someone else made there
    could hand a trial a Liberty of their choosing (then a private one, for this worker)."""
    d = Path(_scratch() or tempfile.gettempdir()) / f"n2ray-cache-{os.getuid()}"
    try:
        d.mkdir(mode=0o700)
    except FileExistsError:
        pass
    st = os.lstat(d)
    if stat.S_ISDIR(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077:
        return d
    return Path(tempfile.mkdtemp(prefix=f"n2ray-{os.getpid()}-cache-", dir=_scratch()))


_REAPED = False


def _reap_once() -> None:
    """Scratch directories of workers that died mid-trial (a driver killed, a force-cancel):
    their tools are gone (Ray ends a dead worker's children), their files would stay."""
    global _REAPED
    if _REAPED:
        return
    _REAPED = True
    for d in Path(_scratch() or tempfile.gettempdir()).glob("n2ray-*-*"):
        pid = d.name.split("-")[1]
        if not pid.isdigit():
            continue  # the cache
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(d, ignore_errors=True)
        except PermissionError:
            pass  # another user's worker, alive


def run_remote(spec: dict[str, Any]) -> dict[str, Any]:
    """The Ray task: lay out the inputs, run the command as the local executor would, send back
    the trial directory.  Interrupted by ray.cancel, it kills the tool's group first."""
    import ray

    _reap_once()
    root = (Path(spec["shared_root"]) if spec["shared_root"]
            else Path(tempfile.mkdtemp(prefix=f"n2ray-{os.getpid()}-", dir=_scratch())))
    try:
        for rel, data in spec["files"].items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, tuple):  # a snapshot file (object, sha256): fetched once per node, then linked
                dest.symlink_to(_cached(data[0], data[1], ray))
            else:
                dest.write_bytes(zlib.decompress(data))
        cwd = root / spec["cwd"]
        cwd.mkdir(parents=True, exist_ok=True)
        before = None if spec["shared_root"] else _scratch_manifest(root, cwd)  # shared: the driver's manifest
        _count(ray, spec, "start")
        env = {**os.environ, **spec["env"], MARKER: spec["marker"]}  # the trial's path: a resume on this host finds it
        argv = [sys.executable if a == PYTHON else a for a in spec["argv"]]
        warm = spec.get("warm")
        cmd = Command(argv, cwd, root / spec["stdout"], root / spec["stderr"], env, spec["memory_limit_mb"],
                      spec["log_cap_bytes"], contain_key="ray",
                      warm=Warm(warm["key"], tuple(_local(a) for a in warm["argv"])) if warm else None)
        proc = Proc()
        box: dict[str, Any] = {}

        def body() -> None:
            try:
                if warm:
                    box["result"] = _warm_pool(WarmLimits(*warm["limits"])).run(cmd, proc, tuple(spec["timeouts"]))
                else:
                    box["result"] = run_command(cmd, proc, tuple(spec["timeouts"]))
            except BaseException as e:  # noqa: BLE001 - reported to the driver below
                box["error"] = e
                proc.done.set()
        t = threading.Thread(target=body, daemon=True)
        t.start()
        try:
            while not proc.done.wait(0.2):
                pass
        except KeyboardInterrupt:  # ray.cancel: end the tool before the task ends
            proc.send(signal.SIGKILL, cancel=True)
            proc.done.wait()
        t.join()
        if "error" in box:
            raise box["error"]
        res: ExecResult = box["result"]
        escaped = [] if before is None else _scratch_escapes(before, _scratch_manifest(root, cwd))
        _log_trial(spec, res, root, escaped)
        files = None
        if not spec["shared_root"]:
            files, size = {}, 0
            for p in sorted(cwd.rglob("*")):
                if p.is_file() and not p.is_symlink():
                    size += p.stat().st_size
                    if size > MAX_RETURN_BYTES:
                        break
                    files[str(p.relative_to(cwd))] = _pack(p.read_bytes())
        return {"outcome": asdict(res.outcome), "started": res.started, "ended": res.ended, "cpu_s": res.cpu_s,
                "maxrss_kb": res.maxrss_kb, "files": files, "warm_trial": res.warm_trial, "escaped": escaped,
                "warm_refused": res.warm_refused,
                "node": f"{socket.gethostname()}:{ray.get_runtime_context().get_node_id()[:8]}"}
    finally:
        _count(ray, spec, "end")
        if not spec["shared_root"]:
            shutil.rmtree(root, ignore_errors=True)


class _Running:
    """A named actor per study (no CPU): the keys of its tasks a worker is running."""

    def __init__(self) -> None:
        self.keys: set[str] = set()

    def start(self, key: str) -> None:
        self.keys.add(key)

    def end(self, key: str) -> None:
        self.keys.discard(key)

    def running(self) -> int:
        return len(self.keys)


def _count(ray: Any, spec: dict[str, Any], what: str) -> None:
    """Tell the study's counter a task started or ended (fire and forget; a lost count only
    makes the status fall back to Ray's CPU figures)."""
    if not spec.get("counter"):
        return
    try:
        actor = ray.get_actor(spec["counter"], namespace="noodle2")
        getattr(actor, what).remote(f"{spec['name']}@{spec['marker']}")
    except Exception:  # noqa: BLE001
        pass


def _log_trial(spec: dict[str, Any], res: ExecResult, root: Path, escaped: list[str]) -> None:
    """The trial's outcome and its tool's last lines, in this worker's log under the trial's name."""
    name = spec.get("name") or spec["cwd"]
    o = res.outcome
    print(f"[noodle2 {name}] rc={o.rc} signal={o.signal} timed_out={o.timed_out} wall={res.ended - res.started:.2f}s"
          + (f" escaped={escaped}" if escaped else ""), flush=True)
    for log in (spec["stdout"], spec["stderr"]):
        try:
            with open(root / log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 4096))
                lines = f.read().decode(errors="replace").splitlines()[-20:]
        except OSError:
            continue
        for line in lines:
            print(f"[noodle2 {name}] {Path(log).name}: {line}", flush=True)


def _scratch_manifest(root: Path, cwd: Path) -> dict[str, tuple[int, int]]:
    """What each file of a scratch root but the trial's own directory is: (size, mtime_ns) of a
    file, (size, inode) of a snapshot link's target in the node's cache (other tasks touch its
    mtime to keep it; a write into it shows as a new size or, replaced, a new inode)."""
    out: dict[str, tuple[int, int]] = {}
    skip = str(cwd)
    for dirpath, dirnames, filenames in os.walk(root):
        if dirpath == skip or dirpath.startswith(skip + os.sep):
            dirnames[:] = []
            continue
        for name in filenames:
            p = os.path.join(dirpath, name)
            try:
                link = os.path.islink(p)
                st = os.stat(p)
            except OSError:
                continue
            out[os.path.relpath(p, root)] = (st.st_size, st.st_ino if link else st.st_mtime_ns)
    return out


def _scratch_escapes(before: dict[str, tuple[int, int]], after: dict[str, tuple[int, int]]) -> list[str]:
    out = [f"{p} {'removed' if p not in after else 'changed'}" for p, st in before.items() if after.get(p) != st]
    return sorted(out + [f"{p} created" for p in after if p not in before])


_POOL: WarmPool | None = None  # this Ray worker process's warm workers: they outlive its tasks


def _warm_pool(limits: WarmLimits) -> WarmPool:
    global _POOL
    if _POOL is None or _POOL.limits != limits:
        if _POOL is not None:  # another study's limits: its idle workers would outlive it here
            _POOL.close()
        _POOL = WarmPool(limits, None)
    return _POOL


PACKAGE = str(Path(__file__).resolve().parents[1])  # noodle2.engine's folder on this machine


def _portable(arg: str) -> str:
    """A file of the package in a command: named relative to the package, for a node whose
    installation is elsewhere."""
    return "{noodle2-engine}" + arg[len(PACKAGE):] if arg.startswith(PACKAGE + os.sep) else arg


def _local(arg: str) -> str:
    return PACKAGE + arg[len("{noodle2-engine}"):] if arg.startswith("{noodle2-engine}") else arg


def _tools_here(tools: list[str]) -> dict[str, str | None]:
    return {t: shutil.which(t) for t in tools}


def _round_trip(ray: Any, trip: Any, where: Any) -> tuple[str, bool]:
    """One tiny `sta` trial on one node, through run_remote as every trial goes."""
    spec = {"argv": ["sta", "-no_init", "-no_splash", "check.tcl"], "cwd": "trials/check",
            "stdout": "trials/check/stdout.log", "stderr": "trials/check/stderr.log", "env": {},
            "marker": "ray-check", "memory_limit_mb": None, "log_cap_bytes": 1 << 20, "timeouts": (60, 70),
            "shared_root": None, "files": {"trials/check/check.tcl": _pack(b"puts N2OK\nexit\n")}}
    t = time.monotonic()
    try:
        back = ray.get(trip.options(num_cpus=1, max_retries=0, scheduling_strategy=where).remote(spec), timeout=180)
    except Exception as e:  # noqa: BLE001 - said on the node's line
        return f"trial round trip failed: {type(e).__name__}: {str(e).splitlines()[-1][:200] if str(e) else ''}", False
    good = b"N2OK" in zlib.decompress((back.get("files") or {}).get("stdout.log", _pack(b"")))
    return f"trial round trip {'ok' if good else 'FAILED'} in {time.monotonic() - t:.2f} s", good


def check(address: str, tools: list[str]) -> tuple[list[str], bool]:
    """`noodle2 ray-check`: the cluster's nodes, the tools on each, and one trial round trip per
    node through the same path trials take (files in, run_remote, files back)."""
    t0 = time.monotonic()
    ray = connect(address)  # first: Ray must see RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER before it loads
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    lines = [f"connected to {address} in {time.monotonic() - t0:.1f} s"]
    ok = True
    nodes = [n for n in ray.nodes() if n.get("Alive")]
    probe = ray.remote(_tools_here)
    trip = ray.remote(run_remote)
    for n in nodes:
        cpus = n.get("Resources", {}).get("CPU", 0.0)
        mem = n.get("Resources", {}).get("memory", 0.0) / 2**30
        where = NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)
        try:
            found = ray.get(probe.options(num_cpus=0, scheduling_strategy=where).remote(tools), timeout=120)
        except Exception as e:  # noqa: BLE001 - e.g. noodle2 not importable there
            lines.append(f"node {n.get('NodeManagerAddress', '?')}/{n['NodeID'][:8]}: cannot run noodle2 there "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})")
            ok = False
            continue
        missing = [t for t, path in found.items() if path is None]
        line = (f"node {n.get('NodeManagerAddress', '?')}/{n['NodeID'][:8]}: {cpus:g} CPU, {mem:.1f} GB; "
                + ", ".join(f"{t} {'ok' if p else 'MISSING'}" for t, p in found.items()))
        if cpus and found.get("sta"):
            said, good = _round_trip(ray, trip, where)
            line += "; " + said
            ok &= good
        ok &= not missing or not cpus  # a head without CPUs runs no trials
        lines.append(line)
    total = ray.cluster_resources()
    lines.insert(1, f"{len(nodes)} node(s), {total.get('CPU', 0):g} CPUs, {total.get('memory', 0) / 2**30:.1f} GB")
    return lines, ok
