// Checkpoints (docs/spec.md §6): safetensors with the model's tensors under the official names,
// optional EMA weights and optimiser moments under their own prefixes, and the config, stage,
// step and tokenizer settings in `__metadata__`. Written to a temporary file and renamed.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { tensor } from "../kernels/mod.ts";
import {
  readSafetensors,
  roundToHalf,
  type TensorInput,
  writeSafetensors,
} from "../io/safetensors.ts";
import { checkModelConfig, DEFAULT_MODEL, type ModelConfig } from "./config.ts";
import { Params } from "./params.ts";
import { PixArt, pixartSpecs } from "./pixart.ts";
import { TOKENIZER_INFO } from "./tokenizer_info.ts";

export const EMA_PREFIX = "ema.";
export const OPTIM_PREFIX = "optim.";

/** A model config from checkpoint metadata JSON; unknown keys are an error. */
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
    if (typeof v !== "number") throw new Error(`${where}: config '${k}' must be a number`);
    c[k] = v;
  }
  const cfg = c as unknown as ModelConfig;
  checkModelConfig(cfg);
  return cfg;
}

export interface CheckpointContents {
  model: ModelConfig;
  params: Map<string, Float32Array>;
  ema: Map<string, Float32Array> | null;
  optim: Map<string, Float32Array>;
  metadata: Record<string, string>;
  step: number;
}

export interface SaveOptions {
  ema?: Params | null;
  /** optimiser tensors by name (moments), stored under `optim.` */
  optim?: Map<string, { shape: readonly number[]; data: Float32Array }>;
  metadata?: Record<string, string>;
  step: number;
  dtype?: "F32" | "F16";
}

/** Reads every parameter back and writes the checkpoint atomically. */
export async function saveCheckpoint(path: string, model: PixArt, o: SaveOptions): Promise<void> {
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
  const metadata: Record<string, string> = {
    format: "pixart-webgpu",
    ...o.metadata,
    config: JSON.stringify(model.config),
    stage: String(model.config.stage),
    step: String(o.step),
    num_heads: String(model.config.num_heads),
  };
  if (model.config.stage === 2) {
    metadata.tokenizer = JSON.stringify({ ...TOKENIZER_INFO, max_length: model.config.text_len });
  }
  writeSafetensors(path, tensors, metadata, { dtype: o.dtype ?? "F32" });
}

/** Reads a checkpoint: a one-line error if it is missing, truncated or not ours. */
export function readCheckpoint(path: string): CheckpointContents {
  if (!existsSync(path)) {
    throw new Error(`checkpoint '${path}' not found: train one first or pass --checkpoint PATH`);
  }
  const f = readSafetensors(path);
  if (!f.metadata.config) {
    throw new Error(
      `checkpoint '${path}' has no model config in its metadata: not a PixArt checkpoint`,
    );
  }
  const model = modelConfigFromJson(f.metadata.config, `checkpoint '${path}'`);
  const params = new Map<string, Float32Array>();
  const optim = new Map<string, Float32Array>();
  let ema: Map<string, Float32Array> | null = null;
  for (const [name, e] of f.tensors) {
    if (!(e.data instanceof Float32Array)) continue;
    if (name.startsWith(EMA_PREFIX)) (ema ??= new Map()).set(name.slice(EMA_PREFIX.length), e.data);
    else if (name.startsWith(OPTIM_PREFIX)) optim.set(name.slice(OPTIM_PREFIX.length), e.data);
    else params.set(name, e.data);
  }
  return { model, params, ema, optim, metadata: f.metadata, step: Number(f.metadata.step ?? 0) };
}

/**
 * Builds a model from checkpoint tensors; every expected name must be present with its shape.
 * With `useEma`, the EMA weights are loaded when the checkpoint has them.
 */
export function modelFromCheckpoint(ck: CheckpointContents, path: string, useEma = false): PixArt {
  const src = useEma && ck.ema ? ck.ema : ck.params;
  const P = new Params();
  try {
    for (const s of pixartSpecs(ck.model)) {
      const data = src.get(s.name);
      if (!data) throw new Error(`checkpoint '${path}' is missing '${s.name}'`);
      const n = s.shape.reduce((a, b) => a * b, 1);
      if (data.length !== n) {
        throw new Error(
          `checkpoint '${path}': '${s.name}' has ${data.length} values, the model expects [${s.shape}]`,
        );
      }
      P.set(s.name, tensor(data, s.shape));
    }
  } catch (e) {
    P.dispose();
    throw e;
  }
  const model = new PixArt(ck.model, P);
  model.halfExact = new Set(
    pixartSpecs(ck.model).filter((s) => s.shape.length === 2 && isHalfExact(src.get(s.name)!))
      .map((s) => s.name),
  );
  return model;
}

/** Whether every value survives a round trip through f16 (e.g. it was stored as f16). */
function isHalfExact(data: Float32Array): boolean {
  for (let i = 0; i < data.length; i++) {
    if (roundToHalf(data[i]) !== data[i]) return false;
  }
  return true;
}

/** The newest checkpoint (by step in the name, then mtime) in a folder, or null. */
export function newestCheckpoint(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => /^checkpoint-\d+\.safetensors$/.test(f));
  if (!files.length) return null;
  files.sort((a, b) => {
    const sa = Number(a.match(/\d+/)![0]), sb = Number(b.match(/\d+/)![0]);
    return sa - sb || statSync(join(dir, a)).mtimeMs - statSync(join(dir, b)).mtimeMs;
  });
  return join(dir, files[files.length - 1]);
}
