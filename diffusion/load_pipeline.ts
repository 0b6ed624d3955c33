// loadPipeline: a bundled model by name, a checkpoint file, or a training run's folder (its newest
// checkpoint), ready to draw. The device is acquired on first use.

import { fileURLToPath } from "node:url";
import { initDevice } from "../kernels/mod.ts";
import { bundledModel } from "../model/bundled.ts";
import { readCheckpoint, resolveCheckpoint, wordTableOf } from "../model/checkpoint.ts";
import { readLora } from "../model/lora_file.ts";
import { Pipeline, type PipelineOptions } from "./pipeline.ts";

/** Where a bundled model's file is, wherever the caller runs from. */
export function bundledModelPath(id: string): string | null {
  const m = bundledModel(id);
  return m ? fileURLToPath(new URL(`../${m.file}`, import.meta.url)) : null;
}

/** A LoRA adapter to apply: a file or a LoRA run's folder (its newest checkpoint), a multiplier. */
export interface LoraSpec {
  file: string;
  /** default 1 */
  scale?: number;
}

/** "FILE" or "FILE:SCALE" (`sample --lora`): the scale is what follows the last colon. */
export function parseLoraSpec(text: string): LoraSpec {
  const at = text.lastIndexOf(":");
  const tail = at > 0 ? text.slice(at + 1).trim() : "";
  if (tail !== "" && Number.isFinite(Number(tail))) {
    return { file: text.slice(0, at), scale: Number(tail) };
  }
  if (at > 0 && /^[-+.\d]/.test(tail)) {
    throw new Error(`--lora '${text}': the scale after ':' must be a number`);
  }
  return { file: text };
}

export interface LoadOptions extends PipelineOptions {
  /** adapters to apply, in order (each must have been trained on this model) */
  lora?: readonly LoraSpec[];
}

export async function loadPipeline(source: string, o: LoadOptions = {}): Promise<Pipeline> {
  await initDevice();
  const path = bundledModelPath(source) ?? resolveCheckpoint(source);
  const ck = readCheckpoint(path);
  const pipe = Pipeline.fromCheckpoint(ck, path, { words: await wordTableOf(ck.model), ...o });
  try {
    for (const spec of o.lora ?? []) {
      const { path: file, contents } = readLora(spec.file);
      await pipe.addLora(contents, file, spec.scale ?? 1);
    }
  } catch (e) {
    pipe.dispose();
    throw e;
  }
  return pipe;
}
