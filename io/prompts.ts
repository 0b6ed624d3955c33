// Prompt files: what `--prompts-file` reads and what is written beside every sample grid, in one
// format so that a grid's prompts can be drawn again from its .txt. One prompt per line, in grid
// order; a line may hold several prompts separated by "|". A backslash escapes what would break
// that: "\n" a line break, "\|" a literal bar, "\\" a backslash.

import { utf8Text } from "./utf8_text.ts";
import { existsSync, readFileSync } from "node:fs";

/**
 * The most a prompts file may hold: a million characters is thousands of prompts, far more than
 * a grid draws; anything larger is a mistake (a device, a log, a data set) read into memory.
 */
export const PROMPTS_FILE_MAX_BYTES = 2 ** 20;

/** The text of a prompts file: one escaped prompt per line. */
export function promptsText(prompts: readonly string[]): string {
  return prompts.map(escapePrompt).join("\n") + "\n";
}

export function escapePrompt(p: string): string {
  return p.replace(/\\/g, "\\\\").replace(/\r?\n/g, "\\n").replace(/\|/g, "\\|");
}

/** The prompts of a prompts file's text (blank lines and empty prompts are skipped). */
export function parsePrompts(text: string): string[] {
  const out: string[] = [];
  for (const line of text.split(/\r?\n/)) {
    let cur = "";
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (ch === "\\" && i + 1 < line.length) {
        const next = line[++i];
        cur += next === "n" ? "\n" : next;
      } else if (ch === "|") {
        out.push(cur);
        cur = "";
      } else cur += ch;
    }
    out.push(cur);
  }
  return out.map((p) => p.trim()).filter(Boolean);
}

/** Prompts from a file (one error line when it is missing). */
export function readPromptsFile(path: string): string[] {
  if (!existsSync(path)) throw new Error(`prompts file '${path}' not found`);
  const st = Deno.statSync(path);
  if (st.isDirectory) {
    throw new Error(`prompts file '${path}' is a folder: pass a text file, one prompt per line`);
  }
  // a device (/dev/zero), a pipe or a socket can be endless: only a file has a size to bound
  if (!st.isFile) {
    throw new Error(
      `prompts file '${path}' is not a regular file: pass a text file, one prompt per line`,
    );
  }
  const bytes = readAtMost(path, PROMPTS_FILE_MAX_BYTES + 1);
  if (bytes.length > PROMPTS_FILE_MAX_BYTES) {
    throw new Error(
      `prompts file '${path}' is over 1 MiB (${Math.max(st.size, bytes.length)} bytes): split ` +
        `it into smaller files`,
    );
  }
  return parsePrompts(utf8Text(bytes, `prompts file '${path}'`));
}

/** The first `limit` bytes of a file (a file that grows while read cannot exceed it). */
function readAtMost(path: string, limit: number): Uint8Array {
  const f = Deno.openSync(path, { read: true });
  try {
    const buf = new Uint8Array(limit);
    let n = 0;
    while (n < limit) {
      const r = f.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    return buf.subarray(0, n);
  } finally {
    f.close();
  }
}

/** The 64 prompts of the sample grid for digits (configs/lesson_prompts.txt, grid order). */
export function lessonPrompts(): string[] {
  const path = new URL("../configs/lesson_prompts.txt", import.meta.url);
  return readFileSync(path, "utf8").split(/\s+/).filter(Boolean);
}
