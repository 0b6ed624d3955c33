// What a training step needs in one GPU buffer, checked before anything is allocated
// (model/memory.ts), and the pool's size classes, which must not round a tensor that fits past
// the binding limit (kernels/pool.ts).

import assert from "node:assert/strict";
import { device, newArena } from "../kernels/mod.ts";
import { sizeClass } from "../kernels/pool.ts";
import { checkStorageBuffers, checkTrainingFits, weightArena } from "../model/memory.ts";
import { pixartSpecs } from "../model/pixart.ts";
import { ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

Deno.test("size classes: ≤ 25% over, never past the binding limit for a tensor within it", () => {
  assert.equal(sizeClass(100), 256);
  assert.equal(sizeClass(5000), 5120); // 4096 + 1024
  for (const bytes of [4097, 1e6, 3e8]) {
    const c = sizeClass(bytes);
    assert.ok(c >= bytes && c <= bytes * 1.25, `${bytes} → ${c}`);
  }
  // 1.8 GiB rounds to the 2 GiB class, past a limit of 2³¹ − 4: it gets its own size instead
  const bytes = 4 * 483_183_821, limit = 2 ** 31 - 4; // 1.8 GiB
  assert.equal(sizeClass(bytes), 2 ** 31);
  assert.equal(sizeClass(bytes, limit), bytes);
  assert.equal(sizeClass(1e6, limit), sizeClass(1e6));
});

Deno.test("an adapter that binds too few storage buffers for attention's backward is refused for training", () => {
  assert.throws(
    () => checkStorageBuffers(8),
    /^Error: this adapter binds 8 storage buffers in a kernel, and training's attention backward binds 10: train on another adapter \(sampling runs on this one\)$/,
  );
  checkStorageBuffers(device().limits.maxStorageBuffersPerShaderStage); // this one trains
});

Deno.test("a model whose parameters cannot be one buffer is a one-line error before allocation", () => {
  const limits = device().limits;
  const limit = Math.min(limits.maxStorageBufferBindingSize, limits.maxBufferSize);
  const wide = { ...TINY_TEXT_MODEL, hidden_size: 8192, num_heads: 8 };
  const count = (depth: number) =>
    pixartSpecs({ ...wide, depth }).reduce((n, s) => n + s.shape.reduce((a, b) => a * b, 1), 0);
  let depth = 1;
  while (4 * count(depth) <= limit && depth < 256) depth++;
  assert.ok(4 * count(depth) > limit, "a depth within the config's bounds exceeds the limit");
  assert.throws(
    () => checkTrainingFits({ ...wide, depth }, 1),
    /^Error: this model's [\d,]+ parameters need [\d.]+ (GiB|MiB) in one buffer, over this adapter's .* buffer limit: lower model\.hidden_size or model\.depth$/,
  );
  checkTrainingFits(TINY_TEXT_MODEL, 1); // fits
});

Deno.test("the weights' buffer is checked at the size the optimiser's arena gives it, padding included", () => {
  const { params, bytes } = weightArena(TINY_TEXT_MODEL);
  const arena = newArena(pixartSpecs(TINY_TEXT_MODEL).map((s) => s.shape));
  assert.equal(bytes, 4 * arena.floats);
  assert.ok(bytes > 4 * params, "the padding is counted");
  for (const t of arena.tensors) t.dispose();
});
