"""Shared by the benchmarks in bench/ (ingest, targets, dashboard, api): ports, the processes a bench starts (and
only those are ever stopped), itsmd's temp config, /metrics parsing, /proc readings (memory, CPU shares), running
../shared/tools/loadgen.py pinned to its cores, and a bulk fixture of stored incidents. Every server is started on,
and every request sent to, 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"  # the only address a bench ever starts servers on or sends requests to
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOOLS = ROOT.parent / "shared" / "tools"
ITSMD_INGEST_PATH = "/api/v1/webhooks/alertmanager"

_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


class BenchError(Exception):
    """The bench could not run (not: itsmd was slow)."""


# --------------------------------------------------------------------------------------------- processes
def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def http(method: str, port: int, path: str, token: str | None = None, timeout: float = 5.0) -> tuple[int, bytes]:
    req = urllib.request.Request(f"http://{HOST}:{port}{path}", method=method)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with _no_proxy.open(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


@dataclass
class Server:
    name: str
    port: int
    url: str  # the ingest URL
    ready_path: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    headers: list[str] = field(default_factory=list)

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


class Processes:
    """Every process this script starts; stop_all() ends them (process group, TERM then KILL)."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, cmd: list[str], *, cwd: Path, log_path: Path | None = None) -> subprocess.Popen[bytes]:
        out = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115 - kept for the child
        try:
            p = subprocess.Popen(cmd, cwd=cwd, stdout=out, stderr=subprocess.STDOUT if log_path else out,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        finally:
            if log_path:
                out.close()  # type: ignore[union-attr]
        self.procs.append(p)
        return p

    @staticmethod
    def stop(p: subprocess.Popen[Any], grace: float = 10.0) -> None:
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, signal.SIGTERM)  # its own session: only what we started
        except ProcessLookupError:
            return
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)

    def stop_all(self) -> None:
        for p in reversed(self.procs):
            try:
                self.stop(p)
            except Exception as e:  # keep going: every process must be ended
                log(f"could not stop pid {p.pid}: {e}")


def pinned(cpus: str | None, cmd: list[str]) -> list[str]:
    return ["taskset", "-c", cpus, *cmd] if cpus else cmd


def wait_ready(server: Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise BenchError(f"{server.name} exited with {server.proc.returncode} before it was ready:\n"
                             f"{server.log_tail()}")
        try:
            status, body = http("GET", server.port, server.ready_path, timeout=2.0)
            if status == 200:
                return
            last = f"{status} {body[:80]!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.2)
    raise BenchError(f"{server.name} not ready after {timeout:.0f}s ({last}):\n{server.log_tail()}")


def itsmd_command(arg: str | None) -> list[str]:
    if arg:
        return arg.split()
    beside = Path(sys.executable).parent / "itsmd"  # the console script of the interpreter running us
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    found = shutil.which("itsmd")
    if not found:
        raise BenchError("itsmd not found; install the project (pip install -e '.[dev]') or pass --itsmd")
    return [found]


def write_itsmd_dir(work: Path, port: int, synchronous: str | None, *, database: str = "sqlite:///itsmd.db",
                    name: str = "itsmd", auth: bool = True) -> tuple[Path, str, str]:
    """WORK/NAME/itsmd.yaml listening on HOST:port with bearer auth (an ingest and a viewer token, each in a
    0600 file beside it); returns (config path, ingest token, viewer token). auth=False leaves the `auth:`
    section out (no authentication: allowed on a loopback listen address; the tokens are then accepted and
    ignored)."""
    d = work / name
    d.mkdir()
    ingest_token, view_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    for fname, tok in (("bench.token", ingest_token), ("view.token", view_token)):
        f = d / fname
        f.write_text(tok + "\n")
        f.chmod(0o600)
    lines = [
        f"listen: {HOST}:{port}",
        f"database: {database}",
    ]
    if auth:
        lines += [
            "auth:",
            "  tokens:",
            "    - {name: bench, role: ingest, token_file: bench.token}",
            "    - {name: benchview, role: viewer, token_file: view.token}",
        ]
    if synchronous:
        lines += ["storage:", f"  sqlite_synchronous: {synchronous}"]
    cfg = d / "itsmd.yaml"
    cfg.write_text("\n".join(lines) + "\n")
    return cfg, ingest_token, view_token


# ------------------------------------------------------------------------------------------------- itsmd
_METRIC = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def itsmd_counters(port: int) -> dict[str, float]:
    status, body = http("GET", port, "/metrics")
    if status != 200:
        raise BenchError(f"itsmd /metrics answered {status}")
    sums: dict[str, float] = defaultdict(float)
    for line in body.decode().splitlines():
        m = _METRIC.match(line)
        if m and 'outcome="expired"' not in (m.group(2) or ""):  # expiry is not a delivery
            with contextlib.suppress(ValueError):
                sums[m.group(1)] += float(m.group(3))
    return dict(sums)


def wait_pipeline_drained(port: int, timeout: float) -> float | None:
    """Seconds until the pipeline processed every accepted alert (None on timeout): so a backlog left by one
    measurement does not steal CPU from the next."""
    t0 = time.monotonic()
    while True:
        c = itsmd_counters(port)
        accepted = c.get("itsmd_alerts_accepted_total")
        if accepted is None:  # older itsmd: no accepted counter
            accepted = c.get("itsmd_alerts_received_total", 0.0) - c.get("itsmd_alerts_quarantined_total", 0.0)
        if c.get("itsmd_alert_deliveries_total", 0.0) >= accepted and not c.get("itsmd_inbox_depth"):
            return round(time.monotonic() - t0, 2)
        if time.monotonic() - t0 > timeout:
            return None
        time.sleep(0.1)


def writer_stats(before: dict[str, float], after: dict[str, float]) -> dict[str, float | None]:
    """Group-commit batches of itsmd's writer between two scrapes (warm-up included; pipeline batches too)."""
    def delta(name: str) -> float:
        return after.get(name, 0.0) - before.get(name, 0.0)
    n = delta("itsmd_writer_batch_size_count")
    return {"batches": n,
            "mean_batch": round(delta("itsmd_writer_batch_size_sum") / n, 1) if n else None,
            "mean_batch_ms": round(1000 * delta("itsmd_writer_batch_duration_seconds_sum") / n, 2) if n else None}


def proc_memory(pid: int) -> dict[str, int]:
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                out[key] = int(value.split()[0])  # kB
    except OSError:
        pass
    return out


def python_pid(p: subprocess.Popen[bytes]) -> int:
    """The itsmd interpreter's pid: Popen's pid after taskset / pyenv shims exec'ed into it (they keep the pid),
    else the first python descendant."""
    def is_python(pid: int) -> bool:
        try:
            return "python" in os.readlink(f"/proc/{pid}/exe")
        except OSError:
            return False
    if is_python(p.pid):
        return p.pid
    todo = [p.pid]
    while todo:
        pid = todo.pop()
        try:
            kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for k in map(int, kids):
            if is_python(k):
                return k
            todo.append(k)
    return p.pid

# ------------------------------------------------------------------------------------------------ loadgen
_CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of the process (all its threads), in clock ticks."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])
    except (OSError, ValueError, IndexError):
        return None


def parse_cpus(spec: str | None) -> list[int]:
    """taskset -c list ("0", "0,2", "0-3") -> cpu numbers."""
    out: list[int] = []
    for part in (spec or "").split(","):
        if "-" in part:
            lo, hi = part.split("-", 1)
            out.extend(range(int(lo), int(hi) + 1))
        elif part.strip():
            out.append(int(part))
    return out


def cores_busy_ticks(cpus: list[int]) -> int | None:
    """Busy ticks (all but idle, iowait and steal) of those cpus, from /proc/stat."""
    if not cpus:
        return None
    want = {f"cpu{c}" for c in cpus}
    busy = 0
    try:
        for line in Path("/proc/stat").read_text().splitlines():
            f = line.split()
            if f and f[0] in want:
                v = [int(x) for x in f[1:8]]  # user nice system idle iowait irq softirq
                busy += sum(v) - v[3] - v[4]
    except (OSError, ValueError):
        return None
    return busy


class CpuSampler(threading.Thread):
    """Samples every 50 ms the target's CPU ticks and the busy ticks of the cores it is pinned to, so the
    shares over loadgen's timed window (known only afterwards: elapsed_s before loadgen exits) can be computed.
    "other" = what else ran on the server cores meanwhile (other processes on a shared machine)."""

    def __init__(self, pid: int, cpus: list[int], loadgen_cpus: list[int]) -> None:
        super().__init__(daemon=True)
        self.pid = pid
        self.cpus = cpus
        self.loadgen_cpus = loadgen_cpus
        self.samples: list[tuple[float, int, int | None, int | None]] = []
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            t = cpu_ticks(self.pid)
            if t is not None:
                self.samples.append((time.monotonic(), t, cores_busy_ticks(self.cpus),
                                     cores_busy_ticks(self.loadgen_cpus)))
            self.done.wait(0.05)

    def shares(self, start: float, end: float, loadgen_cpu_pct: float | None) -> dict[str, float | None]:
        """Target CPU %, other processes' CPU % on the target's cores and on loadgen's (100 = one core)."""
        out: dict[str, float | None] = {"server_cpu_pct": None, "other_on_server_cores_pct": None,
                                        "other_on_loadgen_cores_pct": None}
        if not self.samples:
            return out
        a = min(self.samples, key=lambda s: abs(s[0] - start))
        b = min(self.samples, key=lambda s: abs(s[0] - end))
        secs = b[0] - a[0]
        if secs < 0.2:
            return out
        own = 100.0 * (b[1] - a[1]) / _CLK_TCK / secs
        out["server_cpu_pct"] = round(own, 1)
        if a[2] is not None and b[2] is not None:
            out["other_on_server_cores_pct"] = round(max(0.0, 100.0 * (b[2] - a[2]) / _CLK_TCK / secs - own), 1)
        if a[3] is not None and b[3] is not None and loadgen_cpu_pct is not None:
            out["other_on_loadgen_cores_pct"] = round(
                max(0.0, 100.0 * (b[3] - a[3]) / _CLK_TCK / secs - loadgen_cpu_pct), 1)
        return out


def run_loadgen_cmd(procs: Processes, server: Server, options: list[str], *, tools_dir: Path,
                    server_cpus: str | None, loadgen_cpus: str | None, wait_s: float,
                    work: Path) -> tuple[dict[str, Any], float]:
    """Run loadgen.py --engine raw OPTIONS against server (its headers added), pinned to loadgen_cpus, while
    sampling the server's CPU; returns loadgen's JSON result with the CPU shares over its timed window, and
    the time.monotonic() at which loadgen ended (its timed window is [ended - elapsed_s, ended])."""
    cmd = pinned(loadgen_cpus, [
        sys.executable, str(tools_dir / "loadgen.py"), "--url", server.url, "--engine", "raw", *options])
    for h in server.headers:
        cmd += ["--header", h]
    out_path = work / "loadgen.out"
    err_path = work / "loadgen.err"
    sampler = CpuSampler(python_pid(server.proc), parse_cpus(server_cpus), parse_cpus(loadgen_cpus))
    sampler.start()
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, stdin=subprocess.DEVNULL, start_new_session=True)
        procs.procs.append(p)
        try:
            p.wait(wait_s)
            ended = time.monotonic()
        except subprocess.TimeoutExpired:
            procs.stop(p)
            raise BenchError(f"loadgen against {server.name} did not finish") from None
        finally:
            if p.poll() is None:  # interrupted (Ctrl-C, SIGTERM): end loadgen too, it is ours
                procs.stop(p)
            procs.procs.remove(p)
            sampler.done.set()
            sampler.join()
    lines = out_path.read_text().strip().splitlines()
    if p.returncode != 0 or not lines:
        raise BenchError(f"loadgen against {server.name} failed ({p.returncode}): "
                         f"{err_path.read_text()[-800:]}")
    res: dict[str, Any] = json.loads(lines[-1])
    if res.get("elapsed_s"):
        gen = 100.0 * float(res["gen_cpu_s"]) / float(res["elapsed_s"]) if "gen_cpu_s" in res else None
        res.update(sampler.shares(ended - float(res["elapsed_s"]), ended, gen))
    if server.proc.poll() is not None:
        raise BenchError(f"{server.name} died during the run:\n{server.log_tail()}")
    return res, ended


# ------------------------------------------------------------------------------------------------ machine

def machine() -> dict[str, Any]:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        load = []
    return {"nproc": os.cpu_count(), "affinity": len(os.sched_getaffinity(0)), "cpu_model": model,
            "loadavg_start": load, "python": sys.version.split()[0], "itsmd_tree": git_state()}


def git_state() -> dict[str, Any]:
    """The commit measured and the files that differ from it (numbers belong to that exact tree)."""
    def git(*a: str) -> str:
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True, timeout=10).stdout.rstrip()
        except (OSError, subprocess.SubprocessError):
            return ""
    return {"head": git("rev-parse", "--short", "HEAD").strip(),
            "changed": [line[3:] for line in git("status", "--porcelain").splitlines()]}



# --------------------------------------------------------------------------------------------- incidents
_START = datetime(2026, 1, 1, tzinfo=UTC)
_STATES = ["closed"] * 6 + ["resolved"] * 3 + ["open", "acknowledged"]
_BATCH = 5_000


def incident_row(i: int, rng: random.Random) -> dict[str, Any]:
    """Incident number i of the bulk fixture: one every 30 s from 2026-01-01, every tenth open (the newest
    included), the rest mostly resolved or closed; 50 services svc-0..svc-49 (i % 50), P1..P5, 200 rules."""
    opened = _START + timedelta(seconds=30 * i)
    state = "open" if i % 10 == 0 else rng.choice(_STATES)  # at least 10 % unresolved, newest included
    service = f"svc-{i % 50}"
    labels = {"alertname": f"Alert{i % 200}", "instance": f"host-{i}", "service": service}
    done = state in ("resolved", "closed")
    return {
        "rule": f"rule-{i % 200}", "key": f'{{instance="host-{i}"}}',
        "key_hash": hashlib.sha256(f"host-{i}".encode()).hexdigest(), "title": f"host-{i} is down",
        "state": state, "priority": f"P{1 + i % 5}", "impact": "medium", "urgency": "medium", "service": service,
        "owner": "team-a", "assignee": None, "labels": labels, "alert_count": 1, "firing_count": 0 if done else 1,
        "detected_at": opened, "opened_at": opened,
        "acknowledged_at": opened + timedelta(minutes=5) if state != "open" else None, "restored_at": None,
        "resolved_at": opened + timedelta(minutes=30) if done else None,
        "closed_at": opened + timedelta(days=1) if state == "closed" else None,
        "resolution": "manual" if done else None, "problem_id": None, "signature": None, "signature_hash": None,
        "previous_incident_id": None, "reopen_count": 0, "flapping": False, "signal_lost": False,
        "resolve_at": None, "close_at": None, "page_at": None, "updated_at": opened,
    }


def store_incidents(database_url: str, count: int) -> float:
    """Migrate the database at database_url and store `count` incidents of the bulk fixture straight through the
    storage layer (batched inserts, one transaction; seconds taken returned). The database must be new."""
    from sqlalchemy import insert  # late: the HTTP-only benches need no SQLAlchemy

    from itsmd.storage.database import migrate, open_database
    from itsmd.storage.tables import incidents as incidents_table

    db = open_database(database_url)
    migrate(db)
    rng = random.Random(10)
    t0 = time.monotonic()
    try:
        with db.engine.begin() as conn:
            for first in range(0, count, _BATCH):
                conn.execute(insert(incidents_table),
                             [incident_row(i, rng) for i in range(first, min(count, first + _BATCH))])
    finally:
        db.engine.dispose()
    return time.monotonic() - t0


def nearest_rank(values: list[float], q: float) -> float:
    """The q-quantile (0 < q <= 1) of values by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, int(q * len(ordered) + 0.999999) - 1))]


# ------------------------------------------------------------------------------------------ PostgreSQL
def reset_postgres(database: str) -> None:
    """Drop and recreate the public schema of `database` (a database of the bench's own)."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    engine = create_engine(make_url(database).set(drivername="postgresql+psycopg"))
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()


class LeaderLock:
    """The bench holds itsmd's leader lock itself, so every replica follows (ingests only) until `release`."""

    def __init__(self, database: str) -> None:
        import psycopg
        from sqlalchemy.engine import make_url

        from itsmd.core.leadership import LEADER_KEY, LOCK_CLASS
        url = make_url(database).set(drivername="postgresql").render_as_string(hide_password=False)
        self.conn = psycopg.connect(url, autocommit=True)
        self.conn.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_CLASS, LEADER_KEY))

    def release(self) -> None:
        self.conn.close()
