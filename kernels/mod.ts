// The engine's public surface: tensors, autograd and every op.

export * from "./device.ts";
export * from "./tensor.ts";
export * from "./autograd.ts";
export {
  counters,
  flush,
  readBuffer,
  startProfile,
  stopProfile,
  submitted,
  sync,
  trimPool,
} from "./runtime.ts";
export { pool, type PoolStats } from "./pool.ts";
export * from "./elementwise.ts";
export { accumulate, axpy, copy, fill, full, lerpInPlace } from "./vector.ts";
export * from "./reduce.ts";
export * from "./shape.ts";
export * from "./matmul.ts";
export * from "./lincomb.ts";
export * from "./norm.ts";
export * from "./embedding.ts";
export * from "./take_rows.ts";
export * from "./loss.ts";
export * from "./patch.ts";
export * from "./droppath.ts";
export * from "./residual.ts";
export * from "./random.ts";
export * from "./optim.ts";
export * from "./ema.ts";
export * from "./finite.ts";
export * from "./train_step.ts";
export * from "./softmax.ts";
export * from "./attention.ts";
export * from "./conv.ts";
export * from "./threshold.ts";
export * from "./host_random.ts";
export { type Arena, arenaLayout, arenaOf, lerpAll, newArena, packInArena } from "./arena.ts";
export { warmUp, type WarmUpProgress, type WarmUpStats } from "./warmup.ts";
export {
  cacheDir,
  chosenVariants,
  isCpuAdapter,
  pendingTuning,
  rememberedChoice,
  resetTuningCache,
  tuningEnabled,
  withKernelVariant,
} from "./tune.ts";
