// A loopback reverse proxy that adds `Authorization: Bearer TOKEN` to every request it
// forwards to `skillbox mcp --http`, for clients that cannot send headers of their own (the
// conformance suite's runner). Everything else (Host, Origin, body, streamed responses) is
// passed through unchanged, so the server's own checks still see what the client sent.
//
// usage: node auth-proxy.mjs UPSTREAM_URL TOKEN_FILE
// prints the port it listens on (127.0.0.1), one line, then serves until killed.
import http from "node:http";
import fs from "node:fs";

const [upstream, tokenFile] = process.argv.slice(2);
if (!upstream || !tokenFile) {
  console.error("usage: node auth-proxy.mjs UPSTREAM_URL TOKEN_FILE");
  process.exit(2);
}
const token = fs.readFileSync(tokenFile, "utf8").trim();
const target = new URL(upstream);

const server = http.createServer((req, res) => {
  const headers = { ...req.headers, authorization: `Bearer ${token}` };
  const up = http.request(
    { host: target.hostname, port: target.port, path: req.url, method: req.method, headers },
    (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  up.on("error", (e) => {
    if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
    res.end(`auth-proxy: ${e.message}\n`);
  });
  res.on("close", () => up.destroy());
  req.pipe(up);
});
server.listen(0, "127.0.0.1", () => console.log(server.address().port));
