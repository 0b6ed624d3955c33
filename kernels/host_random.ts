// Random numbers on the host, seeded and reproducible: the data order, caption draws, held-out
// splits and the weights' initialisation. (Noise on the GPU comes from Philox, kernels/random.ts.)

/** mulberry32: a small, fast 32-bit PRNG; returns uniform numbers in [0, 1). */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Mixes a seed with further integers into a new 32-bit seed (splitmix-style finaliser). */
export function mixSeed(seed: number, ...more: number[]): number {
  let h = (seed >>> 0) ^ 0x9e3779b9;
  for (const m of [...more, more.length]) {
    h = Math.imul(h ^ (m >>> 0), 0x85ebca6b) >>> 0;
    h ^= h >>> 13;
    h = Math.imul(h, 0xc2b2ae35) >>> 0;
    h ^= h >>> 16;
  }
  return h >>> 0;
}

/** Uniform integer in [0, n) from a [0, 1) generator. */
export function randInt(rng: () => number, n: number): number {
  return Math.floor(rng() * n);
}

/** Fisher–Yates shuffle in place with a seeded generator; returns the array. */
export function shuffleInPlace<T extends { length: number; [i: number]: any }>(
  a: T,
  rng: () => number,
): T {
  for (let i = a.length - 1; i > 0; i--) {
    const j = randInt(rng, i + 1);
    const t = a[i];
    a[i] = a[j];
    a[j] = t;
  }
  return a;
}

/** A permutation of 0 … n−1 determined by `seed`. */
export function shuffledIndices(n: number, seed: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = i;
  return shuffleInPlace(a, mulberry32(seed));
}

/** A small seeded generator (mulberry32) with normal draws by Box–Muller. */
export class Rng {
  private spare: number | null = null;
  /** uniform in [0, 1) */
  readonly next: () => number;
  constructor(seed: number) {
    this.next = mulberry32((seed >>> 0) ^ 0x9e3779b9);
  }
  normal(): number {
    if (this.spare !== null) {
      const s = this.spare;
      this.spare = null;
      return s;
    }
    const u = 1 - this.next();
    const v = this.next();
    const r = Math.sqrt(-2 * Math.log(u));
    this.spare = r * Math.sin(2 * Math.PI * v);
    return r * Math.cos(2 * Math.PI * v);
  }
  int(n: number): number {
    return Math.floor(this.next() * n);
  }
}
