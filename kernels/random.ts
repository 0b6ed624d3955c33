// Counter-based random numbers on the GPU: Philox-4x32-10 (Salmon et al., "Parallel random
// numbers: as easy as 1, 2, 3", SC 2011). Every block of four values is a pure function of
// (seed, counter), so a draw needs no state on the GPU and any part of a stream can be
// regenerated. A plain-TypeScript implementation of the same generator gives the identical
// uniform stream on the CPU.
//
// Stream layout: a draw of n values at `offset` fills element i with value (4·offset + i) of the
// stream of its seed, i.e. block (offset + ⌊i/4⌋), lane i mod 4. The counter of block b is the
// 128-bit (b mod 2³², ⌊b / 2³²⌋, 0, 0); the key is (seed mod 2³², ⌊seed / 2³²⌋). A `Generator`
// advances its offset by ⌈n/4⌉ blocks per draw, so consecutive draws continue one stream.
//
// The seed and offset reach the kernel through a small u32 tensor, never as WGSL constants: one
// pipeline per output size serves every seed and offset.

import { gridKernel } from "./grid_kernel.ts";
import { empty, intTensor, numel, type Shape, type Tensor } from "./tensor.ts";

const M0 = 0xD2511F53, M1 = 0xCD9E8D57;
const W0 = 0x9E3779B9, W1 = 0xBB67AE85;
const TWO32 = 4294967296;
/** 2⁻²⁴: a uniform is the top 24 bits of a 32-bit word, scaled (exact in f32). */
const U24 = 5.9604644775390625e-8;
const WG = 64;

// ---- WGSL -----------------------------------------------------------------------------------

// 32×32 → 64-bit multiply from 16-bit halves (WGSL has no u64); every partial fits in u32.
const PHILOX_WGSL = `
fn mulhi(a: u32, b: u32) -> u32 {
  let al = a & 0xffffu; let ah = a >> 16u;
  let bl = b & 0xffffu; let bh = b >> 16u;
  let t = al * bl;
  let m1 = ah * bl + (t >> 16u);
  let m2 = al * bh + (m1 & 0xffffu);
  return ah * bh + (m1 >> 16u) + (m2 >> 16u);
}
fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = ctr;
  var k = key;
  for (var r = 0u; r < 10u; r++) {
    if (r > 0u) { k = k + vec2<u32>(${W0}u, ${W1}u); }
    let hi0 = mulhi(${M0}u, c.x); let lo0 = ${M0}u * c.x;
    let hi1 = mulhi(${M1}u, c.z); let lo1 = ${M1}u * c.z;
    c = vec4<u32>(hi1 ^ c.y ^ k.x, lo1, hi0 ^ c.w ^ k.y, lo0);
  }
  return c;
}
fn u01(x: u32) -> f32 { return f32(x >> 8u) * ${U24}; }
// Box–Muller on a pair of words: u1 ∈ (0, 1] (no log 0), angle in [−π, π).
fn bm(x: u32, y: u32) -> vec2<f32> {
  let u1 = f32((x >> 8u) + 1u) * ${U24};
  let r = sqrt(max(-2.0 * log(u1), 0.0));
  let th = 6.283185307179586 * u01(y) - 3.141592653589793;
  return vec2<f32>(r * cos(th), r * sin(th));
}`;

function drawKernel(kind: "uniform" | "normal", out: Tensor, params: Tensor): void {
  const n = out.size;
  const values = kind === "uniform"
    ? "vec4<f32>(u01(w.x), u01(w.y), u01(w.z), u01(w.w))"
    : "vec4<f32>(bm(w.x, w.y), bm(w.z, w.w))";
  // block i of 4 values: Philox of the 64-bit counter offset + i under the key (Key [4] u32:
  // key, offset)
  gridKernel({
    name: `random_${kind}`,
    n: Math.ceil(n / 4),
    read: { Key: [params, "u32"] },
    write: { O: out },
    lib: PHILOX_WGSL,
    workgroup: WG,
    body: `let lo = Key[2] + i;
  let hi = Key[3] + select(0u, 1u, lo < i);
  let w = philox(vec4<u32>(lo, hi, 0u, 0u), vec2<u32>(Key[0], Key[1]));
  let v = ${values};
  for (var l = 0u; l < 4u; l++) {
    if (i * 4u + l < ${n}u) { O[i * 4u + l] = v[l]; }
  }`,
  });
}

function checkWord64(x: number, what: string): void {
  if (!Number.isSafeInteger(x) || x < 0) {
    throw new Error(`${what} must be an integer in [0, 2^53), got ${x}`);
  }
}

function split64(x: number): [number, number] {
  return [x % TWO32, Math.floor(x / TWO32)];
}

function draw(kind: "uniform" | "normal", shape: Shape, seed: number, offset: number): Tensor {
  checkWord64(seed, "seed");
  checkWord64(offset, "offset");
  const out = empty(shape);
  if (out.size === 0) return out;
  const [k0, k1] = split64(seed);
  const [o0, o1] = split64(offset);
  // the u32 words travel as their i32 bit patterns
  const params = intTensor([k0 | 0, k1 | 0, o0 | 0, o1 | 0], [4]);
  drawKernel(kind, out, params);
  params.dispose();
  return out;
}

/** Uniform values in [0, 1) (24-bit resolution): stream `seed` from block `offset` on. */
export function randomUniform(shape: Shape, seed: number, offset = 0): Tensor {
  return draw("uniform", shape, seed, offset);
}

/** Standard normal values (Box–Muller on the uniform stream): stream `seed` from `offset` on. */
export function randomNormal(shape: Shape, seed: number, offset = 0): Tensor {
  return draw("normal", shape, seed, offset);
}

/** Number of 4-value blocks (counter increments) a draw of `shape` consumes. */
export function randomBlocks(shape: Shape | number): number {
  return Math.ceil((typeof shape === "number" ? shape : numel(shape)) / 4);
}

// ---- CPU reference --------------------------------------------------------------------------

function mulhiCPU(a: number, b: number): number {
  const al = a & 0xffff, ah = a >>> 16, bl = b & 0xffff, bh = b >>> 16;
  const t = al * bl;
  const m1 = ah * bl + (t >>> 16);
  const m2 = al * bh + (m1 & 0xffff);
  return (ah * bh + Math.floor(m1 / 65536) + Math.floor(m2 / 65536)) >>> 0;
}

/** Philox-4x32-10 of one 128-bit counter under a 64-bit key (all words u32). */
export function philox4x32(
  ctr: readonly [number, number, number, number],
  key: readonly [number, number],
): [number, number, number, number] {
  let [c0, c1, c2, c3] = ctr.map((x) => x >>> 0);
  let k0 = key[0] >>> 0, k1 = key[1] >>> 0;
  for (let r = 0; r < 10; r++) {
    if (r > 0) {
      k0 = (k0 + W0) >>> 0;
      k1 = (k1 + W1) >>> 0;
    }
    const hi0 = mulhiCPU(M0, c0), lo0 = Math.imul(M0, c0) >>> 0;
    const hi1 = mulhiCPU(M1, c2), lo1 = Math.imul(M1, c2) >>> 0;
    [c0, c1, c2, c3] = [(hi1 ^ c1 ^ k0) >>> 0, lo1, (hi0 ^ c3 ^ k1) >>> 0, lo0];
  }
  return [c0, c1, c2, c3];
}

/** The raw 32-bit words of the stream, as the GPU draws see them. */
export function randomWordsCPU(n: number, seed: number, offset = 0): Uint32Array {
  checkWord64(seed, "seed");
  checkWord64(offset, "offset");
  const key = split64(seed);
  const out = new Uint32Array(n);
  for (let b = 0; b * 4 < n; b++) {
    const w = philox4x32([...split64(offset + b), 0, 0], key);
    for (let l = 0; l < 4 && b * 4 + l < n; l++) out[b * 4 + l] = w[l];
  }
  return out;
}

/** CPU twin of randomUniform: bit-identical values. */
export function randomUniformCPU(n: number, seed: number, offset = 0): Float32Array {
  const w = randomWordsCPU(n, seed, offset);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = (w[i] >>> 8) * U24;
  return out;
}

/**
 * CPU twin of randomNormal (same pairs and formula, computed in f64, so it agrees with the GPU to
 * the accuracy of the device's log, sin and cos).
 */
export function randomNormalCPU(n: number, seed: number, offset = 0): Float32Array {
  const w = randomWordsCPU(Math.ceil(n / 2) * 2, seed, offset);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i += 2) {
    const u1 = ((w[i] >>> 8) + 1) * U24;
    const r = Math.sqrt(Math.max(-2 * Math.log(u1), 0));
    const th = 2 * Math.PI * ((w[i + 1] >>> 8) * U24) - Math.PI;
    out[i] = r * Math.cos(th);
    if (i + 1 < n) out[i + 1] = r * Math.sin(th);
  }
  return out;
}

// ---- stateful generator -----------------------------------------------------------------------

export interface GeneratorState {
  seed: number;
  /** next block offset */
  counter: number;
}

/**
 * A seed and a counter: each draw takes the next ⌈n/4⌉ blocks of the seed's stream, so successive
 * draws differ and a given seed replays the same sequence. `state` saves and restores it.
 */
export class Generator {
  seed: number;
  counter = 0;

  constructor(seed = 0) {
    checkWord64(seed, "seed");
    this.seed = seed;
  }

  /** Restarts the stream of a (new) seed. */
  manualSeed(seed: number): this {
    checkWord64(seed, "seed");
    this.seed = seed;
    this.counter = 0;
    return this;
  }

  /** Reserves the blocks for n values; returns their offset. */
  private take(n: number): number {
    const at = this.counter;
    this.counter += randomBlocks(n);
    checkWord64(this.counter, "generator counter");
    return at;
  }

  uniform(shape: Shape): Tensor {
    return randomUniform(shape, this.seed, this.take(numel(shape)));
  }

  normal(shape: Shape): Tensor {
    return randomNormal(shape, this.seed, this.take(numel(shape)));
  }

  /** Uniform draw on the CPU from the same stream (advances the same counter). */
  uniformCPU(n: number): Float32Array {
    return randomUniformCPU(n, this.seed, this.take(n));
  }

  /** Normal draw on the CPU from the same stream (advances the same counter). */
  normalCPU(n: number): Float32Array {
    return randomNormalCPU(n, this.seed, this.take(n));
  }

  get state(): GeneratorState {
    return { seed: this.seed, counter: this.counter };
  }

  set state(s: GeneratorState) {
    checkWord64(s.seed, "seed");
    checkWord64(s.counter, "generator counter");
    this.seed = s.seed;
    this.counter = s.counter;
  }
}
