// The MCP TypeScript SDK's client (@modelcontextprotocol/sdk from npm) against skillbox's
// MCP server over Streamable HTTP (`skillbox mcp --http`) or over stdio (`skillbox mcp`):
// tools/list with annotations, a real skill run, prompts/list and prompts/get, and over HTTP a
// client without the token refused. Run by crates/skillbox-cli/tests/mcp_http.rs with the Node
// that scripts/install-test-deps.sh installs. Every check throws on failure; the last line
// printed on success is `ALL OK`.
//
// usage: node ts_client.mjs SDK_PACKAGE_DIR URL TOKEN_FILE
//        node ts_client.mjs SDK_PACKAGE_DIR stdio SKILLBOX_BIN WORKSPACE
//        (stdio: the server is started by the SDK's StdioClientTransport, with this
//        process's environment)
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, url, third, fourth] = process.argv.slice(2);
const overStdio = url === "stdio";
const load = (p) => import(pathToFileURL(path.join(sdkDir, "dist/esm", p)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { StdioClientTransport } = await load("client/stdio.js");
const token = overStdio ? undefined : fs.readFileSync(third, "utf8").trim();

function check(cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

function transport(tok) {
  if (overStdio) {
    return new StdioClientTransport({
      command: third,
      args: ["--workspace", fourth, "mcp"],
      env: { ...process.env },
      stderr: "inherit",
    });
  }
  const headers = tok ? { Authorization: `Bearer ${tok}` } : {};
  return new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });
}

const client = new Client({ name: "skillbox-ts-test", version: "1.0.0" });
await client.connect(transport(token));
check(typeof client.getServerVersion()?.name === "string", `connected to ${client.getServerVersion()?.name}`);

const tools = Object.fromEntries((await client.listTools()).tools.map((t) => [t.name, t]));
check(tools["echo-back"] && tools["stamp"], `tools/list: ${Object.keys(tools).join(", ")}`);
const a = tools["echo-back"].annotations ?? {};
check(a.readOnlyHint === true && a.destructiveHint === false && a.openWorldHint === false,
  `echo-back annotations ${JSON.stringify(a)}`);
check(tools["stamp"].annotations?.readOnlyHint === false, "stamp writes: not read-only");

const r = await client.callTool({ name: "echo-back", arguments: { text: "from typescript" } });
check(!r.isError && r.content[0].text === "from typescript\n", `tools/call: ${JSON.stringify(r.content)}`);
const s = await client.callTool({ name: "stamp", arguments: { word: "ts-stamp" } });
check(!s.isError, `the stamp skill ran: ${JSON.stringify(s.content)}`);

const prompts = (await client.listPrompts()).prompts.map((p) => p.name);
check(prompts.includes("greet-prompt"), `prompts/list: ${prompts.join(", ")}`);
const got = await client.getPrompt({ name: "greet-prompt", arguments: { who: "Lin", n: "4" } });
check(got.messages[0].content.text === "Greet Lin 4 times.", `prompts/get: ${JSON.stringify(got.messages)}`);
await client.close();

for (const tok of overStdio ? [] : [undefined, "f".repeat(64)]) {
  const other = new Client({ name: "skillbox-ts-test-no-token", version: "1.0.0" });
  let refused = false;
  try {
    await other.connect(transport(tok));
  } catch (e) {
    refused = /401|Unauthorized/i.test(String(e));
    console.log(`refused: ${String(e).slice(0, 160)}`);
  }
  check(refused, `a client with ${tok ? "a wrong" : "no"} token is refused with 401`);
}
console.log("ALL OK");
