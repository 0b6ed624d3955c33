// A bundled model in the page: its checkpoint fetched as bytes and read by the same safetensors
// and checkpoint code as the command line, with the schedule and class names it trained with, and
// the SHA-256 of its weights, which a LoRA adapter given to the page must have been trained on.

import {
  checkpointClassNames,
  modelFromCheckpoint,
  needsWordTable,
  parseCheckpoint,
} from "../model/checkpoint_bytes.ts";
import { parseWordTable, type WordTable } from "../io/word_table.ts";
import type { PixArt } from "../model/pixart.ts";
import { sampleWeightPrecision, useHalfWeights } from "../model/half_weights.ts";
import { weightsSha256 } from "../model/lora.ts";
import { checkpointSchedule, type Schedule } from "../diffusion/schedule.ts";
import type { BundledModel } from "./models.ts";

export interface LoadedModel {
  entry: BundledModel;
  /** the EMA weights when the checkpoint has them, as `deno task sample` uses */
  model: PixArt;
  schedule: Schedule;
  classNames: readonly string[];
  /** the checkpoint's size in bytes */
  bytes: number;
  /** the SHA-256 of the weights `model` holds (model/lora.ts weightsSha256) */
  sha256: string;
}

/** The bytes of a file the server sends; a failed download is a one-line error naming it. */
async function download(file: string): Promise<Uint8Array> {
  const hint = "is the page's server (deno task serve) still running?";
  try {
    const res = await fetch(file);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    return new Uint8Array(await res.arrayBuffer());
  } catch (e) {
    throw new Error(`could not download ${file}: ${(e as Error).message}: ${hint}`);
  }
}

/** Word tables by path, fetched once for every model that reads them. */
const tables = new Map<string, Promise<WordTable>>();

/** The word table at `path` on the server, fetched once a page (a failed download: again). */
export function wordTableAt(path: string): Promise<WordTable> {
  if (!tables.has(path)) {
    const table = download(path).then((b) => parseWordTable(b, path));
    table.catch(() => tables.delete(path));
    tables.set(path, table);
  }
  return tables.get(path)!;
}

/**
 * Fetches and builds a bundled model, and for a model that reads words the table it names (the
 * checkpoint checks its hash); a failed download is a one-line error naming the file.
 */
export async function loadModel(entry: BundledModel): Promise<LoadedModel> {
  const bytes = await download(entry.file);
  const ck = parseCheckpoint(bytes, entry.file);
  const words = needsWordTable(ck) ? await wordTableAt(ck.model.word_table) : null;
  const schedule = checkpointSchedule(ck.metadata, `checkpoint '${entry.file}'`);
  const model = modelFromCheckpoint(ck, entry.file, true, words);
  // sampling only: f16 weights where the adapter has shader-f16, else those stored exactly in f16
  useHalfWeights(model, sampleWeightPrecision());
  const sha256 = await weightsSha256(ck.model, ck.ema ?? ck.params);
  return {
    entry,
    model,
    schedule,
    classNames: checkpointClassNames(ck.metadata, entry.file) ?? [],
    bytes: bytes.length,
    sha256,
  };
}
