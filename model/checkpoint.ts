// Checkpoints (docs/spec.md §6): safetensors with the model's tensors under the official names,
// optional EMA weights and optimiser moments under their own prefixes, and the config, stage,
// step and tokenizer settings in `__metadata__`. Written to a temporary file and renamed. Turning
// a file's bytes into its contents and a model is model/checkpoint_bytes.ts, re-exported here.

import { existsSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { fileURLToPath } from "node:url";
import { readWordTable } from "../io/word_table_file.ts";
import type { WordTable } from "../io/word_table.ts";
import type { ModelConfig } from "./config.ts";
import type { PixArt } from "./pixart.ts";
import {
  type CheckpointContents,
  checkpointContents,
  checkpointStep,
  checkpointTensors,
  type SaveOptions,
} from "./checkpoint_bytes.ts";

export * from "./checkpoint_bytes.ts";

/** Reads every parameter back and writes the checkpoint atomically. */
export async function saveCheckpoint(path: string, model: PixArt, o: SaveOptions): Promise<void> {
  const { tensors, metadata } = await checkpointTensors(model, o, path);
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
  const path = wordTablePath(mc);
  return path === null ? null : await readWordTable(path);
}

/** The file wordTableOf reads for a words model, or null for a model that reads bytes. */
export function wordTablePath(mc: ModelConfig): string | null {
  if (mc.stage !== 2 || mc.text_encoder !== "words") return null;
  const own = fileURLToPath(new URL(`../${mc.word_table}`, import.meta.url));
  const path = existsSync(mc.word_table) || mc.word_table.startsWith("/") ? mc.word_table : own;
  return existsSync(path) ? path : mc.word_table;
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
