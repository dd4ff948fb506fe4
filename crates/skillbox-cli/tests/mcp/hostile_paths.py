"""The official MCP Python SDK against `skillbox mcp` started in a workspace whose path is
not UTF-8 (run by crates/skillbox-cli/tests/hostile_paths.rs, which checks the effects).

Python passes such bytes in argv as surrogate escapes, and hands them back to the kernel
unchanged as the server's working directory. Every check raises on failure; the last line
printed on success is `ALL OK`.

Usage: hostile_paths.py SKILLBOX_BIN WORKSPACE
"""

import os
import sys

import anyio
from mcp import Client, StdioServerParameters

SKILLBOX, WORKSPACE = sys.argv[1:3]


def check(cond: bool, what: str) -> None:
    if not cond:
        raise AssertionError(what)
    print(f"ok: {what}", flush=True)


async def main() -> None:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG") if k in os.environ}
    params = StdioServerParameters(command=SKILLBOX, args=["mcp"], cwd=WORKSPACE, env=env)
    async with Client(params) as client:
        names = {t.name for t in (await client.list_tools()).tools}
        check("mark" in names, f"tools/list names the workspace's skill ({sorted(names)})")
        r = await client.call_tool("mark", {})
        result = r.structured_content
        check(not r.is_error and result["status"] == "success", f"tools/call runs it ({result})")
        check("\\xE9" in result["grant"]["file_read"][0], "the grant shows the bytes escaped")
    print("ALL OK", flush=True)


anyio.run(main)
