// LoRA adapter files on disk (model/lora.ts describes the format): read strictly, written
// atomically and only with finite weights, as checkpoints are.

import { existsSync, statSync } from "node:fs";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { modelConfigFromJson, newestCheckpoint } from "./checkpoint.ts";
import {
  type Lora,
  type LoraContents,
  loraContents,
  loraMetadata,
  type LoraPair,
  loraTensorsOf,
  readLoraPairs,
} from "./lora.ts";
import type { Params } from "./params.ts";

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

export interface LoraSaveOptions {
  /** the EMA of the adapter's weights (training checkpoints) */
  ema?: Params | null;
  /** Adam's moments by `m.<name>` / `v.<name>`, stored under `optim.` */
  optim?: Map<string, { shape: readonly number[]; data: Float32Array }>;
  step: number;
  metadata?: Record<string, string>;
  dtype?: "F32" | "F16";
}

/** Reads an adapter back from the device and writes it (atomically; only with finite values). */
export async function saveLora(path: string, lora: Lora, o: LoraSaveOptions): Promise<void> {
  const ema = o.ema ? await readLoraPairs(lora, o.ema) : null;
  writeLora(path, lora, await readLoraPairs(lora), { ...o, ema }, o.metadata ?? {});
}

/** Writes an adapter's host weights (and an EMA copy, Adam's moments) with its metadata. */
export function writeLora(
  path: string,
  lora: Pick<Lora, "rank" | "alpha" | "layers" | "base"> | LoraContents,
  weights: ReadonlyMap<string, LoraPair>,
  o: Omit<LoraSaveOptions, "ema"> & { ema?: ReadonlyMap<string, LoraPair> | null },
  metadata: Record<string, string>,
): void {
  const tensors = new Map<string, TensorInput>(loraTensorsOf(lora.layers, lora.rank, weights));
  if (o.ema) {
    for (const [k, v] of loraTensorsOf(lora.layers, lora.rank, o.ema, "ema.")) tensors.set(k, v);
  }
  for (const [k, v] of o.optim ?? []) tensors.set(`optim.${k}`, v);
  for (const [name, t] of tensors) {
    const bad = (t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new Error(
        `not writing '${path}': '${name}' holds ${t.data[bad]} at index ${bad} (the weights ` +
          `diverged)`,
      );
    }
  }
  writeSafetensors(
    path,
    tensors,
    {
      ...metadata,
      ...loraMetadata(lora.rank, lora.alpha, lora.layers, lora.base),
      step: String(o.step),
    },
    { dtype: o.dtype ?? "F32" },
  );
}
