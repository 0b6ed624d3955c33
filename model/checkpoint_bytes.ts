// Checkpoints from their bytes: the contents of a parsed file (model config, weights, EMA weights,
// optimiser moments, metadata) and a model built from them. No file access here, so a web page can
// load a checkpoint it fetched; model/checkpoint.ts reads and writes files and re-exports this.

import { tensor } from "../kernels/mod.ts";
import { parseSafetensors, roundToHalf, type SafetensorsFile } from "../io/safetensors_bytes.ts";
import { checkModelConfig, DEFAULT_MODEL, type ModelConfig } from "./config.ts";
import { Params } from "./params.ts";
import { PixArt, pixartSpecs } from "./pixart.ts";

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

/** A checkpoint's contents from its parsed file; `path` names it in errors. */
export function checkpointContents(f: SafetensorsFile, path: string): CheckpointContents {
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

/** A checkpoint's contents from the bytes of its file (e.g. fetched); `name` labels errors. */
export function parseCheckpoint(bytes: Uint8Array, name: string): CheckpointContents {
  return checkpointContents(parseSafetensors(bytes, name), name);
}

/** The class names a checkpoint's model was trained on (its `classes` metadata), or null. */
export function checkpointClassNames(metadata: Record<string, string>): readonly string[] | null {
  return metadata.classes ? JSON.parse(metadata.classes) : null;
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
