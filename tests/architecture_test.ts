// The layers of docs/ARCHITECTURE.md, enforced: a module imports only from its own folder and the
// folders below it — kernels → io → model → diffusion → eval → train → bench → tasks / web — so
// no import runs up the layers. And what the browser loads imports neither node: nor npm: modules.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAYERS = ["kernels", "io", "model", "diffusion", "eval", "train", "bench", "tasks"];
const rank = (folder: string) => folder === "web" ? LAYERS.length - 1 : LAYERS.indexOf(folder);

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  // a static import starts its line (one in a doc comment's example does not)
  const re = /^(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/gm;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2]);
}

function sources(folder: string): string[] {
  return readdirSync(join(ROOT, folder)).filter((f) => f.endsWith(".ts")).map((f) =>
    `${folder}/${f}`
  );
}

Deno.test("no import runs up the layers", () => {
  const wrong: string[] = [];
  for (const folder of [...LAYERS, "web"]) {
    for (const file of sources(folder)) {
      for (const spec of importsOf(file)) {
        if (!spec.startsWith(".")) continue;
        const target = join(folder, spec).split("/")[0];
        if (target === folder || !(LAYERS.includes(target) || target === "web")) continue;
        if (rank(target) > rank(folder)) wrong.push(`${file} imports ${spec}`);
      }
    }
  }
  assert.deepEqual(wrong, []);
});

Deno.test("the modules a web page loads import no node: or npm: module", () => {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(file)) {
      assert.ok(spec.startsWith("."), `${file} imports '${spec}', which a browser cannot load`);
      visit(join(file, "..", spec));
    }
  };
  visit("web/app.ts");
  assert.ok(seen.has("kernels/mod.ts") && seen.has("model/pixart.ts"), [...seen].join(", "));
  // the browser test's own page (tests/browser_test.ts bundles it)
  visit("tests/browser_matmul_page.ts");
  assert.ok(seen.has("tests/matmul_cases.ts"), [...seen].join(", "));
});

Deno.test("no file holds a merge's conflict markers", () => {
  const found: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(join(ROOT, dir))) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (![".git", "output", "data", "node_modules", "dist"].includes(e.name)) walk(path);
      } else if (/\.(ts|md|yaml|json|html|css)$/.test(e.name)) {
        const text = readFileSync(join(ROOT, path), "utf8");
        if (/^(<{7}|>{7}) /m.test(text)) found.push(path);
      }
    }
  };
  walk("");
  assert.deepEqual(found, []);
});

Deno.test("no module reaches itself through its imports (no import cycle, type-only included)", () => {
  const graph = new Map<string, string[]>();
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(join(ROOT, dir))) {
      const path = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) {
        if (![".git", "output", "data", "node_modules", "dist", "fixtures"].includes(e.name)) {
          walk(path);
        }
      } else if (e.name.endsWith(".ts")) {
        graph.set(
          path,
          importsOf(path).filter((s) => s.startsWith(".")).map((s) => join(path, "..", s)),
        );
      }
    }
  };
  walk("");
  // depth-first search; a back edge to a module on the current path closes a cycle
  const cycles: string[] = [];
  const state = new Map<string, "open" | "done">();
  const path: string[] = [];
  const visit = (file: string) => {
    state.set(file, "open");
    path.push(file);
    for (const next of graph.get(file) ?? []) {
      if (state.get(next) === "open") {
        cycles.push([...path.slice(path.indexOf(next)), next].join(" → "));
      } else if (!state.has(next)) visit(next);
    }
    path.pop();
    state.set(file, "done");
  };
  for (const file of [...graph.keys()].sort()) if (!state.has(file)) visit(file);
  assert.ok(graph.has("kernels/autograd.ts") && graph.has("web/app.ts"), [...graph.keys()].join());
  assert.deepEqual(cycles, []);
});
