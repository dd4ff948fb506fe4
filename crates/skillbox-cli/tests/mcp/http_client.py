"""The official MCP Python SDK's Streamable HTTP client against `skillbox mcp --http`.

Run by crates/skillbox-cli/tests/mcp_http.rs, which starts the server and afterwards checks
the effects from the outside. On a 2026-07-28 (stateless) session and on a handshake-era
(session-based) one: tools/list with annotations, a real skill run that writes a stamp, a
denied call, prompts/list and prompts/get; and a client without the token is refused.

Every check raises on failure; the last line printed on success is `ALL OK`.

Usage: http_client.py URL TOKEN_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

URL, TOKEN_FILE = sys.argv[1:3]
TOKEN = Path(TOKEN_FILE).read_text().strip()


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


def text_of(result) -> str:
    return "".join(getattr(c, "text", "") for c in result.content)


def transport(token: str | None = TOKEN, statuses: list[int] | None = None):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    http = create_mcp_http_client(headers=headers)
    if statuses is not None:
        async def record(response):
            statuses.append(response.status_code)
        http.event_hooks["response"].append(record)
    return streamable_http_client(URL, http_client=http)


async def session(mode: str, era: str, stamp: str) -> None:
    kwargs = {"mode": "legacy"} if mode == "legacy" else {}
    async with Client(transport(), **kwargs) as client:
        check(client.protocol_version == era, f"{mode}: session at {client.protocol_version}")
        tools = {t.name: t for t in (await client.list_tools()).tools}
        check({"echo-back", "stamp", "escape-declared"} <= set(tools), f"{mode}: tools/list {sorted(tools)}")

        def hints(name):
            a = tools[name].annotations
            return (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)

        check(hints("echo-back") == (True, False, True, False), f"{mode}: echo-back read-only, offline {hints('echo-back')}")
        check(hints("stamp")[0] is False, f"{mode}: stamp writes, so not read-only {hints('stamp')}")
        check(tools["echo-back"].title == "echo-back", f"{mode}: tools have a title")

        r = await client.call_tool("echo-back", {"text": f"over http {mode}"})
        check(not r.is_error and text_of(r) == f"over http {mode}\n", f"{mode}: tools/call runs the skill ({text_of(r)!r})")
        r = await client.call_tool("stamp", {"word": stamp})
        check(not r.is_error, f"{mode}: the stamp skill ran ({text_of(r)!r})")
        r = await client.call_tool("escape-declared", {})
        check(r.is_error, f"{mode}: a call outside the grant is a tool error ({text_of(r)[:120]!r})")

        # Two megabytes of output: the run keeps one, and the reply is shortened to fit one
        # MCP message, which the SDK's default limit on an event (1 MiB) accepts.
        r = await client.call_tool("big-output", {})
        s = r.structured_content or {}
        check(not r.is_error and s.get("stdout_truncated") is True
              and text_of(r).startswith("0123456789") and "bytes dropped here by skillbox" in text_of(r),
              f"{mode}: a large output arrives shortened ({len(text_of(r))} chars, error {r.is_error})")

        prompts = {p.name: p for p in (await client.list_prompts()).prompts}
        check("greet-prompt" in prompts, f"{mode}: prompts/list {sorted(prompts)}")
        got = await client.get_prompt("greet-prompt", {"who": "Ada", "n": "2"})
        check(got.messages[0].content.text == "Greet Ada 2 times.", f"{mode}: prompts/get {got.messages!r}")


async def refused_without_token() -> None:
    for token in (None, "0" * 64):
        statuses: list[int] = []
        try:
            async with Client(transport(token, statuses)) as client:
                await client.list_tools()
        except Exception:  # the SDK reports the refused handshake as an error (group)
            check(statuses and set(statuses) == {401},
                  f"a client with {'a wrong' if token else 'no'} token is refused with 401 ({statuses})")
            continue
        raise AssertionError(f"a client with token {token!r} was served")


async def main() -> None:
    await session("modern", "2026-07-28", "modern-stamp")
    await session("legacy", "2025-11-25", "legacy-stamp")
    await refused_without_token()
    print("ALL OK", flush=True)


anyio.run(main)
