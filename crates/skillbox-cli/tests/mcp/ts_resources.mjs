// The MCP TypeScript SDK's client (@modelcontextprotocol/sdk from npm) reads Agent Skills'
// documents as resources from `skillbox mcp --http`: resources/list, a text and a blob
// read, and the refusals (a symlink out of the skill, `..` and percent-encoded URIs, a file
// SKILL.md does not reference); the secret's content appears in no response. Run by
// crates/skillbox-cli/tests/mcp_resources.rs. Every check throws on failure; the last line
// printed on success is `ALL OK`.
//
// usage: node ts_resources.mjs SDK_PACKAGE_DIR URL TOKEN_FILE SECRET
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, url, tokenFile, secret] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(path.join(sdkDir, "dist/esm", p)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const token = fs.readFileSync(tokenFile, "utf8").trim();
const seen = [];
const P = "skill://docs-skill/";

function check(cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

const client = new Client({ name: "skillbox-ts-resources", version: "1.0.0" });
await client.connect(new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
}));

const listed = await client.listResources();
seen.push(JSON.stringify(listed));
const uris = listed.resources.map((r) => r.uri).sort();
const want = ["assets/logo.png", "references/data.json", "references/guide.md", "SKILL.md"].map((p) => P + p).sort();
check(JSON.stringify(uris) === JSON.stringify(want), `resources/list: ${uris.join(", ")}`);

const guide = await client.readResource({ uri: P + "references/guide.md" });
seen.push(JSON.stringify(guide));
check(guide.contents[0].text === "GUIDE-CONTENT\n", `resources/read text: ${JSON.stringify(guide.contents[0])}`);
const logo = await client.readResource({ uri: P + "assets/logo.png" });
const bytes = Buffer.from(logo.contents[0].blob, "base64");
check(bytes.length === 8 + 256 && bytes[0] === 0x89 && bytes[8 + 255] === 255, "resources/read blob");

for (const [uri, code, words] of [
  [P + "references/leak.md", -32602, "symlink"],
  [P + "references/big.md", -32602, "larger than"],
  [P + "unreferenced.md", -32002, "unknown resource"],
  [P + "../../../outside/secret.txt", -32602, "refused URI"],
  [P + "%2e%2e/%2e%2e/%2e%2e/outside/secret.txt", -32602, "refused URI"],
]) {
  let error = null;
  try {
    seen.push(JSON.stringify(await client.readResource({ uri })));
  } catch (e) {
    error = e;
    seen.push(String(e.message));
  }
  check(error && error.code === code && String(error.message).includes(words),
    `${uri.slice(0, 60)} refused: ${error && error.code} ${String(error && error.message).slice(0, 140)}`);
}
check(seen.every((s) => !s.includes(secret)), `the secret appears in none of ${seen.length} responses`);
await client.close();
console.log("ALL OK");
