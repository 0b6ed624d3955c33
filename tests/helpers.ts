// Test helpers: device setup, plain-TypeScript references and f64 finite differences.

import { initDevice } from "../kernels/mod.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import type { Condition, PixArt } from "../model/pixart.ts";

export const ready = initDevice();

/** A stage-2 model small enough to run in milliseconds: 8×8 grey, D 32, 8-byte captions. */
export const TINY_TEXT_MODEL: ModelConfig = {
  ...DEFAULT_MODEL,
  image_size: 8,
  patch_size: 2,
  hidden_size: 32,
  depth: 2,
  num_heads: 2,
  stage: 2,
  text_len: 8,
  text_width: 16,
  text_depth: 1,
  text_heads: 2,
};

export function rand(n: number, seed = 1, scale = 1): Float32Array {
  // xorshift for reproducible test data
  let s = seed >>> 0 || 1;
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    out[i] = ((s / 4294967296) * 2 - 1) * scale;
  }
  return out;
}

/** Max relative error: max |a−b| / max(max |b|, tiny). */
export function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let num = 0, den = 0;
  for (let i = 0; i < a.length; i++) {
    num = Math.max(num, Math.abs(a[i] - b[i]));
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / Math.max(den, 1e-30);
}

export function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  if (a.length !== b.length) throw new Error(`length ${a.length} vs ${b.length}`);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

export function assertClose(
  actual: ArrayLike<number>,
  expected: ArrayLike<number>,
  tol: number,
  what = "",
): void {
  const e = relErr(actual, expected);
  if (!(e <= tol)) throw new Error(`${what}: relative error ${e.toExponential(2)} > ${tol}`);
}

/**
 * Central finite differences in f64 of a scalar function f at x, one coordinate at a time.
 * f must be a plain-TypeScript f64 reference of the op (composed with a fixed output weighting).
 */
export function numericGrad(
  f: (x: Float64Array) => number,
  x: Float64Array,
  h = 1e-6,
): Float64Array {
  const g = new Float64Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const v = x[i];
    x[i] = v + h;
    const fp = f(x);
    x[i] = v - h;
    const fm = f(x);
    x[i] = v;
    g[i] = (fp - fm) / (2 * h);
  }
  return g;
}

export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] * b[i];
  return s;
}

/** op(A)·op(B) (+ bias) (→ tanh-GELU) in f64, B shared by the batch: the matmul's reference. */
export function refMatmul(
  a: Float32Array,
  b: Float32Array,
  batch: number,
  M: number,
  K: number,
  N: number,
  tA: boolean,
  tB: boolean,
  bias: Float32Array | null,
  gelu: boolean,
): Float64Array {
  const o = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = tA ? a[z * K * M + k * M + i] : a[z * M * K + i * K + k];
          const bv = tB ? b[j * K + k] : b[k * N + j];
          s += av * bv;
        }
        if (bias) s += bias[j];
        if (gelu) s = 0.5 * s * (1 + Math.tanh(0.7978845608028654 * (s + 0.044715 * s * s * s)));
        o[z * M * N + i * N + j] = s;
      }
    }
  }
  return o;
}

/** A text condition for `prompts` on `model`; `drop` flags the captions dropped (none by default). */
export function textCond(
  model: PixArt,
  prompts: string[],
  drop = new Uint8Array(prompts.length),
): Extract<Condition, { kind: "text" }> {
  return { kind: "text", ...model.tokenize(prompts), drop };
}
