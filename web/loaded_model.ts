// A bundled model in the page: its checkpoint fetched as bytes and read by the same safetensors
// and checkpoint code as the command line, with the schedule and class names it trained with.

import {
  checkpointClassNames,
  modelFromCheckpoint,
  parseCheckpoint,
} from "../model/checkpoint_bytes.ts";
import type { PixArt } from "../model/pixart.ts";
import { sampleWeightPrecision, useHalfWeights } from "../model/half_weights.ts";
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
}

/** Fetches and builds a bundled model; a failed download is a one-line error naming the file. */
export async function loadModel(entry: BundledModel): Promise<LoadedModel> {
  const res = await fetch(entry.file);
  if (!res.ok) throw new Error(`could not download ${entry.file}: HTTP ${res.status}`);
  const bytes = new Uint8Array(await res.arrayBuffer());
  const ck = parseCheckpoint(bytes, entry.file);
  const model = modelFromCheckpoint(ck, entry.file, true);
  // sampling only: f16 weights where the adapter has shader-f16, else those stored exactly in f16
  useHalfWeights(model, sampleWeightPrecision());
  return {
    entry,
    model,
    schedule: checkpointSchedule(ck.metadata),
    classNames: checkpointClassNames(ck.metadata) ?? [],
    bytes: bytes.length,
  };
}
