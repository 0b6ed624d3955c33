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
  return [...text.matchAll(/(?:import|export)\s[^;]*?from\s+"([^"]+)"|import\(\s*"([^"]+)"\s*\)/g)]
    .map((m) => m[1] ?? m[2]);
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
