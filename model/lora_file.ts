// LoRA adapter files on disk (model/lora.ts describes the format): read strictly, written
// atomically and only with finite weights, as checkpoints are.

import { existsSync, statSync } from "node:fs";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import { modelConfigFromJson, newestCheckpoint } from "./checkpoint.ts";
import {
  type Lora,
  loraCheckpointData,
  type LoraContents,
  loraContents,
  loraFileTensors,
  type LoraPair,
  type LoraSaveOptions,
} from "./lora.ts";

export type { LoraSaveOptions };

/**
 * An adapter from a file, or from a training run's folder (its newest checkpoint); a one-line
 * error when it is missing or is not an adapter.
 */
export function readLora(path: string): { path: string; contents: LoraContents } {
  if (!existsSync(path)) {
    throw new Error(`LoRA adapter '${path}' not found: train one with deno task train:lora`);
  }
  let file = path;
  if (statSync(path).isDirectory()) {
    const newest = newestCheckpoint(path);
    if (!newest) throw new Error(`no checkpoint-*.safetensors in the LoRA run folder '${path}'`);
    file = newest;
  }
  return { path: file, contents: loraContents(readSafetensors(file), file, modelConfigFromJson) };
}

/** Reads an adapter back from the device and writes it (atomically; only with finite values). */
export async function saveLora(path: string, lora: Lora, o: LoraSaveOptions): Promise<void> {
  const { tensors, metadata } = await loraCheckpointData(lora, o, path);
  writeSafetensors(path, tensors, metadata, { dtype: o.dtype ?? "F32" });
}

/** Writes an adapter's host weights (and an EMA copy, Adam's moments) with its metadata. */
export function writeLora(
  path: string,
  lora: Pick<Lora, "rank" | "alpha" | "layers" | "base"> | LoraContents,
  weights: ReadonlyMap<string, LoraPair>,
  o: Omit<LoraSaveOptions, "ema"> & { ema?: ReadonlyMap<string, LoraPair> | null },
  metadata: Record<string, string>,
): void {
  const file = loraFileTensors(lora, weights, { ...o, metadata }, path);
  writeSafetensors(path, file.tensors, file.metadata, { dtype: o.dtype ?? "F32" });
}
