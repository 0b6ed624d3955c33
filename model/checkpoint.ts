// Checkpoints (docs/spec.md §6): safetensors with the model's tensors under the official names,
// optional EMA weights and optimiser moments under their own prefixes, and the config, stage,
// step and tokenizer settings in `__metadata__`. Written to a temporary file and renamed. Turning
// a file's bytes into its contents and a model is model/checkpoint_bytes.ts, re-exported here.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { fileURLToPath } from "node:url";
import { readWordTable } from "../io/word_table_file.ts";
import type { WordTable } from "../io/word_table.ts";
import type { ModelConfig } from "./config.ts";
import type { Params } from "./params.ts";
import type { PixArt } from "./pixart.ts";
import {
  type CheckpointContents,
  checkpointContents,
  EMA_PREFIX,
  firstNonFinite,
  OPTIM_PREFIX,
  POS_EMBED,
} from "./checkpoint_bytes.ts";

export * from "./checkpoint_bytes.ts";

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
  // the fixed table too: the official PixArt-α class keeps it in its state dict (a buffer)
  tensors[POS_EMBED] = { shape: model.posEmbed.shape, data: await model.posEmbed.read() };
  // a diverged model is never written: the last good checkpoint stays the newest
  for (const [name, t] of Object.entries(tensors)) {
    const bad = t.data instanceof Float32Array ? firstNonFinite(t.data) : -1;
    if (bad >= 0) {
      throw new Error(
        `not writing '${path}': '${name}' holds ${t.data[bad]} at index ${bad} (the weights ` +
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
  writeSafetensors(path, tensors, metadata, { dtype: o.dtype ?? "F32" });
}

/** Reads a checkpoint: a one-line error if it is missing, truncated or not ours. */
export function readCheckpoint(path: string): CheckpointContents {
  if (!existsSync(path)) {
    throw new Error(`checkpoint '${path}' not found: train one first or pass --checkpoint PATH`);
  }
  return checkpointContents(readSafetensors(path), path);
}

/**
 * A words model's table (model.word_table), or null for a model that reads bytes. A relative path
 * is looked up in the working folder, then in this project's own folder, where the bundled table
 * is, so that a bundled model draws from anywhere.
 */
export async function wordTableOf(mc: ModelConfig): Promise<WordTable | null> {
  if (mc.stage !== 2 || mc.text_encoder !== "words") return null;
  const own = fileURLToPath(new URL(`../${mc.word_table}`, import.meta.url));
  const path = existsSync(mc.word_table) || mc.word_table.startsWith("/") ? mc.word_table : own;
  return await readWordTable(existsSync(path) ? path : mc.word_table);
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

/** The newest checkpoint (by step in the name, then mtime) in a folder, or null. */
export function newestCheckpoint(dir: string): string | null {
  if (!existsSync(dir)) return null;
  const files = readdirSync(dir).filter((f) => checkpointStep(f) !== null);
  if (!files.length) return null;
  files.sort((a, b) =>
    checkpointStep(a)! - checkpointStep(b)! ||
    statSync(join(dir, a)).mtimeMs - statSync(join(dir, b)).mtimeMs
  );
  return join(dir, files[files.length - 1]);
}

/**
 * A checkpoint file from a path: the file itself, or a folder's newest checkpoint. A one-line error
 * when there is none.
 */
export function resolveCheckpoint(path: string): string {
  if (!existsSync(path)) {
    throw new Error(`checkpoint '${path}' not found: train one first or pass --checkpoint PATH`);
  }
  if (!statSync(path).isDirectory()) return path;
  const p = newestCheckpoint(path);
  if (!p) throw new Error(`no checkpoint-*.safetensors in folder '${path}'`);
  return p;
}
