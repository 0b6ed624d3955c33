// deno task build:web — bundles the web page's script, web/app.ts with the kernels, model and
// diffusion modules it imports, into web/dist/app.js with `deno bundle --platform browser`.
// With --if-stale (as `deno task serve` runs it) only when the bundle is missing or older than a
// module it is built from.

import { fail, parseCli } from "./cli.ts";

const USAGE = `
Bundles web/app.ts and what it imports into web/dist/app.js (and its source map) for the browser.

  deno task build:web [--if-stale]

  --if-stale   build only when web/dist/app.js is missing or older than one of its modules
`;

const ENTRY = "web/app.ts";
const OUT = "web/dist/app.js";

interface Graph {
  modules: {
    specifier: string;
    local?: string;
    /** `code`: imported for its code (a type-only import has none and leaves no trace) */
    dependencies?: { specifier: string; code?: { specifier: string } }[];
  }[];
}

/** Runs the `deno` on the PATH (what --allow-run=deno allows); its stdout. */
async function deno(args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("deno", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail("deno is not on the PATH");
    throw e;
  }
  const text = new TextDecoder();
  if (!out.success) {
    fail(`deno ${args[0]} failed: ${text.decode(out.stderr).trim().split("\n").pop()}`);
  }
  return text.decode(out.stdout);
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return -Infinity;
    throw e;
  }
}

const a = parseCli(Deno.args, { "if-stale": { type: "boolean" } }, USAGE);
const graph: Graph = JSON.parse(await deno(["info", "--json", ENTRY]));
// A browser has no Deno, Node or npm modules: a shared module that imports one (e.g. node:fs for
// file access) would bundle into a script that fails on load, so that is an error here.
for (const m of graph.modules) {
  for (const d of m.dependencies ?? []) {
    if (d.code && !d.code.specifier.startsWith("file:")) {
      const from = m.local ? m.local.slice(Deno.cwd().length + 1) : m.specifier;
      fail(`${ENTRY} cannot run in a browser: ${from} imports ${d.specifier}`);
    }
  }
}
const sources = graph.modules.filter((m) => m.local).map((m) => m.local!);
if (a["if-stale"] && mtime(OUT) >= Math.max(...sources.map(mtime))) {
  console.error(`${OUT} is up to date`);
} else {
  await deno([
    "bundle",
    "--platform",
    "browser",
    "--format",
    "esm",
    "--sourcemap",
    "linked",
    "-o",
    OUT,
    ENTRY,
  ]);
  console.error(
    `built ${OUT} from ${sources.length} modules (${
      (Deno.statSync(OUT).size / 1024).toFixed(0)
    } KB)`,
  );
}
