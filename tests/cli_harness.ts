// Running the command-line tasks as a user does, for the end-to-end tests: each task as a
// subprocess with the permission set deno.json gives it, and the checks every task's output must
// pass (a one-line error, exit status 1, no stack trace).

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { writePng } from "../io/png.ts";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const TINY = "configs/tiny.yaml";
const TIMEOUT_MS = 180_000;

/** The tasks' environment: image-folder caches go to a temporary folder, not the user's. */
const ENV = {
  XDG_RUNTIME_DIR: "/tmp",
  PIXART_DEBUG: "",
  NO_COLOR: "1",
  PIXART_CACHE_DIR: Deno.makeTempDirSync({ prefix: "pixart-cache-" }),
};
globalThis.addEventListener(
  "unload",
  () => Deno.removeSync(ENV.PIXART_CACHE_DIR, { recursive: true }),
);

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
  args: string[];
}

export async function task(
  script:
    | "train"
    | "train_lora"
    | "sample"
    | "eval"
    | "export"
    | "bench"
    | "caption_gap"
    | "data_tinted"
    | "data_words",
  args: string[],
  denoFlags: string[] = [],
  timeoutMs = TIMEOUT_MS,
): Promise<Run> {
  const permissions = script === "train_lora"
    ? "train"
    : script === "caption_gap"
    ? "eval"
    : script === "data_tinted" || script === "data_words"
    ? "data"
    : script;
  const child = new Deno.Command(Deno.execPath(), {
    // each task with the permission set deno.json gives it, as `deno task` runs it
    args: ["run", `-P=${permissions}`, ...denoFlags, "-q", `tasks/${script}.ts`, ...args],
    cwd: ROOT,
    env: ENV,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  try {
    const out = await child.output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
      args,
    };
  } finally {
    clearTimeout(timer);
  }
}

export const train = (args: string[]) => task("train", args);
export const trainLora = (args: string[]) => task("train_lora", args);
export const sample = (args: string[], denoFlags: string[] = []) => task("sample", args, denoFlags);
export const evaluate = (args: string[]) => task("eval", args);
export const exportTask = (args: string[]) => task("export", args);

export function describe(r: Run): string {
  return `\n$ ${
    r.args.join(" ")
  }\nexit ${r.code}\n--- stderr ---\n${r.stderr}--- stdout ---\n${r.stdout}`;
}

export function assertOk(r: Run): void {
  assert.equal(r.code, 0, `the task failed:${describe(r)}`);
}

/** Exit status 1, exactly one "error: …" line, printed last, matching `re`; no stack trace. */
export function assertOneLineError(r: Run, re: RegExp): void {
  assert.equal(r.code, 1, `expected exit status 1:${describe(r)}`);
  const lines = r.stderr.split("\n").filter((l) => l.trim() !== "");
  const errors = lines.filter((l) => l.startsWith("error: "));
  assert.equal(errors.length, 1, `expected one error line:${describe(r)}`);
  assert.equal(lines.at(-1), errors[0], `the error should be the last line:${describe(r)}`);
  assert.ok(!/^\s+at /m.test(r.stderr), `stack trace in stderr:${describe(r)}`);
  assert.ok(!/uncaught/i.test(r.stderr), `uncaught error:${describe(r)}`);
  assert.match(errors[0], re, describe(r));
}

/** A training run in the background: wait for a line of its output, signal it, collect it. */
export class LiveRun {
  #child: Deno.ChildProcess;
  #stderr = "";
  #done: Promise<Run>;
  #waiters: { re: RegExp; resolve: () => void }[] = [];

  constructor(readonly args: string[]) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-P=train", "-q", "tasks/train.ts", ...args],
      cwd: ROOT,
      env: ENV,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    const timer = setTimeout(() => child.kill("SIGKILL"), TIMEOUT_MS);
    const dec = new TextDecoder();
    const readErr = (async () => {
      for await (const chunk of child.stderr) {
        this.#stderr += dec.decode(chunk, { stream: true });
        this.#waiters = this.#waiters.filter((w) => {
          if (!w.re.test(this.#stderr)) return true;
          w.resolve();
          return false;
        });
      }
    })();
    this.#done = (async () => {
      const stdout = new Response(child.stdout).text();
      const status = await child.status;
      await readErr;
      clearTimeout(timer);
      for (const w of this.#waiters) w.resolve();
      return { code: status.code, stdout: await stdout, stderr: this.#stderr, args };
    })();
  }

  /** Resolves once stderr matches `re` (or the run has ended). */
  waitFor(re: RegExp): Promise<void> {
    if (re.test(this.#stderr)) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push({ re, resolve }));
  }

  kill(signal: Deno.Signal): void {
    this.#child.kill(signal);
  }

  get pid(): number {
    return this.#child.pid;
  }

  done(): Promise<Run> {
    return this.#done;
  }
}

/**
 * A small colour image folder shaped like the emoji set: metadata.jsonl with captions, category
 * and subcategory columns, 12 images of coloured squares (the real set is not in the repository).
 */
export function tinyImageFolder(dir: string): string {
  if (existsSync(join(dir, "metadata.jsonl"))) return dir;
  const colours: [string, number[]][] = [["red", [220, 40, 40]], ["green", [40, 200, 60]], [
    "blue",
    [40, 60, 220],
  ]];
  const lines: string[] = [];
  colours.forEach(([name, rgb], c) => {
    for (let k = 0; k < 4; k++) {
      const px = new Uint8Array(20 * 20 * 3);
      for (let i = 0; i < 400; i++) {
        const inside = Math.abs((i % 20) - 10) < 3 + k && Math.abs(Math.floor(i / 20) - 10) < 3 + k;
        px.set(inside ? rgb : [255, 255, 255], 3 * i);
      }
      const file = `images/${name}-${k}.png`;
      writePng(join(dir, file), 20, 20, 3, px);
      lines.push(JSON.stringify({
        file_name: file,
        text: `${name} square number ${k}`,
        category: ["warm", "cool", "cool"][c],
        subcategory: name,
        label: name,
      }));
    }
  });
  writeFileSync(join(dir, "metadata.jsonl"), lines.join("\n") + "\n");
  return dir;
}
