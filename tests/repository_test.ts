// The repository stays light to clone: no tracked file outside checkpoints/ over 5 MB (training
// state, data sets and build outputs stay out), and the shipped models in checkpoints/ under 40 MB
// together. MB = 2^20 bytes.

import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const MB = 2 ** 20;

/**
 * The repository's files: those git tracks (a deleted one left out) in a git checkout, else every
 * file under the root, as in the copy of a clone's files that .ci/run tests.
 */
function repositoryFiles(): string[] {
  const out = new Deno.Command("git", {
    args: ["ls-files", "-z"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const inside = new Deno.Command("git", {
    args: ["rev-parse", "--show-toplevel"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "null",
  }).outputSync();
  const top = new TextDecoder().decode(inside.stdout).trim();
  if (out.success && inside.success && Deno.realPathSync(top) === Deno.realPathSync(ROOT)) {
    return new TextDecoder().decode(out.stdout).split("\0").filter(Boolean);
  }
  const files: string[] = [];
  const walk = (dir: string) => {
    for (const e of Deno.readDirSync(join(ROOT, dir))) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (e.isDirectory) walk(rel);
      else if (e.isFile) files.push(rel);
    }
  };
  walk("");
  return files;
}

function sizeOf(file: string): number | null {
  try {
    const st = Deno.statSync(join(ROOT, file));
    return st.isFile ? st.size : null;
  } catch {
    return null;
  }
}

Deno.test("no tracked file outside checkpoints/ is over 5 MB; checkpoints/ is under 40 MB", () => {
  const files = repositoryFiles();
  assert.ok(
    files.includes("deno.json") && files.includes("README.md"),
    "no repository files found",
  );
  const large: string[] = [];
  let shipped = 0;
  for (const file of files) {
    const size = sizeOf(file);
    if (size === null) continue;
    if (file.startsWith("checkpoints/")) shipped += size;
    else if (size > 5 * MB) large.push(`${file} (${(size / MB).toFixed(1)} MB)`);
  }
  assert.deepEqual(large, [], "training state and data belong outside the repository");
  assert.ok(
    shipped > 0 && shipped < 40 * MB,
    `checkpoints/ holds ${(shipped / MB).toFixed(1)} MB, the limit is 40 MB`,
  );
});
