// The order a training run reads its data set in: batches of indices, epoch after epoch, fixed
// by a seed and resumable from a saved position; optionally weighted draws (io/class_balance.ts).

import { mixSeed, mulberry32, shuffleInPlace } from "../kernels/host_random.ts";

export interface BatcherState {
  epoch: number;
  /** position within the epoch's order of the next index to hand out */
  index: number;
}

/**
 * Hands out batches of data-set indices, epoch after epoch. Each epoch visits every index of
 * `indices` once, in an order fixed by (seed, epoch); a batch that reaches the end of an epoch
 * continues into the next one, so every batch has exactly `batchSize` entries. The position
 * (epoch, index) can be saved with `state()` and restored with `restore()` (or the constructor),
 * and the batches that follow are then the same as in an uninterrupted run.
 *
 * With `weights` (one per entry of `indices`) an epoch is instead as many draws, with
 * replacement, in proportion to the weights — still fixed by (seed, epoch), so saved positions
 * mean the same.
 */
export class Batcher {
  readonly indices: Int32Array;
  readonly batchSize: number;
  readonly seed: number;
  /** running sums of the weights, for drawing by binary search; null: plain epochs */
  readonly #cumulative: Float64Array | null;
  #epoch = 0;
  #index = 0;
  #order: Int32Array;

  constructor(
    indices: Int32Array | number[] | number,
    batchSize: number,
    seed: number,
    state?: BatcherState,
    weights?: Float64Array,
  ) {
    this.indices = typeof indices === "number"
      ? Int32Array.from({ length: indices }, (_, i) => i)
      : Int32Array.from(indices);
    if (this.indices.length === 0) throw new Error("Batcher: no indices to batch");
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`Batcher: batch size must be a positive integer, got ${batchSize}`);
    }
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.#cumulative = weights ? cumulativeWeights(weights, this.indices.length) : null;
    this.#order = this.#orderOf(0);
    if (state) this.restore(state);
  }

  #orderOf(epoch: number): Int32Array {
    const rng = mulberry32(mixSeed(this.seed, epoch));
    const cum = this.#cumulative;
    if (!cum) return shuffleInPlace(this.indices.slice(), rng);
    const total = cum[cum.length - 1];
    return Int32Array.from(this.indices, () => {
      const u = rng() * total;
      let lo = 0, hi = cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      return this.indices[lo];
    });
  }

  /** The order of `epoch` (a copy). */
  epochOrder(epoch: number): Int32Array {
    return this.#orderOf(epoch);
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** The next batch of data-set indices (length batchSize). */
  next(): Int32Array {
    const out = new Int32Array(this.batchSize);
    for (let i = 0; i < this.batchSize; i++) {
      if (this.#index >= this.#order.length) {
        this.#epoch++;
        this.#index = 0;
        this.#order = this.#orderOf(this.#epoch);
      }
      out[i] = this.#order[this.#index++];
    }
    return out;
  }

  /** The position of the next batch, for checkpoints. */
  state(): BatcherState {
    // normalise "end of epoch e" to "start of epoch e + 1"
    if (this.#index >= this.#order.length) return { epoch: this.#epoch + 1, index: 0 };
    return { epoch: this.#epoch, index: this.#index };
  }

  /** Continues from a saved position. */
  restore(state: BatcherState): void {
    const { epoch, index } = state;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0) {
      throw new Error(`Batcher: bad state ${JSON.stringify(state)}`);
    }
    if (index > this.indices.length) {
      throw new Error(
        `Batcher: state index ${index} is past the epoch size ${this.indices.length} (different data?)`,
      );
    }
    if (epoch !== this.#epoch) this.#order = this.#orderOf(epoch);
    this.#epoch = epoch;
    this.#index = index;
  }
}

function cumulativeWeights(weights: Float64Array, n: number): Float64Array {
  if (weights.length !== n) {
    throw new Error(`Batcher: ${weights.length} weights for ${n} indices`);
  }
  const cum = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (!(weights[i] >= 0) || !Number.isFinite(weights[i])) {
      throw new Error(`Batcher: weight ${i} is ${weights[i]}; weights must be finite and ≥ 0`);
    }
    cum[i] = sum += weights[i];
  }
  if (!(sum > 0)) throw new Error("Batcher: the weights are all zero");
  return cum;
}
