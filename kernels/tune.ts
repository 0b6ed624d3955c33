// Kernel variants chosen per adapter. A kernel family (the matmul, attention) has several
// implementations of the same arithmetic (kernels/matmul_wgsl.ts); which is fastest depends on the
// adapter: a CPU rasterizer wants large register tiles, a GPU workgroup-shared tiles. Each shape
// gets the variant that ran fastest on this adapter, timed once (`tunePending`, which
// `warmUp` calls before the first step) and remembered in a file, so later runs start with it:
//
//   $PIXART_CACHE_DIR, else $XDG_CACHE_HOME/pixart-webgpu, else ~/.cache/pixart-webgpu
//     kernel-choices.json   { "version": 1, "adapters": { "<adapter>": { "<family>:<shape>":
//                             { "choice": "reg8", "ms": { "reg8": 1.2, … } } } } }
//
// The file is written atomically (a temporary file, then a rename); one that cannot be parsed is
// ignored and rewritten, and so are entries in it of the wrong type. Without file access (a browser, or no read/write permission) the choices
// live for the process only.
//
// Timing a shape costs a compile of every candidate: on a CPU adapter that is about a second per
// register-tiled kernel, more than the choice can save in a short run, so by default only GPU
// adapters time on first use and CPU adapters use their default (PIXART_TUNE=always times on every
// adapter, =never on none). PIXART_KERNELS=matmul=shared,… forces a variant for a whole process;
// `withKernelVariant` does so for a block of synchronous code (tests).

import { deviceInfo } from "./device.ts";
import { hostFs, readEnv, userCacheDir } from "./cache_dir.ts";

export interface Choice {
  choice: string;
  /** median ms per candidate when it was timed */
  ms?: Record<string, number>;
}

interface CacheFile {
  version: 1;
  adapters: Record<string, Record<string, Choice>>;
}

export interface TuneTask {
  family: string;
  key: string;
  candidates: readonly string[];
  /** makes inputs; `run(c)` records one execution of candidate c on them */
  prepare: () => { run: (candidate: string) => void; dispose: () => void };
}

const FILE = "kernel-choices.json";

let cache: CacheFile | null = null;
const pending = new Map<string, TuneTask>();
const overrides = new Map<string, string>();

const env = readEnv;

/** The folder of the kernel-choice file (null where there is no file system). */
export function cacheDir(): string | null {
  return userCacheDir();
}

function emptyCache(): CacheFile {
  return { version: 1, adapters: {} };
}

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * The file's adapters and choices that have the shape a choice has; anything else in it (an
 * adapter entry that is a string, a choice without a variant) is dropped, and so rewritten at the
 * next save, as a file that cannot be parsed is.
 */
function validAdapters(parsed: unknown): CacheFile["adapters"] {
  const out: CacheFile["adapters"] = {};
  if (!isRecord(parsed) || parsed.version !== 1 || !isRecord(parsed.adapters)) return out;
  for (const [name, choices] of Object.entries(parsed.adapters)) {
    if (!isRecord(choices)) continue;
    const kept: Record<string, Choice> = {};
    for (const [key, c] of Object.entries(choices)) {
      if (isRecord(c) && typeof c.choice === "string" && (c.ms === undefined || isRecord(c.ms))) {
        kept[key] = c as unknown as Choice;
      }
    }
    if (Object.keys(kept).length) out[name] = kept;
  }
  return out;
}

function readFile(dir: string): CacheFile["adapters"] {
  return validAdapters(JSON.parse(hostFs!.readTextFileSync(`${dir}/${FILE}`)));
}

function load(): CacheFile {
  if (cache) return cache;
  cache = emptyCache();
  const dir = cacheDir();
  if (!dir || !hostFs) return cache;
  try {
    cache.adapters = readFile(dir);
  } catch { /* missing, unreadable or corrupt: start empty (rewritten at the next save) */ }
  return cache;
}

function save(): void {
  const dir = cacheDir();
  if (!dir || !cache || !hostFs) return;
  try {
    // another process may have added choices since we read the file: keep them
    for (const [name, choices] of Object.entries(readFile(dir))) {
      cache.adapters[name] = { ...choices, ...cache.adapters[name] };
    }
  } catch { /* no file yet, or a corrupt one: ours replaces it */ }
  try {
    hostFs.mkdirSync(dir, { recursive: true });
    const tmp = `${dir}/${FILE}.${hostFs.pid}.${Date.now()}.tmp`;
    hostFs.writeTextFileSync(tmp, JSON.stringify(cache, null, 1) + "\n");
    hostFs.renameSync(tmp, `${dir}/${FILE}`);
  } catch { /* no write permission or a read-only disk: keep the choices in memory */ }
}

function adapterName(): string {
  return deviceInfo().adapter || "unknown adapter";
}

/** Whether the adapter is a CPU rasterizer (lavapipe / llvmpipe, SwiftShader, WARP). */
export function isCpuAdapter(): boolean {
  const d = deviceInfo();
  return d.fallback || /llvmpipe|lavapipe|swiftshader|warp|software/i.test(d.adapter);
}

function forced(family: string): string | undefined {
  const o = overrides.get(family);
  if (o) return o;
  const spec = env("PIXART_KERNELS");
  if (!spec) return undefined;
  for (const part of spec.split(",")) {
    const [f, v] = part.split("=").map((s) => s.trim());
    if (f === family && v) return v;
  }
  return undefined;
}

/** Whether shapes without a remembered choice are timed at the next `tunePending`. */
export function tuningEnabled(): boolean {
  const mode = (env("PIXART_TUNE") ?? "auto").toLowerCase();
  if (mode === "always" || mode === "1" || mode === "true") return true;
  if (mode === "never" || mode === "0" || mode === "false") return false;
  return !isCpuAdapter();
}

/** The remembered choice for a shape on this adapter, if any. */
export function rememberedChoice(family: string, key: string): Choice | undefined {
  return load().adapters[adapterName()]?.[`${family}:${key}`];
}

/**
 * The variant to run: a forced one (if it is a candidate), else the remembered choice, else
 * `fallback`. A shape with no remembered choice is queued for timing when tuning is enabled.
 */
export function chooseVariant(task: TuneTask, fallback: string): string {
  const v = choose(task, fallback);
  chosen.set(`${task.family}:${task.key}`, v);
  return v;
}

function choose(task: TuneTask, fallback: string): string {
  const f = forced(task.family);
  if (f !== undefined) {
    // a forced variant that cannot run this shape (e.g. vec4 loads on odd sizes) falls back
    return task.candidates.includes(f) ? f : fallback;
  }
  const c = rememberedChoice(task.family, task.key);
  if (c && task.candidates.includes(c.choice)) return c.choice;
  if (task.candidates.length > 1 && tuningEnabled()) {
    const id = `${task.family}:${task.key}`;
    if (!pending.has(id)) pending.set(id, task);
  }
  return fallback;
}

const chosen = new Map<string, string>();

/**
 * The variant each "family:shape" ran last in this process (what a benchmark reports); with
 * `clear`, forgets them, so the next call lists only what ran in between.
 */
export function chosenVariants(clear = false): Map<string, string> {
  const out = new Map(chosen);
  if (clear) chosen.clear();
  return out;
}

/** Shapes waiting to be timed. */
export function pendingTuning(): number {
  return pending.size;
}

/**
 * Runs `fn` (synchronous) with `variant` forced for `family`, e.g. to test each variant on the
 * same inputs. Refuses an async fn: the override would outlive its first await.
 */
export function withKernelVariant<T>(family: string, variant: string, fn: () => T): T {
  const prev = overrides.get(family);
  overrides.set(family, variant);
  let out: T;
  try {
    out = fn();
  } finally {
    if (prev === undefined) overrides.delete(family);
    else overrides.set(family, prev);
  }
  if (typeof (out as { then?: unknown } | null)?.then === "function") {
    throw new Error("withKernelVariant(fn): fn must be synchronous");
  }
  return out;
}

/** Records a choice for this adapter (and writes the file). */
export function rememberChoice(family: string, key: string, c: Choice): void {
  const file = load();
  const name = adapterName();
  (file.adapters[name] ??= {})[`${family}:${key}`] = c;
  save();
}

export interface TuneProgress {
  done: number;
  total: number;
  /** the shape being timed */
  key: string;
}

/**
 * Times every candidate of each queued shape (`reps` runs after an untimed one that compiles)
 * and remembers the fastest. `time(run)` measures one recorded run in ms (the caller supplies
 * it: GPU timestamps where the adapter has them, else the wall clock around a sync).
 */
export async function tunePending(
  time: (run: () => void) => Promise<number>,
  opts: { reps?: number; onProgress?: (p: TuneProgress) => void } = {},
): Promise<number> {
  const reps = opts.reps ?? 3;
  const tasks = [...pending.values()];
  pending.clear();
  let done = 0;
  for (const task of tasks) {
    opts.onProgress?.({ done, total: tasks.length, key: `${task.family}:${task.key}` });
    const { run, dispose } = task.prepare();
    const ms: Record<string, number> = {};
    try {
      for (const c of task.candidates) {
        await time(() => run(c)); // compile, first allocations
        const t: number[] = [];
        for (let r = 0; r < reps; r++) t.push(await time(() => run(c)));
        t.sort((a, b) => a - b);
        ms[c] = Math.round(t[t.length >> 1] * 1000) / 1000;
      }
    } finally {
      dispose();
    }
    const best = Object.entries(ms).sort((a, b) => a[1] - b[1])[0][0];
    rememberChoice(task.family, task.key, { choice: best, ms });
    done++;
  }
  if (tasks.length) opts.onProgress?.({ done, total: tasks.length, key: "" });
  return tasks.length;
}

/** Forgets the loaded file (tests: a new PIXART_CACHE_DIR is read on next use). */
export function resetTuningCache(): void {
  cache = null;
  pending.clear();
}
