// A tiny static server for the test page: serves index.html and dist/* of this directory (nothing else) on
// 127.0.0.1, on the port given as the first argument (default 0: any free port). Prints
// `serving http://127.0.0.1:PORT` once listening; SIGTERM or SIGINT stops it.
import { createServer } from "node:http";
import { readFile } from "node:fs/promises";
import { dirname, join, normalize } from "node:path";
import { fileURLToPath } from "node:url";

const root = dirname(fileURLToPath(import.meta.url));
const types = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".map": "application/json; charset=utf-8",
};

function resolve(pathname) {
  if (pathname === "/" || pathname === "/index.html") return join(root, "index.html");
  const rel = normalize(decodeURIComponent(pathname)).replace(/^\/+/, "");
  if (!rel.startsWith("dist/") || rel.includes("..")) return null;
  return join(root, rel);
}

const server = createServer(async (req, res) => {
  const { pathname } = new URL(req.url ?? "/", "http://localhost");
  const file = req.method === "GET" || req.method === "HEAD" ? resolve(pathname) : null;
  const type = file && types[file.slice(file.lastIndexOf("."))];
  if (!file || !type) {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
    return;
  }
  try {
    const body = await readFile(file);
    res.writeHead(200, { "content-type": type, "content-length": body.length, "cache-control": "no-store" });
    res.end(req.method === "HEAD" ? undefined : body);
  } catch {
    res.writeHead(404, { "content-type": "text/plain" }).end("not found\n");
  }
});

server.listen(Number(process.argv[2] ?? 0), "127.0.0.1", () => {
  console.log(`serving http://127.0.0.1:${server.address().port}`);
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
  });
}
