// An exponential moving average of the trained weights (Polyak averaging): the copy PixArt-α and
// DiT sample with. Each update moves every average toward its parameter by 1 − d.

import { lerpAll, packInArena } from "./arena.ts";
import { copy } from "./vector.ts";
import { type Tensor, tensor } from "./tensor.ts";

export class Ema {
  /** the averages, one per source tensor, in the same order */
  readonly tensors: readonly Tensor[];
  #disposed = false;

  /**
   * Averages of `sources` with decay `decay`, starting from `init` (e.g. a checkpoint's EMA
   * weights; host arrays) or, where it is null, from a copy of the source.
   */
  constructor(
    readonly sources: readonly Tensor[],
    readonly decay: number,
    init: readonly (Float32Array | null | undefined)[] = [],
  ) {
    if (!(decay >= 0 && decay < 1)) throw new Error(`Ema: decay must be in [0, 1), got ${decay}`);
    const tensors = sources.map((p, k) => {
      const v = init[k];
      if (v && v.length !== p.size) {
        throw new Error(`Ema: initial values of ${v.length} for a tensor of ${p.size}`);
      }
      const t = v ? tensor(v, p.shape) : copy(p);
      t.keep();
      t.requiresGrad = false;
      return t;
    });
    // laid out as the sources are (an optimiser packs its parameters): one dispatch per update
    if (tensors.length) packInArena(tensors);
    this.tensors = tensors;
  }

  /**
   * The decay after `n` updates, with a warm-up min(d, (1 + n)/(10 + n)) so that a short run's
   * average is not dominated by its first, untrained weights.
   */
  decayAt(n: number): number {
    return Math.min(this.decay, (1 + n) / (10 + n));
  }

  /** One update, the (n + 1)-th: average ← average + (1 − d)·(param − average). */
  update(n: number): void {
    if (this.#disposed) throw new Error("Ema: update() after dispose()");
    const w = tensor([1 - this.decayAt(n)], [1]);
    try {
      lerpAll(this.tensors, this.sources, w);
    } finally {
      w.dispose();
    }
  }

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const t of this.tensors) t.dispose();
  }
}
