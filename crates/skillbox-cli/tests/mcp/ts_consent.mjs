// Consent through the agent with the MCP TypeScript SDK's client (@modelcontextprotocol/sdk
// from npm), a second client no one here wrote, against `skillbox mcp --http`: a
// handshake-era session whose client declares form elicitation and answers
// `elicitation/create` (once, always, deny), and a client without the capability, which is
// never asked. Run by crates/skillbox-cli/tests/mcp_consent.rs, which checks the files and
// the trust store afterwards. Every check throws on failure; the last line is `ALL OK`.
//
// usage: node ts_consent.mjs SDK_PACKAGE_DIR URL TOKEN_FILE OUTSIDE
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const [sdkDir, url, tokenFile, outside] = process.argv.slice(2);
const load = (p) => import(pathToFileURL(path.join(sdkDir, "dist/esm", p)).href);
const { Client } = await load("client/index.js");
const { StreamableHTTPClientTransport } = await load("client/streamableHttp.js");
const { ElicitRequestSchema } = await load("types.js");
const token = fs.readFileSync(tokenFile, "utf8").trim();

function check(cond, what) {
  if (!cond) throw new Error(`FAILED: ${what}`);
  console.log(`ok: ${what}`);
}

function transport() {
  return new StreamableHTTPClientTransport(new URL(url), {
    requestInit: { headers: { Authorization: `Bearer ${token}` } },
  });
}

const asked = [];
const plan = { "once-legacy": "once", "always-legacy": "always", "deny-legacy": "deny" };
const client = new Client(
  { name: "skillbox-ts-consent", version: "1.0.0" },
  { capabilities: { elicitation: { form: {} } } },
);
client.setRequestHandler(ElicitRequestSchema, async (request) => {
  const message = request.params.message;
  const skill = /the skill `([^`]+)`/.exec(message)[1];
  asked.push(skill);
  check(/sha256v2:[0-9a-f]{64}/.test(message) && message.includes(outside),
    `the question about ${skill} names the digest and what it may write`);
  return { action: "accept", content: { decision: plan[skill] } };
});
await client.connect(transport());

const call = (name, n) => client.callTool({ name, arguments: { n } });
let r = await call("once-legacy", "1");
check(!r.isError && fs.existsSync(path.join(outside, "once-legacy.1")), "once: the call ran");
check(r.structuredContent.trust_origin === "consent", "once: at the level the person allowed");
r = await call("always-legacy", "1");
check(!r.isError && fs.existsSync(path.join(outside, "always-legacy.1")), "always: the call ran");
const before = asked.length;
r = await call("always-legacy", "2");
check(!r.isError && asked.length === before, "always: the next call runs without asking");
r = await call("deny-legacy", "1");
check(r.isError && r.structuredContent.status === "denied"
  && !fs.existsSync(path.join(outside, "deny-legacy.1")), "deny: denied, no effect");
check(JSON.stringify(asked) === JSON.stringify(["once-legacy", "always-legacy", "deny-legacy"]),
  `asked about ${asked.join(", ")}`);
await client.close();

const plain = new Client({ name: "skillbox-ts-no-elicitation", version: "1.0.0" });
await plain.connect(transport());
r = await plain.callTool({ name: "nocap-legacy", arguments: { n: "1" } });
check(r.isError && r.structuredContent.status === "denied"
  && !fs.existsSync(path.join(outside, "nocap-legacy.1")), "without the capability: the denial");
await plain.close();
console.log("ALL OK");
