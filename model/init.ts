// Parameter initialisation on the CPU from a seeded generator, as docs/spec.md §3 prescribes.

/** A small seeded generator (mulberry32) with normal draws by Box–Muller. */
export class Rng {
  private s: number;
  private spare: number | null = null;
  constructor(seed: number) {
    this.s = (seed >>> 0) ^ 0x9e3779b9;
  }
  /** uniform in [0, 1) */
  next(): number {
    let t = (this.s = (this.s + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
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

/** Xavier-uniform for a weight [fanOut, fanIn]. */
export function xavierUniform(rng: Rng, fanOut: number, fanIn: number): Float32Array {
  const a = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanOut * fanIn);
  for (let i = 0; i < w.length; i++) w[i] = (rng.next() * 2 - 1) * a;
  return w;
}

export function normal(rng: Rng, n: number, std: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal() * std;
  return w;
}
