// What a training step of a model needs in one GPU buffer, checked before anything is allocated: a
// batch size or a width that cannot fit is an error naming the key and the bytes, not an
// allocation failure (or a machine swapping) minutes later.

import { arenaLayout, deviceInfo } from "../kernels/mod.ts";
import { ATTENTION_STORAGE_BUFFERS } from "../kernels/attention.ts";
import { type ModelConfig, numTokens } from "./config.ts";
import { pixartSpecs } from "./pixart.ts";

/** The largest tensors of a training step of batch B, in bytes, each with the keys that size it. */
export function largestActivations(c: ModelConfig, B: number): { what: string; bytes: number }[] {
  const N = numTokens(c), D = c.hidden_size, L = c.text_len, E = c.text_width;
  const list = [
    { what: `the MLP's hidden activations [B·N, ${c.mlp_ratio}·D]`, n: B * N * c.mlp_ratio * D },
    { what: `the attention scores [B, heads, N, N]`, n: B * c.num_heads * N * N },
    { what: `the attention inputs [B·N, 3·D]`, n: B * N * 3 * D },
    { what: `the images [B, C, H, W]`, n: B * c.in_channels * c.image_size ** 2 },
  ];
  if (c.stage === 2) list.push({ what: `the text MLP [B·L, 4·E]`, n: B * L * 4 * E });
  return list.map((x) => ({ what: x.what, bytes: 4 * x.n }));
}

/**
 * The model's parameter count, and the bytes of one buffer holding them as the optimiser's arena
 * lays them out (kernels/arena.ts: each tensor padded to its alignment).
 */
export function weightArena(c: ModelConfig): { params: number; bytes: number } {
  const sizes = pixartSpecs(c).map((s) => s.shape.reduce((a, b) => a * b, 1));
  return { params: sizes.reduce((a, b) => a + b, 0), bytes: 4 * arenaLayout(sizes).floats };
}

/**
 * Throws a one-line error when one of a training step's tensors exceeds the adapter's limit.
 * `wholeModel`: every weight is trained (not a LoRA adapter's few on the frozen model).
 */
export function checkTrainingFits(c: ModelConfig, B: number, wholeModel = true): void {
  checkStorageBuffers(deviceInfo().storageBuffers);
  const limit = deviceInfo().bufferLimit;
  // the trained weights, their gradients, Adam's two moments and the EMA are each one buffer
  const { params, bytes } = weightArena(c);
  if (wholeModel && bytes > limit) {
    throw new Error(
      `this model's ${params.toLocaleString("en")} parameters need ${gb(bytes)} in one ` +
        `buffer, over this adapter's ${gb(limit)} buffer limit: lower model.hidden_size or ` +
        `model.depth`,
    );
  }
  for (const { what, bytes } of largestActivations(c, B)) {
    if (bytes > limit) {
      throw new Error(
        `train.batch_size ${B} with this model needs ${what} of ${gb(bytes)}, over this ` +
          `adapter's ${gb(limit)} buffer limit: lower train.batch_size (or model.image_size, ` +
          `model.hidden_size)`,
      );
    }
  }
}

/** Training binds more storage buffers in one kernel (attention's backward) than WebGPU
 * guarantees: an adapter that offers fewer would fail at the first backward pass. */
export function checkStorageBuffers(available: number): void {
  if (available < ATTENTION_STORAGE_BUFFERS) {
    throw new Error(
      `this adapter binds ${available} storage buffers in a kernel, and training's attention ` +
        `backward binds ${ATTENTION_STORAGE_BUFFERS}: train on another adapter (sampling runs ` +
        `on this one)`,
    );
  }
}

function gb(bytes: number): string {
  return bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(1)} GiB`
    : `${(bytes / 2 ** 20).toFixed(0)} MiB`;
}
