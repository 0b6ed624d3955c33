// Watching a training run for a non-finite loss or gradient norm without reading anything back
// each step: a one-thread kernel records, in a small u32 buffer, the first step at which any of
// the watched scalars was NaN or ±∞. The trainer reads it when it reads the loss anyway.

import { gridKernel } from "./grid_kernel.ts";
import { intTensor, type Tensor } from "./tensor.ts";

// A float is NaN or ±∞ exactly when its exponent bits are all ones (WGSL has no isnan).
const BAD = "fn bad(x: f32) -> bool { return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u; }";

/** Records the first (1-based) step at which a watched scalar was not finite; 0 = none yet. */
export class FiniteWatch {
  readonly #first: Tensor;
  #disposed = false;

  constructor() {
    this.#first = intTensor([0], [1]).keep();
  }

  /** Records `step` (≥ 1) if a[0] or b[0] is NaN or ±∞ and no step was recorded before. */
  watch(step: number, a: Tensor, b: Tensor): void {
    if (!(Number.isInteger(step) && step >= 1 && step < 2 ** 32)) {
      throw new Error(`FiniteWatch: step must be a positive integer, got ${step}`);
    }
    const s = intTensor([step], [1]);
    gridKernel({
      name: "finite_watch",
      n: 1,
      read: { A: a, B: b, Step: [s, "u32"] },
      write: { First: [this.#first, "u32"] },
      lib: BAD,
      body: "if (First[0] == 0u && (bad(A[0]) || bad(B[0]))) { First[0] = Step[0]; }",
    });
    s.dispose();
  }

  /** The first step recorded, or 0 (reads back: costs a GPU round trip). */
  async firstBadStep(): Promise<number> {
    return (await this.#first.readInt())[0] >>> 0;
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.#first.dispose();
  }
}
