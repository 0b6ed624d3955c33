// The layers of docs/ARCHITECTURE.md, enforced: a module imports only from its own folder and the
// folders below it — kernels → io → model → diffusion → eval → train → bench → tasks / web — so
// no import runs up the layers. And what the browser loads — the page, and the trainer it runs —
// imports neither node: nor npm: modules and calls no Deno API.

import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const LAYERS = ["kernels", "io", "model", "diffusion", "eval", "train", "bench", "tasks"];
const rank = (folder: string) => folder === "web" ? LAYERS.length - 1 : LAYERS.indexOf(folder);

function importsOf(file: string): string[] {
  const text = readFileSync(join(ROOT, file), "utf8");
  // a static import starts its line (one in a doc comment's example does not); `import "x"` too
  const re =
    /^(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)|^import\s+"([^"]+)"/gm;
  return [...text.matchAll(re)].map((m) => m[1] ?? m[2] ?? m[3]);
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

/**
 * The modules `entry` loads, following every import (type-only ones too: a type from a module
 * that is not browser-safe is a step away from a value from it).
 */
function graphOf(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (file: string) => {
    if (seen.has(file)) return;
    seen.add(file);
    for (const spec of importsOf(file)) {
      assert.ok(spec.startsWith("."), `${file} imports '${spec}', which a browser cannot load`);
      visit(join(file, "..", spec));
    }
  };
  visit(entry);
  return seen;
}

/** Calls into Deno's own namespace (`Deno.readFileSync`, `Deno.args`, …) outside comments. */
function denoCalls(file: string): string[] {
  const code = readFileSync(join(ROOT, file), "utf8").replace(/\/\*[\s\S]*?\*\/|\/\/.*$/gm, "");
  return [...code.matchAll(/\bDeno\.[A-Za-z_]+/g)].map((m) => `${file}: ${m[0]}`);
}

Deno.test("the modules a web page loads import no node: or npm: module and call no Deno API", () => {
  const page = graphOf("web/app.ts");
  assert.ok(page.has("kernels/mod.ts") && page.has("model/pixart.ts"), [...page].join(", "));
  // the page trains with the command line's trainer: it and what it loads are the page's too
  const trainer = graphOf("train/trainer.ts");
  for (const m of ["train/batch.ts", "train/lr_schedule.ts", "train/run_store.ts"]) {
    assert.ok(trainer.has(m), `the trainer loads ${m}`);
  }
  // the browser test's own page (tests/browser_test.ts bundles it)
  const matmul = graphOf("tests/browser_matmul_page.ts");
  assert.ok(matmul.has("tests/matmul_cases.ts"), [...matmul].join(", "));
  const calls = [...new Set([...page, ...trainer, ...matmul])].flatMap(denoCalls);
  assert.deepEqual(calls, [], "Deno calls in modules a browser loads");
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
