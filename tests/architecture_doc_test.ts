// docs/ARCHITECTURE.md names what exists: every file it names (a path, or a bare file name in a
// folder's paragraph) is there and says what it does in its first lines, every function, class or
// method it names in code is defined, and one named right after a file is defined in that file.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const DOC = readFileSync(join(ROOT, "docs/ARCHITECTURE.md"), "utf8");
const FOLDERS = ["kernels", "io", "model", "diffusion", "eval", "train", "bench", "tasks", "web"];
const FILE = /^[\w./-]+\.(ts|py|md|yaml|json)$/;

/** The code spans of the document with the folder whose paragraph they stand in ("" outside one). */
function spans(): { code: string; folder: string; at: number }[] {
  const out: { code: string; folder: string; at: number }[] = [];
  let folder = "";
  let at = 0;
  for (const line of DOC.split("\n")) {
    const head = /^- \*\*(\w+)\/\*\*/.exec(line);
    if (head) folder = head[1];
    else if (!line.startsWith("  ")) folder = "";
    for (const m of line.matchAll(/`([^`]+)`/g)) {
      out.push({ code: m[1], folder, at: at + m.index! });
    }
    at += line.length + 1;
  }
  return out;
}

/** A named file's path: as written when it has a folder, else in its paragraph's folder. */
function pathOf(name: string, folder: string): string {
  return name.includes("/") || !folder ? name : `${folder}/${name}`;
}

/** Whether `text` defines `name`: a function, class, type, constant, method or field. */
function defines(text: string, name: string): boolean {
  const n = name.replace(/[$]/g, "\\$");
  return new RegExp(
    `(?:function\\*?|class|interface|type|const|let)\\s+${n}\\b|` +
      `^\\s*(?:(?:export|public|private|static|async|get|readonly)\\s+)*${n}\\s*[?]?\\s*[<(:=]`,
    "m",
  ).test(text);
}

const sources: Record<string, string> = {};
for (const folder of FOLDERS) {
  for (const f of readdirSync(join(ROOT, folder))) {
    if (f.endsWith(".ts")) sources[`${folder}/${f}`] = readFileSync(join(ROOT, folder, f), "utf8");
  }
}

/** `Name`, `name()`, `Class.method()`: a name in code, as the document writes one. */
const CODE_NAME = /^([A-Za-z_]\w*)(?:\.([A-Za-z_]\w*))?(\(\))?$/;

Deno.test("every file ARCHITECTURE.md names exists and says what it does in its first lines", () => {
  const missing: string[] = [], silent: string[] = [];
  const named = new Set(
    spans().filter((s) => FILE.test(s.code)).map((s) => pathOf(s.code, s.folder)),
  );
  assert.ok(named.size > 40, `only ${named.size} files found: is the pattern still right?`);
  for (const path of named) {
    if (!existsSync(join(ROOT, path))) {
      missing.push(path);
      continue;
    }
    if (!/\.(ts|py)$/.test(path)) continue;
    // the opening comment (after a #! line): at least a sentence before any code
    const text = readFileSync(join(ROOT, path), "utf8").replace(/^#!.*\n/, "");
    const head = /^(?:(?:\/\/.*\n)+|\/\*\*[\s\S]*?\*\/|(?:#.*\n)+|"""[\s\S]*?""")/.exec(text);
    if (!head || head[0].split(/\s+/).filter((w) => /\w/.test(w)).length < 8) silent.push(path);
  }
  assert.deepEqual(missing, [], "named in ARCHITECTURE.md, not in the repository");
  assert.deepEqual(silent, [], "named in ARCHITECTURE.md, without an opening comment");
});

Deno.test("every function, class and method ARCHITECTURE.md names is defined, in the file it follows", () => {
  const wrong: string[] = [];
  const all = spans();
  let checked = 0;
  all.forEach((s, k) => {
    const m = CODE_NAME.exec(s.code);
    // a word in code that is neither called, nor a class or camelCase name, is a config key,
    // a state-dict name or a command (log_every, t_block, …): not a definition to look for
    if (!m || FILE.test(s.code) || !(m[2] || m[3] || /[A-Z]/.test(s.code))) return;
    const [, first, method] = m;
    // right after a file's name (only white space between): defined in that file
    const prev = all[k - 1];
    const between = prev ? DOC.slice(prev.at + prev.code.length + 2, s.at) : "";
    const file = prev && FILE.test(prev.code) && /^\s*$/.test(between)
      ? pathOf(prev.code, prev.folder)
      : null;
    const where = file ? [file] : Object.keys(sources);
    const ok = where.some((f) => {
      const text = sources[f] ?? "";
      return method ? defines(text, first) && defines(text, method) : defines(text, first);
    });
    checked++;
    if (!ok) wrong.push(`${s.code}${file ? ` in ${file}` : ""}`);
  });
  assert.ok(checked > 30, `only ${checked} names checked: is the pattern still right?`);
  assert.deepEqual(wrong, []);
});
