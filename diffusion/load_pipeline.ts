// loadPipeline: a bundled model by name, a checkpoint file, or a training run's folder (its newest
// checkpoint), ready to draw. The device is acquired on first use.

import { fileURLToPath } from "node:url";
import { initDevice } from "../kernels/mod.ts";
import { bundledModel } from "../model/bundled.ts";
import { readCheckpoint, resolveCheckpoint, wordTableOf } from "../model/checkpoint.ts";
import { Pipeline, type PipelineOptions } from "./pipeline.ts";

/** Where a bundled model's file is, wherever the caller runs from. */
export function bundledModelPath(id: string): string | null {
  const m = bundledModel(id);
  return m ? fileURLToPath(new URL(`../${m.file}`, import.meta.url)) : null;
}

export async function loadPipeline(source: string, o: PipelineOptions = {}): Promise<Pipeline> {
  await initDevice();
  const path = bundledModelPath(source) ?? resolveCheckpoint(source);
  const ck = readCheckpoint(path);
  return Pipeline.fromCheckpoint(ck, path, { words: await wordTableOf(ck.model), ...o });
}
