"""One session of the official MCP Python SDK against `skillbox mcp`.

Run by crates/skillbox-cli/tests/mcp.rs, which builds the workspace and its skills, and
afterwards checks the effects again from the outside. This script drives the server the way
an agent would: listing, calling, a denial, a confinement failure, a refused connection, a
timeout, progress, a cancellation, ten concurrent calls, and tools/list_changed, on a
2026-07-28 session (`subscriptions/listen`) and on a handshake-era session.

Every check raises on failure; the last line printed on success is `ALL OK`.

Usage: client_session.py SKILLBOX_BIN WORKSPACE OUTSIDE_DIR MARKER AUDIT_LOG
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp_types import PromptListChangedNotification, PromptReference, ToolListChangedNotification

SKILLBOX, WORKSPACE, OUTSIDE, MARKER, AUDIT_LOG = sys.argv[1:6]
WS = Path(WORKSPACE)


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def server() -> StdioServerParameters:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "SKILLBOX_HOME", "LANG") if k in os.environ}
    return StdioServerParameters(
        command=SKILLBOX, args=["mcp", "--poll-ms", "200"], cwd=WORKSPACE, env=env
    )


def marked_processes() -> list[str]:
    """Processes whose command line holds this session's marker: the skills' own shells."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if MARKER.encode() in cmdline and b"client_session.py" not in cmdline:
            text = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {text}")
    return found


async def gone_within(seconds: float) -> list[str]:
    deadline = time.monotonic() + seconds
    while True:
        left = marked_processes()
        if not left or time.monotonic() > deadline:
            return left
        await anyio.sleep(0.1)


async def stops_growing(path: Path) -> bool:
    """True if `path` has the same size over a whole second (its writers are dead)."""
    before = path.stat().st_size if path.exists() else -1
    await anyio.sleep(1.0)
    after = path.stat().st_size if path.exists() else -1
    return before == after


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def audit_events() -> list[dict]:
    out = []
    for line in Path(AUDIT_LOG).read_text().splitlines():
        if line.strip():
            out.append(json.loads(line))
    return out


async def listing_and_calls(client: Client) -> None:
    tools = {t.name: t for t in (await client.list_tools()).tools}
    for name in ["echo-back", "beat", "nap-timeout", "slow-ok", "escape-declared",
                 "escape-sneaky", "connect-out", "progress-nap"]:
        check(name in tools, f"tools/list lists {name}")
    schema = tools["echo-back"].input_schema
    check(schema.get("required") == ["text"] and schema["properties"]["text"]["type"] == "string",
          "echo-back's input schema requires the string `text`")
    check(schema.get("additionalProperties") is False, "input schemas forbid undeclared keys")
    session_schema = tools["code-session-skill"].input_schema
    check(session_schema.get("required") == ["code"] and "session_id" in session_schema["properties"],
          "a code_session skill is a tool taking `code` and `session_id`")

    # Annotations come from the grant the kernel enforces at the level the call runs at.
    def hints(name):
        a = tools[name].annotations
        return (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
    check(hints("echo-back") == (True, False, True, False), f"echo-back: read-only, offline {hints('echo-back')}")
    check(hints("beat") == (False, True, False, False), f"beat writes run/: not read-only {hints('beat')}")
    check(hints("net-https") == (True, False, False, True), f"net-https: open world {hints('net-https')}")
    check(hints("escape-declared") == (True, False, True, False),
          f"a call that will be denied does nothing {hints('escape-declared')}")
    check(tools["echo-back"].title == "echo-back", "tools have a title")
    check(tools["echo-back"].output_schema["required"][0] == "status", "tools have an output schema")

    # Prompt skills are MCP prompts too, rendered by the same run path (typed arguments).
    prompts = {p.name: p for p in (await client.list_prompts()).prompts}
    check("greet-prompt" in prompts and "echo-back" not in prompts, f"prompts/list: {list(prompts)}")
    args = {a.name: a for a in prompts["greet-prompt"].arguments}
    check(args["who"].required and args["who"].description == "Whom", "prompt arguments from parameters")
    got = await client.get_prompt("greet-prompt", {"who": "Ada", "n": "3"})
    check(got.messages[0].role == "user" and got.messages[0].content.text == "Greet Ada 3 times.",
          f"prompts/get renders the template: {got.messages!r}")
    try:
        await client.get_prompt("greet-prompt", {"who": "Ada", "n": "three"})
        raise AssertionError("a prompt argument of the wrong type was accepted")
    except MCPError as e:
        check("`n`" in e.error.message, f"a bad prompt argument is refused by name ({e.error.message})")
    # completion/complete offers a prompt argument's declared enum values that start with
    # what was typed, and nothing for an argument without a finite set of values.
    mood = PromptReference(type="ref/prompt", name="mood-prompt")
    done = (await client.complete(mood, {"name": "mood", "value": "c"})).completion
    check(done.values == ["calm", "cheerful", "curt"] and done.has_more is False,
          f"completion of an enum argument: {done!r}")
    done = (await client.complete(mood, {"name": "mood", "value": "x"})).completion
    check(done.values == [], f"no completion matches `x`: {done!r}")
    greet = PromptReference(type="ref/prompt", name="greet-prompt")
    done = (await client.complete(greet, {"name": "who", "value": "A"})).completion
    check(done.values == [], f"a free string argument has no completions: {done!r}")
    try:
        await client.complete(PromptReference(type="ref/prompt", name="no-such"), {"name": "a", "value": ""})
        raise AssertionError("completion of an unknown prompt was answered")
    except MCPError as e:
        check("unknown prompt" in e.error.message, f"completion of an unknown prompt: {e.error.message}")
    starts = [e for e in audit_events() if e.get("skill_name") == "greet-prompt"]
    check(len(starts) >= 2, "prompts/get calls are in the audit log")

    hostile = "hello; $(touch pwned) `touch pwned2`"
    r = await client.call_tool("echo-back", {"text": hostile})
    check(not r.is_error, "a valid call succeeds")
    check(text_of(r) == hostile + "\n", "the text content is the skill's stdout, value passed literally")
    check(r.structured_content["status"] == "success" and r.structured_content["exit_code"] == 0,
          "structured content is the run result object")
    check(not (WS / "pwned").exists() and not (WS / "pwned2").exists(),
          "no shell interpreted the parameter")

    r = await client.call_tool("quiet", {})
    check(not r.is_error and "succeeded (exit code 0) and printed nothing" in text_of(r),
          f"a run with no output says what happened: {text_of(r)!r}")
    check(r.structured_content["stdout"] == "", "the structured result keeps the empty output")

    r = await client.call_tool("echo-back", {})
    check(r.is_error and r.structured_content["status"] == "invalid", "a missing parameter is a tool error")
    check("text" in text_of(r), "the invalid-input message names the parameter")

    r = await client.call_tool("echo-back", {"text": "x", "extra": 1})
    check(r.is_error and "extra" in text_of(r), "an undeclared parameter is refused, named")

    try:
        await client.call_tool("no-such-skill", {})
        raise AssertionError("calling an unknown tool did not fail")
    except MCPError as e:
        check(e.error.code == -32602, f"an unknown tool is a protocol error -32602 ({e.error.message})")

    r = await client.call_tool("escape-declared", {})
    check(r.is_error and r.structured_content["status"] == "denied", "a declaration beyond the level is denied")
    check("file_write" in text_of(r) or "write" in text_of(r), f"the denial says what: {text_of(r)!r}")
    check("you cannot grant this yourself" in text_of(r) and "skillbox trust escape-declared" in text_of(r),
          f"the denial tells the model to ask the person, with the command: {text_of(r)!r}")
    check("--trust" not in text_of(r), f"the denial does not tell the model to pass --trust: {text_of(r)!r}")
    check(not (Path(OUTSIDE) / "declared").exists(), "the denied skill wrote nothing outside")

    r = await client.call_tool("escape-sneaky", {})
    check(r.is_error, "a write outside the grant fails")
    check(not (Path(OUTSIDE) / "sneaky").exists(), "the kernel kept the undeclared write out")

    connections = 0

    async def count(stream):
        nonlocal connections
        connections += 1
        await stream.aclose()

    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, count)
        r = await client.call_tool("connect-out", {"port": port})
        await anyio.sleep(0.3)
        tg.cancel_scope.cancel()
    check(r.is_error, "a connection without a network grant fails")
    check(connections == 0, "the listener got no connection")

    r = await client.call_tool("nap-timeout", {})
    check(r.is_error and r.structured_content["status"] == "timeout", "a run past its time limit is a timeout")
    check("timed out" in text_of(r), f"the timeout message says so: {text_of(r)!r}")
    check((WS / "run" / "nap.hb").exists(), "the timed-out skill's background child was beating")
    check(await stops_growing(WS / "run" / "nap.hb"), "the background child of the timed-out run is dead")
    check(await gone_within(5) == [], "no process of the timed-out run is left")

    updates = []

    async def on_progress(progress, total, message):
        updates.append((progress, message))

    r = await client.call_tool("progress-nap", {}, progress_callback=on_progress)
    check(not r.is_error, "a long run succeeds")
    check(len(updates) >= 1, f"progress notifications arrived ({len(updates)})")


async def cancellation(client: Client) -> None:
    hb = WS / "run" / "beat.hb"
    outcome = {}

    async def long_call():
        outcome["result"] = await client.call_tool("beat", {})

    async with anyio.create_task_group() as tg:
        tg.start_soon(long_call)
        with anyio.fail_after(20):
            while not hb.exists() or hb.stat().st_size < 10:
                await anyio.sleep(0.05)
        check(marked_processes() != [], "the long run is alive and beating")
        r = await client.call_tool("echo-back", {"text": "not blocked"})
        check(text_of(r) == "not blocked\n", "a quick call completes while a long one runs")
        tg.cancel_scope.cancel()
    check("result" not in outcome, "the cancelled call returned no result")
    left = await gone_within(5)
    check(left == [], f"every process of the cancelled run is gone ({left})")
    check(await stops_growing(hb), "the cancelled run's heartbeat stopped")
    with anyio.fail_after(5):
        while True:
            kinds = [(e["event_type"], e["skill_name"]) for e in audit_events()]
            if ("SkillExecutionCancelled", "beat") in kinds:
                break
            await anyio.sleep(0.1)
    check(True, "the cancellation is in the audit log")


async def concurrency(client: Client) -> None:
    results = {}

    async def one(n: int):
        results[n] = await client.call_tool("slow-ok", {"n": n})

    async with anyio.create_task_group() as tg:
        for n in range(10):
            tg.start_soon(one, n)
    check(all(not r.is_error for r in results.values()) and len(results) == 10,
          "ten concurrent calls all succeed")
    check(sorted(text_of(r).strip() for r in results.values()) == sorted(f"done {n}" for n in range(10)),
          "each concurrent call got its own output")
    starts = [float((WS / "run" / f"slow.{n}.start").read_text()) for n in range(10)]
    ends = [float((WS / "run" / f"slow.{n}.end").read_text()) for n in range(10)]
    check(max(starts) < min(ends), "all ten runs were in flight at the same time")


def write_skill(name: str) -> Path:
    path = WS / ".skillbox" / "skills" / f"{name}.json"
    path.write_text(json.dumps({
        "name": name, "description": "added while the server runs", "type": "command",
        "command": "echo", "args": ["added"],
    }))
    return path


async def list_changed_modern(client: Client) -> None:
    async with client.listen(tools_list_changed=True) as sub:
        path = write_skill("added-live")
        with anyio.fail_after(15):
            async for _event in sub:
                names = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
                if "added-live" in names:
                    break
        check(True, "subscriptions/listen: an added skill file is announced and listed")
        r = await client.call_tool("added-live", {})
        check(text_of(r) == "added\n", "the added skill runs")
        path.unlink()
        with anyio.fail_after(15):
            async for _event in sub:
                names = {t.name for t in (await client.list_tools(cache_mode="refresh")).tools}
                if "added-live" not in names:
                    break
        check(True, "subscriptions/listen: a removed skill file is announced and unlisted")


def write_prompt(name: str) -> Path:
    path = WS / ".skillbox" / "skills" / f"{name}.json"
    path.write_text(json.dumps({
        "name": name, "description": "a prompt added while the server runs",
        "type": "prompt_inline", "prompt_template": "Say hello.",
    }))
    return path


async def prompts_list_changed_modern(client: Client) -> None:
    """A listener for prompt changes only hears of an added prompt skill, and stays open."""
    async with client.listen(prompts_list_changed=True) as sub:
        path = write_prompt("added-prompt")
        heard = False
        try:
            with anyio.fail_after(15):
                async for _event in sub:
                    names = {p.name for p in (await client.list_prompts()).prompts}
                    if "added-prompt" in names:
                        heard = True
                        break
        finally:
            path.unlink()
        check(heard, "subscriptions/listen: an added prompt skill is announced as a prompts change")


async def legacy_session() -> None:
    changed = anyio.Event()
    prompts_changed = anyio.Event()

    async def on_message(message):
        if isinstance(message, ToolListChangedNotification):
            changed.set()
        if isinstance(message, PromptListChangedNotification):
            prompts_changed.set()

    async with Client(server(), mode="legacy", message_handler=on_message) as client:
        check(client.protocol_version == "2025-11-25", f"handshake session at {client.protocol_version}")
        names = {t.name for t in (await client.list_tools()).tools}
        check("echo-back" in names, "handshake session: tools/list")
        r = await client.call_tool("echo-back", {"text": "legacy"})
        check(text_of(r) == "legacy\n", "handshake session: tools/call")
        path = write_skill("added-legacy")
        try:
            with anyio.fail_after(15):
                await changed.wait()
            check(True, "handshake session: notifications/tools/list_changed on an added file")
            with anyio.fail_after(15):
                await prompts_changed.wait()
            check(True, "handshake session: notifications/prompts/list_changed on an added file")
        finally:
            path.unlink()


async def code_sessions() -> None:
    """A code_session skill over a connection of its own, which then closes."""
    async with Client(server()) as client:
        def session(r):
            return r.structured_content["session"]

        r = await client.call_tool("code-session-skill", {"code": "x = 20\nimport os\nos.getpid()"})
        check(not r.is_error, f"a session starts: {text_of(r)!r}")
        sid = session(r)["session_id"]
        check(marked_processes() != [], "the session's interpreter lives between calls")
        r = await client.call_tool("code-session-skill", {"code": "x * 2 + 2", "session_id": sid})
        check(session(r)["value"] == "42", f"state survives between calls: {r.structured_content}")
        r = await client.call_tool("code-session-skill", {"code": "'x' in globals()"})
        other = session(r)["session_id"]
        check(other != sid and session(r)["value"] == "False", "a second session is apart")
        code = f"open({str(Path(OUTSIDE) / 'from-session')!r}, 'w').write('pwned')"
        r = await client.call_tool("code-session-skill", {"code": code, "session_id": sid})
        check(r.is_error and session(r)["error"]["type"] in ("PermissionError", "OSError"),
              f"a session cannot write outside its grant: {r.structured_content}")
        check(not (Path(OUTSIDE) / "from-session").exists(), "nothing was written outside")

        # A cancelled call interrupts that call only: the session answers the next one.
        async def endless():
            await client.call_tool("code-session-skill", {"code": "while True: pass", "session_id": sid})

        async with anyio.create_task_group() as tg:
            tg.start_soon(endless)
            await anyio.sleep(0.5)
            tg.cancel_scope.cancel()
        r = await client.call_tool("code-session-skill", {"code": "x + 1", "session_id": sid})
        check(session(r)["value"] == "21", f"the session survives a cancelled call: {r.structured_content}")
        # The call timeout interrupts; the session goes on.
        r = await client.call_tool("code-session-skill", {"code": "while True: pass", "session_id": sid})
        check(r.is_error and session(r)["interrupted"] and session(r).get("ended") is None,
              f"a call past its timeout is interrupted: {r.structured_content}")
    left = await gone_within(5)
    check(left == [], f"no interpreter outlives the connection ({left})")


async def main() -> None:
    async with Client(server()) as client:
        check(client.protocol_version == "2026-07-28", f"modern session at {client.protocol_version}")
        await listing_and_calls(client)
        await cancellation(client)
        await concurrency(client)
        await list_changed_modern(client)
        await prompts_list_changed_modern(client)
    await legacy_session()
    await code_sessions()
    left = await gone_within(5)
    check(left == [], f"no skill process outlives the sessions ({left})")
    print("ALL OK", flush=True)


anyio.run(main)
