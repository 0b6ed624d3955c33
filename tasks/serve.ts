// deno task serve — serves the web page on localhost: the page, its script, the Train view's configs
// and digits, and the bundled models' checkpoints, as files. Nothing is computed here; the browser
// runs the model, and trains it.

import { BUNDLED_MODELS } from "../web/models.ts";
import { DEFAULT_CONFIG } from "../io/config_schema.ts";
import { fail, intFlag, parseCli } from "./cli.ts";

const USAGE = `
Serves the web page that draws with the bundled models in the browser (WebGPU), on localhost.
\`deno task serve\` builds its script first when it is missing or stale (deno task build:web).

  deno task serve [--port N]

  --port N   the port (default 8000; 0 = any free port); the address is printed
`;

const ROOT = new URL("../", import.meta.url);

/** URL path → file (relative to the repository root): all that is ever sent. */
const FILES = new Map<string, string>([
  ["/", "web/index.html"],
  ["/style.css", "web/style.css"],
  ["/dist/app.js", "web/dist/app.js"],
  ["/dist/app.js.map", "web/dist/app.js.map"],
  ["/dist/train.json", "web/dist/train.json"],
  ["/dist/digits.safetensors", "web/dist/digits.safetensors"],
  ...BUNDLED_MODELS.map((m): [string, string] => ["/" + m.file, m.file]),
  // the word table that the bundled models which read words name (model.word_table)
  ["/" + DEFAULT_CONFIG.model.word_table, DEFAULT_CONFIG.model.word_table],
]);

const TYPES: Record<string, string> = {
  html: "text/html; charset=utf-8",
  css: "text/css; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  map: "application/json",
  json: "application/json",
  safetensors: "application/octet-stream",
};

async function handle(req: Request): Promise<Response> {
  if (req.method !== "GET" && req.method !== "HEAD") {
    return new Response("only GET and HEAD\n", { status: 405, headers: { allow: "GET, HEAD" } });
  }
  const file = FILES.get(new URL(req.url).pathname);
  if (!file) return new Response("not found\n", { status: 404 });
  let body: Uint8Array;
  try {
    body = await Deno.readFile(new URL(file, ROOT));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    return new Response(`${file} is missing: run deno task build:web\n`, { status: 404 });
  }
  const type = TYPES[file.slice(file.lastIndexOf(".") + 1)] ?? "application/octet-stream";
  // no-cache: the browser asks again after a rebuild instead of running an old script
  const headers = { "content-type": type, "cache-control": "no-cache" };
  return new Response(req.method === "HEAD" ? null : body as Uint8Array<ArrayBuffer>, { headers });
}

const a = parseCli(Deno.args, { port: { type: "string" } }, USAGE);
const port = intFlag(a.port, "port") ?? 8000;
if (port > 65535) fail(`--port must be at most 65535, got ${port}`);
try {
  Deno.serve({
    hostname: "127.0.0.1",
    port,
    onListen: ({ port }) =>
      console.log(`serving the web page at http://localhost:${port}/ (Ctrl-C stops)`),
  }, handle);
} catch (e) {
  fail(`cannot listen on port ${port}: ${(e as Error).message}`);
}
