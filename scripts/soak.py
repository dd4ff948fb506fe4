"""The soak of `skillbox mcp` (issue 23, item 7): 16 concurrent clients of the official MCP
Python SDK over both transports, mixed calls for a given time, then a search for anything a
run left behind. Started by scripts/soak.sh, which builds the binary and prepares ROOT; see
docs/testing.md ("The soak") for what is measured and why.

Usage: soak.py SKILLBOX_BIN ROOT DURATION_SECONDS

ROOT holds ws/ (a copy of scripts/soak/workspace), home/ (SKILLBOX_HOME, the audit log),
tmp/ (TMPDIR of every server, so that private directories and temporary files of runs can
only be there) and nothing else of this script's. Exits 1 on any leak or unexpected result.
"""

from __future__ import annotations

import json
import os
import random
import re
import secrets
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

SKILLBOX, ROOT, DURATION = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
WS, HOME, TMP = ROOT / "ws", ROOT / "home", ROOT / "tmp"
AUDIT_LOG = HOME / "logs" / "security_events.jsonl"
CLIENTS_PER_TRANSPORT = 8
WARMUP = 0.15  # of DURATION, and at least WARMUP_MIN seconds
WARMUP_MIN = 30.0
TOLERANCE = 0.10  # fds and RSS at the end may be at most this much above the warm-up figure
# ... and RSS this much more: glibc keeps freed memory in per-thread arenas, and one server's
# RSS at two quiet points was seen 35 to 43 MiB with descriptors exactly flat (docs/testing.md).
RSS_SLACK_KIB = 4096
# A server keeps at most 4 sets of groups made ahead for its next runs, one group per
# controller (pids, memory, cpu): AHEAD_MAX in crates/skillbox-sandbox/src/cgroup.rs.
GROUPS_AHEAD_MAX = 4 * 3
WARMUP_CALLS = 800  # the warm-up also lasts until this many calls were made (at most half the run)
SETTLE = 3.0  # seconds of quiet before a measurement (removals on the blocking pool)
MIB = 1 << 20

# Kind of call -> weight in the mix. Each kind's expectation is checked in `call_one`.
KINDS = {
    "success": 30,  # quick: echoes its text
    "refused": 8,  # quick with a parameter its pattern refuses: status invalid
    "denied": 8,  # declares a write to /etc, beyond its trust level: status denied
    "timeout": 10,  # sleeps (with a child) past its 1 s limit: status timeout
    "memory": 10,  # touches 256 MiB under a 32 MiB limit: limit_exceeded (memory)
    "fork-bomb": 8,  # forks for ever under 5 processes: killed at its 3 s limit
    "flood": 8,  # writes 100 MiB to stdout: success, output capped
    "cancel": 14,  # sleeps a minute; the client cancels it mid-run
    "unknown": 4,  # a tool that does not exist: refused before any run (no execution)
}
END_EVENTS = {
    "SkillExecutionCompleted", "SkillExecutionFailed", "PermissionDenied",
    "InputValidationFailed", "SkillExecutionTimedOut", "ResourceLimitExceeded",
    "SkillExecutionCancelled",
}
EXPECTED_END = {
    "success": "SkillExecutionCompleted", "refused": "InputValidationFailed",
    "denied": "PermissionDenied", "timeout": "SkillExecutionTimedOut",
    "memory": "ResourceLimitExceeded", "fork-bomb": "SkillExecutionTimedOut",
    "flood": "SkillExecutionCompleted", "cancel": "SkillExecutionCancelled",
}


def log(msg: str) -> None:
    print(f"[soak {time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Stats:
    def __init__(self) -> None:
        self.calls: Counter = Counter()  # (transport, kind) -> calls
        self.unexpected: list[str] = []  # what went wrong, one line each
        self.errors: Counter = Counter()  # kind -> unexpected outcomes
        self.execution_ids: dict[str, str] = {}  # execution id -> kind, from results
        self.cancelled = 0  # calls cancelled mid-run (their id is never seen by the client)
        self.unknown = 0  # calls of an unknown tool

    def bad(self, kind: str, what: str) -> None:
        self.errors[kind] += 1
        if len(self.unexpected) < 200:
            self.unexpected.append(f"{kind}: {what}")


STATS = Stats()


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def server_env(tag: str) -> dict[str, str]:
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(HOME), "SKILLBOX_HOME": str(HOME),
           "LANG": "C.UTF-8", "TMPDIR": str(TMP), "SKILLBOX_SOAK": tag}
    return env


async def call_one(client: Client, transport: str, rng: random.Random, n: int) -> None:
    kind = rng.choices(list(KINDS), weights=list(KINDS.values()))[0]
    STATS.calls[(transport, kind)] += 1
    if kind == "unknown":
        try:
            await client.call_tool(f"no-such-tool-{rng.randrange(1000)}", {})
            STATS.bad(kind, "an unknown tool was served")
        except MCPError as e:
            if e.error.code != -32602:
                STATS.bad(kind, f"unknown tool: error {e.error.code} {e.error.message}")
        STATS.unknown += 1
        return
    if kind == "cancel":
        token = f"{transport}-{n}-{secrets.token_hex(4)}"
        marker = WS / "run" / f"started.{token}"
        outcome: dict = {}

        async def long_call():
            outcome["result"] = await client.call_tool("nap-cancel", {"token": token})

        async with anyio.create_task_group() as tg:
            tg.start_soon(long_call)
            with anyio.move_on_after(30) as waited:
                while not marker.exists():
                    await anyio.sleep(0.02)
            if waited.cancelled_caught:
                STATS.bad(kind, "the run never said it started")
            await anyio.sleep(rng.uniform(0.0, 1.0))
            tg.cancel_scope.cancel()
        marker.unlink(missing_ok=True)
        if "result" in outcome:
            STATS.bad(kind, f"a cancelled call returned {text_of(outcome['result'])[:200]!r}")
        STATS.cancelled += 1
        return

    name, args = {
        "success": ("quick", {"text": f"ok-{n}"}),
        "refused": ("quick", {"text": "Not; Allowed"}),
        "denied": ("denied", {}),
        "timeout": ("nap-timeout", {}),
        "memory": ("memory-hog", {}),
        "fork-bomb": ("fork-bomb", {}),
        "flood": ("flood", {}),
    }[kind]
    try:
        r = await client.call_tool(name, args, read_timeout_seconds=120)
    except Exception as e:  # noqa: BLE001: every failure is counted, the soak goes on
        STATS.bad(kind, f"{name}: {type(e).__name__}: {e}")
        return
    s = r.structured_content or {}
    status = s.get("status")
    if s.get("execution_id"):
        STATS.execution_ids[s["execution_id"]] = kind
    else:
        STATS.bad(kind, f"{name}: no execution_id in {str(s)[:200]}")
    ok = {
        "success": lambda: status == "success" and not r.is_error and s.get("stdout") == f"ok-{n}\n",
        "refused": lambda: status == "invalid" and r.is_error and "text" in text_of(r),
        "denied": lambda: status == "denied" and r.is_error,
        "timeout": lambda: status == "timeout" and r.is_error,
        "memory": lambda: status == "limit_exceeded" and s.get("limit") == "memory",
        # processes_peak comes from the pids cgroup; without one (nobody) RLIMIT_NPROC bounds it.
        "fork-bomb": lambda: status == "timeout" and s.get("usage", {}).get("processes_peak", 0) <= 5,
        "flood": lambda: status == "success" and s.get("stdout_truncated") is True
        and "wrote 104857600" in s.get("stderr", "") and len(s.get("stdout", "")) <= 2 * MIB,
    }[kind]()
    if not ok:
        short = {k: v for k, v in s.items() if k not in ("grant", "enforcement", "stdout")}
        STATS.bad(kind, f"{name}: unexpected {str(short)[:400]}")


class Phase:
    """Lets the orchestrator stop every client between calls, measure, and let them go on."""

    def __init__(self) -> None:
        self.go = anyio.Event()
        self.go.set()
        self.idle = 0
        self.stop = False


PHASE = Phase()


async def client_loop(name: str, transport: str, make_client, mode: str, seed: int) -> None:
    rng = random.Random(seed)
    n = 0
    kwargs = {"mode": "legacy"} if mode == "legacy" else {}
    try:
        async with Client(make_client(), **kwargs) as client:
            await client.list_tools()
            while True:
                if not PHASE.go.is_set():
                    PHASE.idle += 1
                    await PHASE.go.wait()
                    PHASE.idle -= 1
                if PHASE.stop:
                    break
                n += 1
                await call_one(client, transport, rng, n)
            # Stay connected (and idle) until the final measurement is taken.
            PHASE.idle += 1
            await FINAL.wait()
    except Exception as e:  # noqa: BLE001
        STATS.bad("client", f"{name} ({mode}) died: {type(e).__name__}: {e}")
        PHASE.idle += 1
        DEAD.add(name)


FINAL = None  # anyio.Event, set when the clients may close
DEAD: set[str] = set()


def pids_with_tag() -> dict[str, int]:
    """The stdio servers: children of this process with SKILLBOX_SOAK=stdio-N in their
    environment (the SDK starts each server directly)."""
    found = {}
    me = os.getpid()
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            ppid = int(re.search(r"^PPid:\s+(\d+)", Path(f"/proc/{pid}/status").read_text(), re.M).group(1))
        except (OSError, AttributeError):
            continue
        for kv in env:
            if kv.startswith(b"SKILLBOX_SOAK=stdio-") and ppid == me:
                tag = kv.split(b"=", 1)[1].decode()
                if tag in found:
                    STATS.bad("setup", f"two servers for {tag}: {found[tag]} and {pid}")
                found[tag] = int(pid)
    return found


def sockets(pid: int) -> int:
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}").startswith("socket:")
        except OSError:
            pass
    return n


def measure(pid: int) -> tuple[int, int]:
    """Open descriptors other than sockets, and resident memory (KiB), of `pid`. Sockets are
    counted apart (`sockets`): an HTTP server holds one per connection its clients keep."""
    fds = len(os.listdir(f"/proc/{pid}/fd")) - sockets(pid)
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return fds, rss


async def quiesce() -> None:
    """Stops every client after its call in flight, and waits for quiet."""
    PHASE.go = anyio.Event()
    with anyio.fail_after(180):
        while PHASE.idle < 2 * CLIENTS_PER_TRANSPORT:
            await anyio.sleep(0.1)
    await anyio.sleep(SETTLE)


def cgroup_mounts() -> list[Path]:
    out = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        f = line.split(" ")
        sep = f.index("-")
        if f[sep + 1] in ("cgroup", "cgroup2"):
            out.append(Path(f[4]))
    return out


def cgroups_of(pids: set[int]) -> list[Path]:
    """Directories named `skillbox-<pid>-<n>` (groups made by `pid`) under any cgroup mount."""
    pat = re.compile(r"^skillbox-(\d+)-\d+$")
    found = []
    stack = [(m, 0) for m in cgroup_mounts()]
    while stack:
        d, depth = stack.pop()
        try:
            entries = list(os.scandir(d))
        except OSError:
            continue
        for e in entries:
            if not e.is_dir(follow_symlinks=False):
                continue
            m = pat.match(e.name)
            if m and int(m.group(1)) in pids:
                found.append(Path(e.path))
            elif not m and depth < 8:
                stack.append((Path(e.path), depth + 1))
    return sorted(found)


def populated(group: Path) -> bool:
    for f in ("cgroup.procs", "tasks"):
        try:
            if (group / f).read_text().strip():
                return True
        except OSError:
            pass
    return False


def marked_processes() -> list[str]:
    """Processes other than this one whose command line, working directory or environment
    names ROOT: every server (its --workspace, TMPDIR, SKILLBOX_HOME) and every process of
    every run (its working directory is the workspace, its HOME and TMPDIR the private
    directory under ROOT/tmp)."""
    me = os.getpid()
    key = str(ROOT).encode()
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == me:
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes()
            hit = key in cmd
            if not hit:
                try:
                    hit = os.readlink(f"/proc/{pid}/cwd").startswith(str(ROOT))
                except OSError:
                    pass
            if not hit:
                try:
                    hit = key in Path(f"/proc/{pid}/environ").read_bytes()
                except OSError:
                    pass
        except OSError:
            continue
        if hit:
            text = cmd.replace(b"\0", b" ").decode(errors="replace")[:200]
            found.append(f"{pid}: {text}")
    return found


def private_dirs(pids: set[int] | None = None) -> list[Path]:
    """`skillbox-run-<pid>-*` under ROOT/tmp and the system temp directory."""
    out = []
    for d in (TMP, Path("/tmp")):
        try:
            for e in os.scandir(d):
                m = re.match(r"^skillbox-run-(\d+)-", e.name)
                if m and (pids is None or int(m.group(1)) in pids):
                    out.append(Path(e.path))
        except OSError:
            pass
    return out


def start_http_server() -> tuple[subprocess.Popen, str, str]:
    token = secrets.token_hex(32)
    env = server_env("http") | {"SKILLBOX_MCP_TOKEN": token}
    errlog = open(ROOT / "http-server.log", "wb")
    p = subprocess.Popen([SKILLBOX, "--workspace", str(WS), "mcp", "--http", "127.0.0.1:0"],
                         env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=errlog)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        m = re.search(r"http://127\.0\.0\.1:\d+/mcp", (ROOT / "http-server.log").read_text())
        if m:
            return p, m.group(0), token
        if p.poll() is not None:
            break
        time.sleep(0.05)
    sys.exit(f"skillbox mcp --http did not start:\n{(ROOT / 'http-server.log').read_text()}")


async def main() -> int:
    global FINAL
    FINAL = anyio.Event()
    http, url, token = start_http_server()
    http_sockets_idle = sockets(http.pid)
    log(f"HTTP server pid {http.pid} at {url}; {CLIENTS_PER_TRANSPORT} HTTP clients, "
        f"{CLIENTS_PER_TRANSPORT} stdio clients (each its own server), {DURATION:.0f} s")

    @asynccontextmanager
    async def http_transport():
        # Closed with the client: the connections it pooled close too.
        async with create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}) as http_client:
            # The SDK's default limit on an SSE event (1 MiB), as agents use it: the server
            # shortens a flood's result to fit one message (crates/skillbox-mcp/src/fit.rs).
            async with streamable_http_client(url, http_client=http_client) as streams:
                yield streams

    def stdio_params(i: int):
        return lambda: StdioServerParameters(command=SKILLBOX, args=["--workspace", str(WS), "mcp"],
                                             cwd=str(WS), env=server_env(f"stdio-{i}"))

    warmup = min(max(DURATION * WARMUP, WARMUP_MIN), DURATION / 2)
    t0 = time.monotonic()
    figures: dict[str, dict] = {}
    async with anyio.create_task_group() as tg:
        for i in range(CLIENTS_PER_TRANSPORT):
            mode = "modern" if i % 2 == 0 else "legacy"
            tg.start_soon(client_loop, f"http-{i}", "http", http_transport, mode, 1000 + i)
            tg.start_soon(client_loop, f"stdio-{i}", "stdio", stdio_params(i), mode, 2000 + i)

        await anyio.sleep(warmup)
        while sum(STATS.calls.values()) < WARMUP_CALLS and time.monotonic() - t0 < DURATION / 2:
            await anyio.sleep(0.5)
        warmup = time.monotonic() - t0
        await quiesce()
        stdio = pids_with_tag()
        servers = {"http": http.pid} | stdio
        if len(stdio) != CLIENTS_PER_TRANSPORT:
            STATS.bad("setup", f"found {len(stdio)} stdio servers, not {CLIENTS_PER_TRANSPORT}")
        for name, pid in servers.items():
            figures[name] = {"pid": pid, "warm": measure(pid)}
        warm_groups = len(cgroups_of(set(servers.values())))
        log(f"warm-up over at {time.monotonic() - t0:.0f} s: {sum(STATS.calls.values())} calls; "
            f"HTTP server {figures['http']['warm'][0]} fds, {figures['http']['warm'][1]} KiB RSS")
        PHASE.go.set()

        # The trend between the two quiet points (calls in flight, so only indicative).
        trend = []
        while (left := DURATION - (time.monotonic() - t0)) > 0:
            await anyio.sleep(min(left, DURATION / 20))
            for name, pid in servers.items():
                try:
                    figures[name].setdefault("load", []).append(measure(pid)[1])
                except OSError:
                    pass
            trend.append((round(time.monotonic() - t0), *measure(http.pid)))
        log("HTTP server under load (s, fds, RSS KiB): " + ", ".join(f"{t}: {f}/{r}" for t, f, r in trend))
        PHASE.stop = True
        await quiesce()
        log(f"calls over at {time.monotonic() - t0:.0f} s; measuring")
        for name, pid in servers.items():
            try:
                figures[name]["end"] = measure(pid)
            except OSError:
                figures[name]["end"] = None
                STATS.bad("server", f"{name} (pid {pid}) is gone before the end")
        server_pids = set(servers.values())
        live_groups = cgroups_of(server_pids)
        busy_groups = [g for g in live_groups if populated(g)]
        live_private = private_dirs(server_pids)
        live_marked = [p for p in marked_processes()
                       if int(p.split(":")[0]) not in server_pids]
        http_sockets_busy = sockets(http.pid)
        FINAL.set()
        PHASE.go.set()

    # Every client closed its connections: the HTTP server holds as many sockets as before any.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sockets(http.pid) > http_sockets_idle:
        await anyio.sleep(0.2)
    http_sockets_closed = sockets(http.pid)
    if http_sockets_closed > http_sockets_idle:
        STATS.bad("server", f"the HTTP server holds {http_sockets_closed} sockets after its clients "
                  f"closed, {http_sockets_idle} before any connected")
    # The stdio servers end when their clients close; the HTTP server on SIGTERM.
    http.send_signal(signal.SIGTERM)
    try:
        http_status = http.wait(30)
    except subprocess.TimeoutExpired:
        http.kill()
        http_status = "killed after 30 s"
        STATS.bad("server", "the HTTP server did not stop within 30 s of SIGTERM")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and marked_processes():
        await anyio.sleep(0.2)
    left_procs = marked_processes()
    left_groups = cgroups_of(server_pids)
    left_private = private_dirs(server_pids)
    left_tmp = sorted(str(p.relative_to(TMP)) for p in TMP.rglob("*"))
    left_run = sorted(p.name for p in (WS / "run").iterdir() if p.name != ".keep")

    # The audit chain, and one start and one end event per call.
    verify = subprocess.run([SKILLBOX, "audit", "verify"], env=server_env("verify"),
                            capture_output=True, text=True)
    # Rotated files (security_events.NNNNNN.jsonl) in order, then the current one.
    files = sorted(AUDIT_LOG.parent.glob("security_events.*.jsonl")) + [AUDIT_LOG]
    events = [json.loads(line) for f in files for line in f.read_text().splitlines() if line.strip()]
    starts: Counter = Counter()
    ends: dict[str, list[str]] = defaultdict(list)
    skill_of: dict[str, str] = {}
    unknown_recorded = 0
    for e in events:
        xid, et = e.get("execution_id"), e["event_type"]
        if et == "SkillExecutionStarted":
            starts[xid] += 1
            skill_of[xid] = e["skill_name"]
        elif et in END_EVENTS and xid and (xid in starts):
            ends[xid].append(et)
        elif et == "InputValidationFailed":
            d = e.get("details") or {}
            if e["skill_name"] == "*":
                unknown_recorded += int(d.get("suppressed", 0))
            else:
                unknown_recorded += 1 + int(d.get("suppressed_before", 0))
    audit_problems = []
    for xid, kind in STATS.execution_ids.items():
        if starts[xid] != 1 or len(ends[xid]) != 1:
            audit_problems.append(f"{kind} {xid}: {starts[xid]} start, ends {ends[xid]}")
        elif ends[xid][0] != EXPECTED_END[kind]:
            audit_problems.append(f"{kind} {xid}: ended with {ends[xid][0]}")
    cancelled_ids = [x for x in starts if x not in STATS.execution_ids]
    for xid in cancelled_ids:
        if skill_of[xid] != "nap-cancel" or starts[xid] != 1 or ends[xid] != ["SkillExecutionCancelled"]:
            audit_problems.append(f"run {xid} of {skill_of[xid]} no client saw: {starts[xid]} start, ends {ends[xid]}")
    if len(cancelled_ids) != STATS.cancelled:
        audit_problems.append(f"{STATS.cancelled} calls cancelled, {len(cancelled_ids)} cancelled runs in the log")
    if unknown_recorded != STATS.unknown:
        audit_problems.append(f"{STATS.unknown} calls of unknown tools, {unknown_recorded} recorded")

    # The report.
    calls_total = sum(STATS.calls.values())
    print()
    print(f"== soak: {DURATION:.0f} s, {2 * CLIENTS_PER_TRANSPORT} clients "
          f"({CLIENTS_PER_TRANSPORT} over HTTP to one server, {CLIENTS_PER_TRANSPORT} over stdio, "
          f"each its own server), as uid {os.getuid()}")
    print(f"{'kind':<10} {'http':>7} {'stdio':>7} {'total':>7} {'unexpected':>10}")
    for kind in KINDS:
        h, s = STATS.calls[("http", kind)], STATS.calls[("stdio", kind)]
        print(f"{kind:<10} {h:>7} {s:>7} {h + s:>7} {STATS.errors[kind]:>10}")
    print(f"{'all':<10} {sum(v for (t, _), v in STATS.calls.items() if t == 'http'):>7} "
          f"{sum(v for (t, _), v in STATS.calls.items() if t == 'stdio'):>7} {calls_total:>7} "
          f"{sum(STATS.errors.values()):>10}")
    print()
    print(f"server resources at quiet points: after warm-up ({warmup:.0f} s) and at the end; "
          f"tolerance: end <= warm-up + {TOLERANCE:.0%} (RSS: + {RSS_SLACK_KIB // 1024} MiB more)")
    print("(descriptors other than sockets; the HTTP server's sockets: "
          f"{http_sockets_idle} before any client, {http_sockets_busy} with 8 clients at the end, "
          f"{http_sockets_closed} after they closed)")
    print("(under load 1/2: median RSS KiB sampled under load in the first and second half after warm-up)")
    print(f"{'server':<9} {'pid':>8} {'fds warm':>9} {'fds end':>8} {'RSS warm KiB':>13} {'RSS end KiB':>12} "
          f"{'under load 1/2':>15}  verdict")
    growth = []
    for name, f in figures.items():
        w, e = f["warm"], f.get("end")
        if e is None:
            print(f"{name:<9} {f['pid']:>8} {w[0]:>9} {'-':>8} {w[1]:>13} {'-':>12}  gone")
            continue
        over = [what for what, a, b, slack in (("fds", w[0], e[0], 0), ("RSS", w[1], e[1], RSS_SLACK_KIB))
                if b > a * (1 + TOLERANCE) + slack]
        # RSS at one quiet point is noisy (a server's was seen 25% below its level under load
        # all run long): memory counts as grown only if, besides, the median under load of
        # the run's second half is over the first half's by the tolerance.
        load = f.get("load", [])
        half = len(load) // 2
        first, second = sorted(load[:half]), sorted(load[half:])
        trend_ok = half > 0 and second[len(second) // 2] <= first[len(first) // 2] * (1 + TOLERANCE)
        f["trend"] = (first[len(first) // 2], second[len(second) // 2]) if half else None
        if "RSS" in over and trend_ok:
            over.remove("RSS")
            f["note"] = "RSS over at the quiet point, flat under load"
        if over:
            growth.append(f"{name}: {', '.join(over)} grew more than the tolerance")
        t = f.get("trend")
        print(f"{name:<9} {f['pid']:>8} {w[0]:>9} {e[0]:>8} {w[1]:>13} {e[1]:>12} "
              f"{(f'{t[0]}/{t[1]}' if t else '-'):>15}  "
              f"{'over: ' + ', '.join(over) if over else f.get('note', 'ok')}")
    print()
    print("while the servers lived (quiet, before closing):")
    print(f"  cgroups of the servers: {len(live_groups)} ({len(busy_groups)} with processes; "
          f"{warm_groups} after warm-up: groups made ahead for the next runs)")
    print(f"  private directories of the servers: {len(live_private)} (a server keeps at most one for its next run)")
    print(f"  processes of runs: {len(live_marked)}")
    print(f"after every server ended (HTTP server: {http_status}):")
    leaks = {
        "processes left": left_procs,
        "cgroups left": [str(g) for g in left_groups] + [f"busy while idle: {g}" for g in busy_groups],
        "private directories left": [str(p) for p in left_private],
        "files left in the servers' TMPDIR": left_tmp,
        "files left in the workspace's run/": left_run,
        "run processes alive while idle": live_marked,
        "server resources grown": growth,
        "audit": ([] if verify.returncode == 0 else [f"audit verify: {verify.stdout}{verify.stderr}"])
        + audit_problems,
    }
    per_server = Counter(int(re.match(r"skillbox-(\d+)-", g.name).group(1)) for g in live_groups)
    for pid, n in sorted(per_server.items()):
        if n > GROUPS_AHEAD_MAX:
            leaks["cgroups left"].append(f"server {pid} holds {n} groups while idle (at most "
                                         f"{GROUPS_AHEAD_MAX} are made ahead)")
    if len(live_private) > len(server_pids):
        leaks["private directories left"].append(f"{len(live_private)} held by {len(server_pids)} idle servers")
    for what, found in leaks.items():
        print(f"  {what}: {len(found)}" + ("" if not found else "\n    " + "\n    ".join(found[:20])))
    print(f"audit: {len(events)} events in {len(files)} files; verify: {'passed' if verify.returncode == 0 else 'FAILED'}; "
          f"{len(STATS.execution_ids)} calls with a result and {len(cancelled_ids)} cancelled runs each "
          f"have exactly one start and one end event: {'yes' if not audit_problems else 'NO'}; "
          f"{STATS.unknown} unknown-tool calls, {unknown_recorded} recorded (never started)")
    if STATS.unexpected:
        print(f"unexpected results ({sum(STATS.errors.values())}):")
        for u in STATS.unexpected[:30]:
            print(f"  {u}")
    failed = any(leaks.values()) or STATS.unexpected or DEAD or calls_total == 0
    print(f"== soak {'FAILED' if failed else 'passed'}")
    return 1 if failed else 0


sys.exit(anyio.run(main))
