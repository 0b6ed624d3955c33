// Checkpoints from their bytes: the contents of a parsed file (model config, weights, EMA weights,
// optimiser moments, metadata) and a model built from them. No file access here, so a web page can
// load a checkpoint it fetched; model/checkpoint.ts reads and writes files and re-exports this.

import { tensor } from "../kernels/mod.ts";
import {
  parseSafetensors,
  roundToHalf,
  type SafetensorsFile,
  type TensorInput,
} from "../io/safetensors_bytes.ts";
import { checkModelConfig, DEFAULT_MODEL, type ModelConfig, modelSpace } from "./config.ts";
import { posEmbed2d } from "./embeddings.ts";
import { Params } from "./params.ts";
import { PixArt, pixartSpecs } from "./pixart.ts";
import { isLoraFile } from "./lora.ts";
import type { WordTable } from "../io/word_table.ts";
import { WORD_RULES } from "./word_tokenizer.ts";

export const EMA_PREFIX = "ema.";
export const OPTIM_PREFIX = "optim.";
/** The fixed position table, stored beside the weights so PyTorch's strict loading finds it. */
export const POS_EMBED = "pos_embed";

export interface SaveOptions {
  ema?: Params | null;
  /** optimiser tensors by name (moments), stored under `optim.` */
  optim?: Map<string, { shape: readonly number[]; data: Float32Array }>;
  metadata?: Record<string, string>;
  step: number;
  dtype?: "F32" | "F16";
}

/**
 * A checkpoint's tensors and metadata: every parameter (and EMA weight) read back from the GPU,
 * the optimiser's moments, the position table. Refused when a value is not finite, so a diverged
 * model is never written; `where` (where it was to be written) labels that error.
 */
export async function checkpointTensors(
  model: PixArt,
  o: SaveOptions,
  where: string,
): Promise<{ tensors: Record<string, TensorInput>; metadata: Record<string, string> }> {
  const tensors: Record<string, TensorInput> = {};
  for (const [name, t] of model.params.map) {
    tensors[name] = { shape: t.shape, data: await t.read() };
  }
  if (o.ema) {
    for (const [name, t] of o.ema.map) {
      tensors[EMA_PREFIX + name] = { shape: t.shape, data: await t.read() };
    }
  }
  for (const [name, t] of o.optim ?? []) {
    tensors[OPTIM_PREFIX + name] = { shape: t.shape, data: t.data };
  }
  // the fixed table too: the official PixArt-α class keeps it in its state dict (a buffer)
  tensors[POS_EMBED] = { shape: model.posEmbed.shape, data: await model.posEmbed.read() };
  // a diverged model is never written: the last good checkpoint stays the newest
  for (const [name, t] of Object.entries(tensors)) {
    const bad = t.data instanceof Float32Array ? firstNonFinite(t.data) : -1;
    if (bad >= 0) {
      throw new Error(
        `not writing '${where}': '${name}' holds ${t.data[bad]} at index ${bad} (the weights ` +
          `diverged)`,
      );
    }
  }
  const metadata: Record<string, string> = {
    format: "pixart-webgpu",
    ...o.metadata,
    config: JSON.stringify(model.config),
    stage: String(model.config.stage),
    step: String(o.step),
    num_heads: String(model.config.num_heads),
  };
  if (model.config.stage === 2) {
    metadata.tokenizer = JSON.stringify(model.tokenizerSpec());
  }
  return { tensors, metadata };
}

/** The file name of a training run's checkpoint at `step`: the one pattern trainer and readers use. */
export function checkpointFile(step: number): string {
  return `checkpoint-${step}.safetensors`;
}

/** The step of a file named by checkpointFile, or null for any other name. */
export function checkpointStep(fileName: string): number | null {
  const m = /^checkpoint-(\d+)\.safetensors$/.exec(fileName);
  return m ? Number(m[1]) : null;
}

/**
 * A model config from checkpoint metadata JSON: a key of the model's with the wrong type is an
 * error; other keys (the training's, beside the model's) are passed over.
 */
export function modelConfigFromJson(json: string, where = "checkpoint"): ModelConfig {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(json);
  } catch {
    throw new Error(`${where}: its config metadata is not valid JSON`);
  }
  const c: Record<string, unknown> = { ...DEFAULT_MODEL };
  for (const [k, v] of Object.entries(raw)) {
    if (!(k in DEFAULT_MODEL)) continue; // training keys live beside the model's
    const want = typeof DEFAULT_MODEL[k as keyof ModelConfig];
    const got = typeof v;
    if (got !== want) throw new Error(`${where}: config '${k}' must be a ${want}`);
    c[k] = v;
  }
  const cfg = c as unknown as ModelConfig;
  try {
    checkModelConfig(cfg);
  } catch (e) {
    throw new Error(`${where}: ${(e as Error).message}`);
  }
  return cfg;
}

export interface CheckpointContents {
  model: ModelConfig;
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array> | null;
  optim: Map<string, Float32Array>;
  /** the stored position table [1, N, D] (a buffer, not a parameter), or null */
  posEmbed: Float32Array | null;
  /** every tensor's shape as stored, by its name in the file (with its `ema.`/`optim.` prefix) */
  shapes: Map<string, readonly number[]>;
  metadata: Record<string, string>;
  step: number;
}

/** Steps above this are not a training run's: a hostile or corrupt file. */
const MAX_STEP = 2 ** 40;

/** The `step` metadata: a non-negative integer written in decimal, nothing else. */
function stepOf(metadata: Record<string, string>, path: string): number {
  const s = metadata.step ?? "0";
  const n = Number(s);
  if (!/^\d{1,15}$/.test(s) || !(n <= MAX_STEP)) {
    throw new Error(`checkpoint '${path}': its step metadata ${JSON.stringify(s)} is not a step`);
  }
  return n;
}

/** A checkpoint's contents from its parsed file; `path` names it in errors. */
export function checkpointContents(f: SafetensorsFile, path: string): CheckpointContents {
  if (isLoraFile(f.metadata)) {
    throw new Error(
      `'${path}' is a LoRA adapter, not a model: apply it to its base model with --lora ` +
        `(base: ${f.metadata.base_model ?? "its base_model metadata"})`,
    );
  }
  if (!f.metadata.config) {
    throw new Error(
      `checkpoint '${path}' has no model config in its metadata: not a PixArt checkpoint`,
    );
  }
  const model = modelConfigFromJson(f.metadata.config, `checkpoint '${path}'`);
  const step = stepOf(f.metadata, path);
  const params = new Map<string, Float32Array>();
  const optim = new Map<string, Float32Array>();
  const shapes = new Map<string, readonly number[]>();
  let ema: Map<string, Float32Array> | null = null;
  let posEmbed: Float32Array | null = null;
  checkpointClassNames(f.metadata, path); // checked here, before anything is built from it
  for (const [name, e] of f.tensors) {
    if (!(e.data instanceof Float32Array)) {
      throw new Error(
        `checkpoint '${path}': '${name}' is ${e.dtype}, not floating point: no tensor of a ` +
          `PixArt checkpoint is (was it written for another model?)`,
      );
    }
    shapes.set(name, e.shape);
    if (name === POS_EMBED) {
      posEmbed = e.data;
      continue;
    }
    if (name.startsWith(EMA_PREFIX)) (ema ??= new Map()).set(name.slice(EMA_PREFIX.length), e.data);
    else if (name.startsWith(OPTIM_PREFIX)) optim.set(name.slice(OPTIM_PREFIX.length), e.data);
    else params.set(name, e.data);
  }
  return { model, params, ema, optim, posEmbed, shapes, metadata: f.metadata, step };
}

/** A checkpoint's contents from the bytes of its file (e.g. fetched); `name` labels errors. */
export function parseCheckpoint(bytes: Uint8Array, name: string): CheckpointContents {
  return checkpointContents(parseSafetensors(bytes, name), name);
}

/** The training stage that wrote a checkpoint (stage 3 trains a stage-2 model further). */
export function trainStageOf(ck: CheckpointContents): 1 | 2 | 3 {
  const s = Number(ck.metadata.train_stage ?? ck.model.stage);
  return s === 3 ? 3 : s === 2 ? 2 : 1;
}

/** The class names a checkpoint's model was trained on (its `classes` metadata), or null. */
export function checkpointClassNames(
  metadata: Record<string, string>,
  name = "checkpoint",
): readonly string[] | null {
  if (metadata.classes === undefined) return null;
  let names: unknown;
  try {
    names = JSON.parse(metadata.classes);
  } catch { /* reported below */ }
  if (names === null) return null; // a run on data without classes records "null"
  if (!Array.isArray(names) || !names.every((n) => typeof n === "string")) {
    throw new Error(
      `checkpoint '${name}': its classes metadata is not a JSON list of names: the file is ` +
        `damaged or was not written by this project`,
    );
  }
  return names;
}

/**
 * Builds a model from checkpoint tensors, as PyTorch's strict `load_state_dict`: every expected
 * name must be present with exactly its shape, and every value finite. With `useEma`, the EMA
 * weights are loaded when the checkpoint has them. Errors name the file and the tensor.
 */
export function modelFromCheckpoint(
  ck: CheckpointContents,
  path: string,
  useEma = false,
  words: WordTable | null = null,
): PixArt {
  checkWordTable(ck, path, words);
  const ema = useEma && !!ck.ema;
  const src = ema ? ck.ema! : ck.params;
  const specs = pixartSpecs(ck.model);
  // everything is checked on the host before any GPU memory is taken
  for (const s of specs) {
    const stored = (ema ? EMA_PREFIX : "") + s.name;
    const data = src.get(s.name);
    if (!data) throw new Error(`checkpoint '${path}' is missing '${stored}'`);
    const shape = ck.shapes.get(stored) ?? [data.length];
    if (shape.length !== s.shape.length || shape.some((d, k) => d !== s.shape[k])) {
      throw new Error(
        `checkpoint '${path}': '${stored}' is [${shape}], the model expects [${s.shape}]`,
      );
    }
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      throw new Error(
        `checkpoint '${path}': '${stored}' holds ${data[bad]} at index ${bad}: the weights ` +
          `are not finite (a diverged run?); use an earlier checkpoint`,
      );
    }
  }
  // a tensor the config has no place for: a later release's layer (or another model's) would be
  // dropped and the model would draw something else without a word
  const known = new Set(specs.map((s) => s.name));
  for (const [prefix, stored] of [["", ck.params], [EMA_PREFIX, ck.ema]] as const) {
    for (const name of stored?.keys() ?? []) {
      if (!known.has(name)) {
        throw new Error(
          `checkpoint '${path}' holds '${prefix}${name}', which a model of its config does not ` +
            `have: it was written by a later release or for another model`,
        );
      }
    }
  }
  if (ck.posEmbed) checkPosEmbed(ck, path);
  const P = new Params();
  try {
    for (const s of specs) P.set(s.name, tensor(src.get(s.name)!, s.shape));
  } catch (e) {
    P.dispose();
    throw e;
  }
  const model = new PixArt(ck.model, P, true, words);
  model.halfExact = new Set(
    specs.filter((s) => s.shape.length === 2 && isHalfExact(src.get(s.name)!)).map((s) => s.name),
  );
  return model;
}

/** Whether a checkpoint's model reads its captions through a word table (model.word_table). */
export function needsWordTable(ck: CheckpointContents): boolean {
  return ck.model.stage === 2 && ck.model.text_encoder === "words";
}

/**
 * The SHA-256 of the word table a checkpoint was trained with (its `tokenizer` metadata), once
 * its word rules are found to be this release's.
 */
export function recordedWordTable(ck: CheckpointContents, path: string): string {
  let spec: { kind?: unknown; sha256?: unknown; rules?: unknown } = {};
  try {
    spec = JSON.parse(ck.metadata.tokenizer ?? "{}");
  } catch {
    // reported below
  }
  if (
    spec.kind !== "words" || typeof spec.sha256 !== "string" || !/^[0-9a-f]{64}$/.test(spec.sha256)
  ) {
    throw new Error(`checkpoint '${path}' reads words but records no word table's SHA-256`);
  }
  // the same words but split by other rules would reach other rows without a word
  if (spec.rules !== WORD_RULES) {
    throw new Error(
      `checkpoint '${path}' reads prompts by the word rules ${JSON.stringify(spec.rules)}, this ` +
        `release by ${JSON.stringify(WORD_RULES)}: use the release that wrote it`,
    );
  }
  return spec.sha256;
}

/**
 * A words model runs only with the table it was trained with: another table (other words, other
 * vectors) is a one-line error. Without a table a words model loads, to be exported, not drawn.
 */
export function checkWordTable(
  ck: CheckpointContents,
  path: string,
  words: WordTable | null,
): void {
  if (!needsWordTable(ck)) {
    if (words) throw new Error(`checkpoint '${path}' reads bytes, not a word table`);
    return;
  }
  const want = recordedWordTable(ck, path);
  if (words && words.sha256 !== want) {
    throw new Error(
      `checkpoint '${path}' was trained with the word table of SHA-256 ${want.slice(0, 12)}…, ` +
        `not ${words.sha256.slice(0, 12)}… ('${ck.model.word_table}'): use the table it was ` +
        `trained with (a stage-2 run from it may instead restart its text path: ` +
        `train.init_fresh: [text_encoder, y_embedder])`,
    );
  }
}

/**
 * A stored position table must be the one the config describes (within f16 rounding): a file
 * edited or exported with another image size or pe_interpolation is caught here.
 */
function checkPosEmbed(ck: CheckpointContents, path: string): void {
  const c = ck.model;
  const grid = modelSpace(c).size / c.patch_size;
  const want = posEmbed2d(c.hidden_size, grid, grid, c.pe_interpolation);
  const got = ck.posEmbed!;
  let worst = got.length === want.length ? 0 : Infinity;
  for (let i = 0; i < got.length && worst < Infinity; i++) {
    worst = Math.max(worst, Math.abs(got[i] - want[i]));
  }
  if (!(worst <= 1e-3)) {
    throw new Error(
      `checkpoint '${path}': its pos_embed is not the table of its config (image_size ` +
        `${c.image_size}, patch_size ${c.patch_size}, pe_interpolation ${c.pe_interpolation})`,
    );
  }
}

/** The index of the first NaN or ±∞, or −1. */
export function firstNonFinite(data: Float32Array): number {
  for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i])) return i;
  return -1;
}

/** Whether every value survives a round trip through f16 (e.g. it was stored as f16). */
function isHalfExact(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) {
    if (roundToHalf(data[i]) !== data[i]) return false;
  }
  return true;
}
