// Element types of tensors and their size in a buffer (kernels/runtime.ts copies by bytes below
// kernels/tensor.ts, so the fact lives here, below both).

/** f16: IEEE half values, two per 32-bit word (a weight read for sampling, kernels/matmul.ts) */
export type DType = "f32" | "i32" | "f16";

/** Bytes of `size` elements of `dtype` (f16 rounded up to whole words). */
export function byteSize(size: number, dtype: DType): number {
  return dtype === "f16" ? 4 * Math.ceil(size / 2) : 4 * size;
}
