"""The official MCP Python SDK reads Agent Skills' documents as resources from `skillbox mcp`.

Run by crates/skillbox-cli/tests/mcp_resources.rs, which builds the skill `docs-skill` (see
there: a guide, a JSON file, a PNG, and hostile entries: a symlink to a secret outside the
skill, a symlinked directory, an oversized file, a file SKILL.md does not reference) and
afterwards checks the audit log. On a 2026-07-28 session and on a handshake-era one:
resources/list holds exactly SKILL.md and the referenced files that pass the checks;
resources/read serves them (text and blob) and refuses everything else with a one-line error;
the secret's content appears in no response; an added referenced file is announced with
resources/list_changed (on the listen stream, and as a notification); a change of a subscribed
resource's content (its size unchanged) is announced with resources/updated (to the listen
stream's resourceSubscriptions, and after resources/subscribe), and no longer after
resources/unsubscribe.

Every check raises on failure; the last line printed on success is `ALL OK`.

Usage: resources_client.py stdio SKILLBOX_BIN WORKSPACE SKILL_DIR SECRET
       resources_client.py http URL TOKEN_FILE SKILL_DIR SECRET
"""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path

import anyio
from mcp import Client, StdioServerParameters
from mcp.shared.exceptions import MCPError
from mcp.shared.subscriptions import ResourceUpdated
from mcp_types import ResourceListChangedNotification, ResourceUpdatedNotification

MODE = sys.argv[1]
if MODE == "stdio":
    SKILLBOX, WORKSPACE = sys.argv[2:4]
else:
    URL, TOKEN_FILE = sys.argv[2:4]
SKILL_DIR, SECRET = Path(sys.argv[4]), sys.argv[5]
P = "skill://docs-skill/"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))
SEEN: list[str] = []  # every response and error, searched for the secret at the end


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok: {MODE}: {what}", flush=True)


def target():
    if MODE == "stdio":
        env = {k: os.environ[k] for k in ("PATH", "HOME", "SKILLBOX_HOME", "LANG") if k in os.environ}
        return StdioServerParameters(
            command=SKILLBOX, args=["--workspace", WORKSPACE, "mcp", "--poll-ms", "200"], env=env
        )
    from mcp.client.streamable_http import streamable_http_client
    from mcp.shared._httpx_utils import create_mcp_http_client

    token = Path(TOKEN_FILE).read_text().strip()
    http = create_mcp_http_client(headers={"Authorization": f"Bearer {token}"})
    return streamable_http_client(URL, http_client=http)


async def uris(client: Client) -> dict:
    listed = await client.list_resources(cache_mode="refresh")
    SEEN.append(listed.model_dump_json())
    return {r.uri: r for r in listed.resources}


def not_found(client: Client) -> int:
    """Resource not found: -32002 before 2026-07-28, which uses invalid params (-32602)."""
    return -32602 if client.protocol_version >= "2026-07-28" else -32002


async def refused(client: Client, uri: str, code: int | None, words: str) -> None:
    try:
        r = await client.read_resource(uri, cache_mode="bypass")
    except MCPError as e:
        SEEN.append(f"{e.error.code} {e.error.message} {e.error.data}")
        msg = e.error.message
        ok = (code is None or e.error.code == code) and words in msg and "\n" not in msg
        check(ok, f"{uri[:60]!r} refused: {e.error.code} {msg[:150]!r}")
        return
    SEEN.append(r.model_dump_json())
    raise AssertionError(f"{uri!r} was served: {r.model_dump_json()[:300]}")


async def list_and_read(client: Client) -> None:
    got = await uris(client)
    want = {P + p for p in ("SKILL.md", "references/guide.md", "references/data.json", "assets/logo.png")}
    check(set(got) == want, f"resources/list is SKILL.md and the referenced files that pass: {sorted(got)}")
    check(got[P + "SKILL.md"].mime_type == "text/markdown", "SKILL.md is text/markdown")
    check(got[P + "references/data.json"].mime_type == "application/json", "data.json is application/json")
    check(got[P + "assets/logo.png"].mime_type == "image/png", "logo.png is image/png")
    check(got[P + "references/guide.md"].size == len("GUIDE-CONTENT\n"), "sizes are listed")
    check(got[P + "SKILL.md"].description == "A skill with documents", "SKILL.md carries the skill's description")

    templates = await client.list_resource_templates()
    check(templates.resource_templates == [], "no resource template (only listed files are served)")

    r = await client.read_resource(P + "SKILL.md", cache_mode="bypass")
    SEEN.append(r.model_dump_json())
    check("# Docs" in r.contents[0].text, "resources/read SKILL.md")
    r = await client.read_resource(P + "references/guide.md", cache_mode="bypass")
    SEEN.append(r.model_dump_json())
    check(r.contents[0].text == "GUIDE-CONTENT\n" and r.contents[0].mime_type == "text/markdown", "a referenced document is read as text")
    r = await client.read_resource(P + "assets/logo.png", cache_mode="bypass")
    check(base64.b64decode(r.contents[0].blob) == PNG and r.contents[0].mime_type == "image/png", "a binary file is read as a blob")

    await refused(client, P + "references/leak.md", -32602, "symlink")
    await refused(client, P + "references/via/secret.txt", -32602, "symlink")
    await refused(client, P + "references/big.md", -32602, "larger than")
    await refused(client, P + "unreferenced.md", not_found(client), "unknown resource")
    await refused(client, "skill://no-such-skill/SKILL.md", not_found(client), "unknown resource")
    await refused(client, "file:///etc/passwd", not_found(client), "unknown resource")
    for uri in (
        P + "../../../outside/secret.txt",
        P + "references/../../../outside/secret.txt",
        P + "%2e%2e/%2e%2e/%2e%2e/outside/secret.txt",
        P + "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt",
        "skill://docs-skill//etc/passwd",
        P + "references/guide.md\x00.png",
        P + "./SKILL.md",
        P + "a/" * 600 + "x",
    ):
        await refused(client, uri, -32602, "refused URI")


async def modern() -> None:
    async with Client(target()) as client:
        check(client.protocol_version == "2026-07-28", f"session at {client.protocol_version}")
        await list_and_read(client)
        guide, data = P + "references/guide.md", P + "references/data.json"
        async with client.listen(resource_subscriptions=[guide, data]) as sub:
            honored = set(sub.honored.resource_subscriptions or ())
            check(honored == {guide, data}, f"subscriptions/listen accepts resource subscriptions: {honored}")
            # The same size: only the content (and the file's times) tell the change.
            (SKILL_DIR / "references/guide.md").write_text("GUIDE-CHANGED\n")
            with anyio.fail_after(15):
                async for event in sub:
                    if isinstance(event, ResourceUpdated):
                        check(event.uri == guide, f"subscriptions/listen: resources/updated names the changed resource ({event.uri})")
                        break
        r = await client.read_resource(guide, cache_mode="bypass")
        check(r.contents[0].text == "GUIDE-CHANGED\n", "the changed resource is read anew")
        (SKILL_DIR / "references/guide.md").write_text("GUIDE-CONTENT\n")
        async with client.listen(resources_list_changed=True) as sub:
            check(sub.honored.resources_list_changed is True, "subscriptions/listen accepts resources_list_changed")
            (SKILL_DIR / "references/later.md").write_text("LATER\n")
            with anyio.fail_after(15):
                async for _event in sub:
                    if P + "references/later.md" in await uris(client):
                        break
            check(True, "subscriptions/listen: an added referenced file is announced and listed")
        r = await client.read_resource(P + "references/later.md", cache_mode="bypass")
        check(r.contents[0].text == "LATER\n", "the added file is read")


async def legacy() -> None:
    changed = anyio.Event()
    updated: list[str] = []

    async def on_message(message):
        if isinstance(message, ResourceListChangedNotification):
            changed.set()
        if isinstance(message, ResourceUpdatedNotification):
            updated.append(message.params.uri)

    async def until_updated(uri: str) -> None:
        with anyio.fail_after(15):
            while uri not in updated:
                await anyio.sleep(0.05)

    async with Client(target(), mode="legacy", message_handler=on_message) as client:
        check(client.protocol_version == "2025-11-25", f"handshake session at {client.protocol_version}")
        got = await uris(client)
        check(P + "references/guide.md" in got, "handshake session: resources/list")
        r = await client.read_resource(P + "references/guide.md", cache_mode="bypass")
        check(r.contents[0].text == "GUIDE-CONTENT\n", "handshake session: resources/read")
        await refused(client, P + "references/leak.md", -32602, "symlink")
        await refused(client, P + "unreferenced.md", -32002, "unknown resource")
        # Subscriptions: sizes stay the same, so no list_changed comes of these writes.
        guide, data = P + "references/guide.md", P + "references/data.json"
        await client.subscribe_resource(guide)
        (SKILL_DIR / "references/guide.md").write_text("GUIDE-AGAIN!!\n")
        await until_updated(guide)
        check(updated == [guide], f"handshake session: resources/updated for the subscribed resource only: {updated}")
        await client.unsubscribe_resource(guide)
        await client.subscribe_resource(data)
        updated.clear()
        (SKILL_DIR / "references/guide.md").write_text("GUIDE-LATER!!\n")
        (SKILL_DIR / "references/data.json").write_text('{"k": 2}\n')
        await until_updated(data)
        await anyio.sleep(1)  # the guide changed first: its update would have come by now
        check(guide not in updated, f"handshake session: no update after resources/unsubscribe: {updated}")
        check(updated.count(data) == 1, f"handshake session: one update per change, after subscribing again: {updated}")
        check(not changed.is_set(), "a change of content alone is no resources/list_changed")
        # Deeper than the skills' own change detection looks: the resources' poll sees it.
        (SKILL_DIR / "references/deep/later2.md").write_text("LATER2\n")
        with anyio.fail_after(15):
            await changed.wait()
        check(P + "references/deep/later2.md" in await uris(client),
              "handshake session: notifications/resources/list_changed on an added file")


async def main() -> None:
    await modern()
    await legacy()
    check(all(SECRET not in s for s in SEEN), f"the secret appears in none of {len(SEEN)} responses")
    print("ALL OK", flush=True)


anyio.run(main)
