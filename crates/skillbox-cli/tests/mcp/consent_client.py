"""Consent through the agent, driven by the official MCP Python SDK's elicitation callback.

Run by crates/skillbox-cli/tests/mcp_consent.rs over stdio (the SDK starts `skillbox mcp`)
or over Streamable HTTP (the test starts `skillbox mcp --http`), on a 2026-07-28 session
(the question comes as an `InputRequiredResult`, answered by the SDK's retry) and on a
handshake-era one (an `elicitation/create` request). The workspace holds, for each era E,
skills `once-E`, `always-E`, `deny-E`, `pin-E`, `pinalways-E`, `nocap-E`: each writes
OUTSIDE/NAME.N, outside the workspace, which their default level denies and
system-trusted grants.

Checks the effects (files written or not, the trust store, the audit log), not only the
replies. Every check raises on failure; the last line printed on success is `ALL OK`.

Usage: consent_client.py stdio SKILLBOX WORKSPACE OUTSIDE AUDIT_LOG TRUST_FILE
       consent_client.py http URL TOKEN_FILE OUTSIDE AUDIT_LOG TRUST_FILE
"""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp_types import ElicitResult

TRANSPORT = sys.argv[1]
if TRANSPORT == "stdio":
    SKILLBOX, WORKSPACE = sys.argv[2:4]
else:
    URL, TOKEN_FILE = sys.argv[2:4]
OUTSIDE, AUDIT_LOG, TRUST_FILE = (Path(p) for p in sys.argv[4:7])


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def audit(kind: str, skill: str) -> list[dict]:
    out = []
    for line in AUDIT_LOG.read_text().splitlines():
        if line.strip():
            e = json.loads(line)
            if e["event_type"] == kind and e["skill_name"] == skill:
                out.append(e)
    return out


def grants() -> dict:
    if not TRUST_FILE.exists():
        return {}
    return json.loads(TRUST_FILE.read_text())["grants"]


def server(mode: str, extra: tuple[str, ...] = ()):
    if TRANSPORT == "stdio":
        env = {k: os.environ[k] for k in ("PATH", "HOME", "SKILLBOX_HOME", "LANG") if k in os.environ}
        args = ["mcp", "--poll-ms", "200", *extra]
        return StdioServerParameters(command=SKILLBOX, args=args, cwd=WORKSPACE, env=env)
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = Path(TOKEN_FILE).read_text().strip()
    return streamable_http_client(URL, http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}))


class Person:
    """The person behind the client's elicitation interface: answers from a plan."""

    def __init__(self) -> None:
        self.asked: list[tuple[str, str, dict]] = []
        self.plan: dict[str, list] = {}

    async def __call__(self, context, params):
        message = params.message
        skill = re.search(r"the skill `([^`]+)`", message).group(1)
        schema = params.requested_schema
        self.asked.append((skill, message, schema))
        answer = self.plan[skill].pop(0)
        if callable(answer):
            answer = answer()
        if answer in ("decline", "cancel"):
            return ElicitResult(action=answer)
        return ElicitResult(action="accept", content={"decision": answer})


def skill_file(name: str) -> Path:
    return OUTSIDE.parent / "ws/.skillbox/skills" / f"{name}.json"


def touch_skill(name: str):
    """Changes the skill's content while the person is being asked."""

    def change() -> str:
        path = skill_file(name)
        skill = json.loads(path.read_text())
        skill["description"] += " (changed while the person was asked)"
        path.write_text(json.dumps(skill))
        return change.answer

    return change


async def replays(client: Client, E: str) -> None:
    """2026-07-28: an answer counts only as the retry of the call asked about, once."""
    from mcp_types import InputRequiredResult

    name = f"once-{E}"
    forged = {"skillbox_consent": ElicitResult(action="accept", content={"decision": "always"})}
    first = await client.session.call_tool(name, {"n": "4"}, allow_input_required=True)
    check(isinstance(first, InputRequiredResult) and "skillbox_consent" in (first.input_requests or {})
          and first.request_state, f"{E}: a denied call returns an InputRequiredResult with the question")
    # The answer to this question, on another call (other arguments): not an answer.
    r = await client.session.call_tool(name, {"n": "5"}, input_responses=forged,
                                       request_state=first.request_state, allow_input_required=True)
    check(isinstance(r, InputRequiredResult), f"{E}: an answer retried with other arguments runs nothing ({type(r).__name__})")
    # A state the server never issued.
    r = await client.session.call_tool(name, {"n": "4"}, input_responses=forged,
                                       request_state="0" * 32, allow_input_required=True)
    check(isinstance(r, InputRequiredResult), f"{E}: an unknown request state runs nothing")
    # The original state again, now spent.
    r = await client.session.call_tool(name, {"n": "4"}, input_responses=forged,
                                       request_state=first.request_state, allow_input_required=True)
    check(isinstance(r, InputRequiredResult), f"{E}: a request state is used at most once")
    check(not (OUTSIDE / f"{name}.4").exists() and not (OUTSIDE / f"{name}.5").exists()
          and name not in grants(), f"{E}: ... and none of them ran or granted anything")
    # Every question gets its answer event: the one the mismatched retry spent is
    # `unanswered`; the three asked since wait for their retry.
    got = [e["details"]["answer"] for e in audit("ConsentAnswered", name)]
    check(got == ["once", "deny", "unanswered"] and len(audit("ConsentRequested", name)) == 6,
          f"{E}: a question spent by a retry of another call is recorded unanswered ({got})")
    # Questions never retried: the server keeps 256; each one dropped to make room is
    # recorded unanswered, so that exactly the 256 kept have no answer event.
    for _ in range(256):
        r = await client.session.call_tool(name, {"n": "6"}, allow_input_required=True)
    asked, answered = audit("ConsentRequested", name), audit("ConsentAnswered", name)
    check(isinstance(r, InputRequiredResult) and len(asked) == 262 and len(answered) == 262 - 256
          and [e["details"]["answer"] for e in answered[3:]] == ["unanswered"] * 3,
          f"{E}: questions dropped beyond the 256 kept are recorded unanswered "
          f"({len(asked)} asked, {len(answered)} answered)")


async def era(mode: str, era_name: str) -> None:
    kwargs = {"mode": "legacy"} if mode == "legacy" else {}
    E = era_name
    person = Person()
    async with Client(server(mode), elicitation_callback=person, **kwargs) as client:
        check(client.protocol_version == ("2025-11-25" if mode == "legacy" else "2026-07-28"),
              f"{E}: session at {client.protocol_version}")

        # once: the call runs, at the level asked, from the content shown; nothing is kept.
        person.plan[f"once-{E}"] = ["once", "deny"]
        r = await client.call_tool(f"once-{E}", {"n": "1"})
        check(not r.is_error, f"{E}: `once` runs the call ({text_of(r)[:200]!r})")
        check((OUTSIDE / f"once-{E}.1").read_text() == "ran\n", f"{E}: `once`: its effect happened")
        s = r.structured_content
        check(s["trust_level"] == "system-trusted" and s["trust_origin"] == "consent",
              f"{E}: `once` ran at the level asked, origin consent ({s['trust_level']}, {s.get('trust_origin')})")
        check(len(person.asked) == 1, f"{E}: asked once ({len(person.asked)})")
        skill, message, schema = person.asked[0]
        digest = re.search(r"sha256v2:[0-9a-f]{64}", message)
        check(skill == f"once-{E}" and "workspace skill" in message and "user-verified" in message
              and "system-trusted" in message and str(OUTSIDE) in message and digest is not None,
              f"{E}: the question names the skill, its source, the levels, what it may write and the digest: {message!r}")
        choices = [c["const"] for c in schema["properties"]["decision"]["oneOf"]]
        check(choices == ["once", "always", "deny"] and schema["required"] == ["decision"],
              f"{E}: the form offers once, always, deny ({schema})")
        check(f"once-{E}" not in grants(), f"{E}: `once` keeps no grant")
        r = await client.call_tool(f"once-{E}", {"n": "2"})
        check(r.is_error and r.structured_content["status"] == "denied" and len(person.asked) == 2,
              f"{E}: after `once`, the next call is asked again (and denied: {text_of(r)[:120]!r})")
        check(not (OUTSIDE / f"once-{E}.2").exists(), f"{E}: a denied call has no effect")
        got = [e["details"]["answer"] for e in audit("ConsentAnswered", f"once-{E}")]
        asked = audit("ConsentRequested", f"once-{E}")
        check(got == ["once", "deny"] and len(asked) == 2 and asked[0]["details"]["digest"] == digest.group(0),
              f"{E}: the audit log holds both questions (with the digest shown) and both answers {got}")
        via = "elicitation/create" if mode == "legacy" else "input_required"
        check(all(e["details"]["via"] == via for e in asked), f"{E}: asked via {via}")
        check(asked[0]["details"]["grant"]["file_write"] == [str(OUTSIDE)],
              f"{E}: the question recorded what the level allows ({asked[0]['details']['grant']['file_write']})")

        # A model cannot answer: tool arguments are not an answer (and undeclared keys are invalid).
        before = len(person.asked)
        r = await client.call_tool(f"once-{E}", {"n": "3", "consent": "always"})
        check(r.is_error and r.structured_content["status"] == "invalid" and len(person.asked) == before,
              f"{E}: {{\"consent\": \"always\"}} in the arguments is refused, nothing asked ({text_of(r)[:120]!r})")
        check(not (OUTSIDE / f"once-{E}.3").exists() and f"once-{E}" not in grants(),
              f"{E}: ... and grants nothing")

        if mode != "legacy":
            await replays(client, E)

        # always: the grant `skillbox trust` writes, pinned to the digest shown; later calls just run.
        person.plan[f"always-{E}"] = ["always"]
        r = await client.call_tool(f"always-{E}", {"n": "1"})
        check(not r.is_error and (OUTSIDE / f"always-{E}.1").exists(), f"{E}: `always` runs the call")
        shown = re.search(r"sha256v2:[0-9a-f]{64}", person.asked[-1][1]).group(0)
        g = grants().get(f"always-{E}")
        check(g is not None and g["level"] == "system-trusted" and g["digest"] == shown,
              f"{E}: `always` wrote a trust grant pinned to the digest shown ({g})")
        before = len(person.asked)
        r = await client.call_tool(f"always-{E}", {"n": "2"})
        check(not r.is_error and (OUTSIDE / f"always-{E}.2").exists() and len(person.asked) == before,
              f"{E}: after `always`, a later call runs without asking")
        check(r.structured_content["trust_origin"] == "grant", f"{E}: ... under the grant")
        check(len(audit("TrustGranted", f"always-{E}")) == 1, f"{E}: the grant is in the audit log")

        # deny, decline, cancel: the original denial, no effect.
        person.plan[f"deny-{E}"] = ["deny", "decline", "cancel"]
        for n in ("1", "2", "3"):
            r = await client.call_tool(f"deny-{E}", {"n": n})
            check(r.is_error and r.structured_content["status"] == "denied"
                  and "permission denied" in text_of(r) and not (OUTSIDE / f"deny-{E}.{n}").exists(),
                  f"{E}: answer {n} left the call denied, without effect")
        got = [e["details"]["answer"] for e in audit("ConsentAnswered", f"deny-{E}")]
        check(got == ["deny", "declined", "cancelled"], f"{E}: the audit log holds the answers {got}")
        check(all(e["action_taken"] == "Blocked" for e in audit("ConsentAnswered", f"deny-{E}")),
              f"{E}: ... as Blocked")
        check(f"deny-{E}" not in grants(), f"{E}: no grant after a denial")

        # The content is pinned: a change between the question and the answer refuses the run.
        for kind, answer in (("pin", "once"), ("pinalways", "always")):
            name = f"{kind}-{E}"
            change = touch_skill(name)
            change.answer = answer
            person.plan[name] = [change]
            r = await client.call_tool(name, {"n": "1"})
            check(r.is_error and "changed since the person" in text_of(r),
                  f"{E}: `{answer}` after the content changed is refused ({text_of(r)[:160]!r})")
            check(not (OUTSIDE / f"{name}.1").exists() and name not in grants(),
                  f"{E}: ... with no effect and no grant")

    # A client that did not declare elicitation is never asked: the denial, as before.
    async with Client(server(mode), **kwargs) as plain:
        r = await plain.call_tool(f"nocap-{E}", {"n": "1"})
        check(r.is_error and r.structured_content["status"] == "denied"
              and not (OUTSIDE / f"nocap-{E}.1").exists(),
              f"{E}: without the elicitation capability: denied, no effect")
        check(not audit("ConsentRequested", f"nocap-{E}"), f"{E}: ... and nothing was asked")


async def unanswered_in_time(mode: str, E: str) -> None:
    """A server with --consent-timeout 2: a question nobody answers in time is recorded
    `unanswered`, and the call stays denied without effect."""
    from mcp_types import InputRequiredResult

    name = f"late-{E}"
    kwargs = {"mode": "legacy"} if mode == "legacy" else {}

    async def slow_person(context, params):
        await anyio.sleep(6)  # past the server's 2 s
        return ElicitResult(action="accept", content={"decision": "once"})

    async with Client(server(mode, ("--consent-timeout", "2")), elicitation_callback=slow_person, **kwargs) as client:
        if mode == "legacy":
            # The server stops waiting after 2 s: the call returns its denial.
            with anyio.fail_after(5):
                r = await client.call_tool(name, {"n": "1"})
            check(r.is_error and r.structured_content["status"] == "denied",
                  f"{E}: an answer not given within --consent-timeout leaves the call denied ({text_of(r)[:120]!r})")
        else:
            first = await client.session.call_tool(name, {"n": "1"}, allow_input_required=True)
            check(isinstance(first, InputRequiredResult), f"{E}: a denied call asks")
        # The watcher records the question within a poll of its timeout (no retry needed).
        with anyio.fail_after(10):
            while not audit("ConsentAnswered", name):
                await anyio.sleep(0.1)
        got = [e["details"]["answer"] for e in audit("ConsentAnswered", name)]
        check(got == ["unanswered"] and len(audit("ConsentRequested", name)) == 1,
              f"{E}: a question not answered within --consent-timeout is recorded unanswered ({got})")
        if mode != "legacy":
            # Its retry, too late (the same call, with the person's `once`), runs nothing:
            # the call is asked afresh.
            r = await client.session.call_tool(
                name, {"n": "1"}, allow_input_required=True, request_state=first.request_state,
                input_responses={"skillbox_consent": ElicitResult(action="accept", content={"decision": "once"})})
            check(isinstance(r, InputRequiredResult), f"{E}: a retry after the timeout runs nothing")
    check(not (OUTSIDE / f"{name}.1").exists() and not (OUTSIDE / f"{name}.2").exists() and name not in grants(),
          f"{E}: ... and the late question had no effect")


async def main() -> None:
    await era("modern", "modern")
    await era("legacy", "legacy")
    if TRANSPORT == "stdio":
        # One transport suffices: the timeout is the server's, whatever carries the question.
        await unanswered_in_time("modern", "modern")
        await unanswered_in_time("legacy", "legacy")
    print("ALL OK", flush=True)


anyio.run(main)
