// Multi-head scaled-dot-product attention, fused: scores, softmax and P·V in one kernel, with
// FlashAttention-style recomputation in the backward pass (only the per-row log-sum-exp is saved).
//
// Layout: q [B, Nq, D], k and v [B, Nk, D]; head j owns channels j·dh … (j+1)·dh − 1 (dh = D/h),
// so no permutes are needed. Scores use base-2 exponentials with log2(e)/√dh folded into one
// factor.
//
// On CPU adapters (lavapipe) invocations run in SIMD lanes and every global load is a per-lane
// gather, so the FMAs per loaded value decide the speed. Each invocation therefore owns a register
// tile of rows of one (batch, head): forward and dQ keep TQ query rows (q, the accumulators) and
// stream the keys; dK/dV keep TK keys (k, v, dk, dv) and stream the query rows. Every streamed row
// is loaded once per tile instead of once per row. Rows are held as vec4s when dh is a multiple of
// 4 and as scalars otherwise, with the head dimension unrolled.

import { needsGrad, record } from "./autograd.ts";
import { dispatch, kernel, sizeWords } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { f32lit, grid1d } from "./wgsl.ts";
import { chooseVariant, isCpuAdapter } from "./tune.ts";

export interface AttentionOptions {
  /** number of heads; must divide D */
  heads: number;
  /** key padding mask [B, Nk]: nonzero = attend, 0 = masked (gets −∞ before the softmax) */
  mask?: Tensor | null;
}

interface Geometry {
  B: number;
  Nq: number;
  Nk: number;
  D: number;
  H: number;
  dh: number;
  /** 4 (vec4 path) or 1 (scalar path) */
  W: number;
  /** dh / W: register chunks per row */
  n: number;
  T: string;
  /** D / W: row stride in chunks */
  RS: number;
  /** dh / W: head offset in chunks */
  HS: number;
  /** log2(e)/√dh: scores in base-2 units */
  s2: string;
  /** 1/√dh */
  scale: string;
}

function geometry(q: Tensor, k: Tensor, heads: number): Geometry {
  const [B, Nq, D] = q.shape;
  const Nk = k.shape[1];
  const dh = D / heads;
  const W = dh % 4 === 0 ? 4 : 1;
  return {
    B,
    Nq,
    Nk,
    D,
    H: heads,
    dh,
    W,
    n: dh / W,
    T: W === 4 ? "vec4<f32>" : "f32",
    RS: D / W,
    HS: dh / W,
    s2: f32lit(Math.LOG2E / Math.sqrt(dh)),
    scale: f32lit(1 / Math.sqrt(dh)),
  };
}

/** Invocations per workgroup (a 1-D grid over the tiles of all batches and heads). */
const WGA = 64;
/**
 * Most floats of row state one invocation keeps. Larger tiles load less per FMA but spill more
 * and compile much longer: on lavapipe with dh = 64, 512 → 1024 saves ~30 % of the run time for
 * 3× the (one-off, disk-cached) compile time; 2048 saves a further ~10 % for 3× again.
 */
const STATE_BUDGET = 1024;

/**
 * Variants: rows of one (batch, head) per invocation ("tile8" … "tile1"). Larger tiles load each
 * streamed row once for more rows (a CPU adapter's speed), smaller ones give a GPU more
 * invocations and compile faster. A tile is capped by the register budget: `perRow` head-sized
 * vectors per row (2 forward, 3 dQ, 4 dK/dV).
 */
export const ATTENTION_VARIANTS: readonly string[] = ["tile8", "tile4", "tile2", "tile1"];

/**
 * The most storage buffers an attention kernel binds: the backward's sizes, Q, K, V, O or LSE,
 * LSE or Δ, dO, its two outputs and the mask. Over WebGPU's guaranteed 8, so training checks the
 * adapter offers them (model/memory.ts); sampling binds at most 7.
 */
export const ATTENTION_STORAGE_BUFFERS = 10;

function tileOf(variant: string, dh: number, perRow: number): number {
  let t = Number(variant.slice(4));
  while (t > 1 && t * perRow * dh > STATE_BUDGET) t >>= 1;
  return t;
}

/** Attention problems of at least this many FLOPs take the largest tile by default on a CPU. */
const LARGE_FLOP = 2 ** 26;

/** The variant of a problem: timed per adapter when tuning is on, else a default by size. */
function attentionVariant(g: Geometry, mask: boolean): string {
  const flop = 4 * g.B * g.Nq * g.Nk * g.D;
  // by default the largest tile that wastes at most a quarter of its rows on padding
  const fit = ATTENTION_VARIANTS.filter((v) => {
    const t = Number(v.slice(4));
    return t === 1 || (t <= g.Nq && Math.ceil(g.Nq / t) * t <= g.Nq * 1.25);
  });
  const small = ATTENTION_VARIANTS.indexOf("tile2");
  const fallback = isCpuAdapter() && flop >= LARGE_FLOP
    ? fit[0]
    : fit.find((v) => ATTENTION_VARIANTS.indexOf(v) >= small)!;
  return chooseVariant({
    family: "attention",
    key: `${g.B}x${g.H}x${g.Nq}x${g.Nk}x${g.dh}${mask ? "m" : ""}`,
    candidates: ATTENTION_VARIANTS,
    prepare: () => {
      const q = empty([g.B, g.Nq, g.D]), k = empty([g.B, g.Nk, g.D]), v = empty([g.B, g.Nk, g.D]);
      const m = mask ? empty([g.B, g.Nk]) : null;
      const o = empty([g.B, g.Nq, g.D]);
      for (const t of [q, k, v, m]) if (t) fillOnes(t);
      return {
        run: (variant: string) => forwardKernel(g, variant, q, k, v, m, o, null),
        dispose: () => [q, k, v, m, o].forEach((t) => t?.dispose()),
      };
    },
  }, fallback);
}

function fillOnes(t: Tensor): void {
  const code = `@group(0) @binding(0) var<storage, read_write> O: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.y * nwg.x * 64u + gid.x;
  if (i < arrayLength(&O)) { O[i] = 1.0; }
}`;
  const [gx, gy] = grid1d(t.size, 64);
  dispatch(kernel("attention_tune_fill", code), [t], gx, gy);
}

/** `f(c)` for every chunk c, one per line. */
function each(n: number, f: (c: number) => string): string {
  let s = "";
  for (let c = 0; c < n; c++) s += f(c) + "\n";
  return s;
}

/** `f(r, c)` for every tile row r and chunk c, one per line. */
function each2(rows: number, n: number, f: (r: number, c: number) => string): string {
  let s = "";
  for (let r = 0; r < rows; r++) for (let c = 0; c < n; c++) s += f(r, c) + "\n";
  return s;
}

/** Σ_c dot(a_c, b_c) as one WGSL expression. */
function dots(g: Geometry, a: (c: number) => string, b: (c: number) => string): string {
  const terms: string[] = [];
  for (let c = 0; c < g.n; c++) {
    terms.push(g.W === 4 ? `dot(${a(c)}, ${b(c)})` : `${a(c)} * ${b(c)}`);
  }
  return terms.join(" + ");
}

/** WGSL splat of a scalar to the chunk type. */
function splat(g: Geometry, x: string): string {
  return g.W === 4 ? `vec4<f32>(${x})` : x;
}

/** WGSL: sizes (a small buffer at binding 0) and the flat invocation `i` decoded into batch b, head h
 * and first tile row `r0` (tiles of `tile` rows over `rows` = Nq or Nk). */
const DIMS =
  `struct Dims { B: u32, Nq: u32, Nk: u32, H: u32, RS: u32, tiles: u32, total: u32, p0: u32 }
@group(0) @binding(0) var<storage, read> dims: Dims;`;

const ENTRY_A = `@compute @workgroup_size(${WGA})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * ${WGA}u + lid.x;
  if (i >= dims.total) { return; }
  let Nq = dims.Nq; let Nk = dims.Nk; let RS = dims.RS;`;

function tileIndex(tile: number): string {
  return `let bh = i / dims.tiles;
  let r0 = (i % dims.tiles) * ${tile}u;
  let h = bh % dims.H;
  let b = bh / dims.H;`;
}

/** The sizes buffer and the grid of a kernel whose tiles of `tile` rows cover `rows` rows. */
function launch(g: Geometry, rows: number, tile: number) {
  const tiles = Math.ceil(rows / tile);
  const total = g.B * g.H * tiles;
  const [gx, gy] = grid1d(total, WGA);
  const dims = sizeWords([g.B, g.Nq, g.Nk, g.H, g.RS, tiles, total, 0]);
  return { dims, gx, gy };
}

const maskDecl = (binding: number) =>
  `@group(0) @binding(${binding}) var<storage, read> M: array<f32>;`;

const kname = (base: string, g: Geometry, tile: number, mask: boolean) =>
  `${base}${g.W === 4 ? "_v4" : ""}_dh${g.dh}_t${tile}${mask ? "_mask" : ""}`;

// q [B, Nq, D], k, v [B, Nk, D] (, mask [B, Nk]) → o [B, Nq, D] (, lse [B, H, Nq] in log2 units)
function forwardKernel(
  g: Geometry,
  variant: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  out: Tensor,
  lse: Tensor | null,
): void {
  const { n, T, HS } = g;
  const TQ = tileOf(variant, g.dh, 2);
  const { dims, gx, gy } = launch(g, g.Nq, TQ);
  const bindings = [dims, q, k, v, out];
  let decl = "";
  if (lse) {
    decl += `@group(0) @binding(${bindings.length}) var<storage, read_write> LSE: array<f32>;\n`;
    bindings.push(lse);
  }
  if (mask) {
    decl += maskDecl(bindings.length);
    bindings.push(mask);
  }
  const rows = Array.from({ length: TQ }, (_, r) => r);
  const code = `${DIMS}
@group(0) @binding(1) var<storage, read> Q: array<${T}>;
@group(0) @binding(2) var<storage, read> K: array<${T}>;
@group(0) @binding(3) var<storage, read> V: array<${T}>;
@group(0) @binding(4) var<storage, read_write> O: array<${T}>;
${decl}
${ENTRY_A}
  ${tileIndex(TQ)}
  ${each(TQ, (r) => `let qo${r} = (b * Nq + min(r0 + ${r}u, Nq - 1u)) * RS + h * ${HS}u;`)}
  ${each2(TQ, n, (r, c) => `let q${r}_${c} = Q[qo${r} + ${c}u] * ${g.s2};`)}
  ${each2(TQ, n, (r, c) => `var a${r}_${c} = ${T}(0.0);`)}
  ${each(TQ, (r) => `var m${r} = -1.0e30;\n  var l${r} = 0.0;`)}
  let kb = b * Nk * RS + h * ${HS}u;
  for (var j = 0u; j < Nk; j++) {
    let ko = kb + j * RS;
    ${mask ? `let keep = M[b * Nk + j] != 0.0;` : ""}
    ${each(n, (c) => `let k${c} = K[ko + ${c}u];`)}
    ${
    rows.map((r) => `
    let s${r} = ${dots(g, (c) => `q${r}_${c}`, (c) => `k${c}`)};
    let mn${r} = ${mask ? `select(m${r}, max(m${r}, s${r}), keep)` : `max(m${r}, s${r})`};
    let al${r} = exp2(m${r} - mn${r});
    let p${r} = ${mask ? `select(0.0, exp2(s${r} - mn${r}), keep)` : `exp2(s${r} - mn${r})`};
    l${r} = l${r} * al${r} + p${r};
    m${r} = mn${r};`).join("")
  }
    ${
    each(n, (c) =>
      `let v${c} = V[ko + ${c}u];\n` +
      rows.map((r) => `a${r}_${c} = fma(${splat(g, `p${r}`)}, v${c}, a${r}_${c} * al${r});`)
        .join("\n"))
  }
  }
  ${
    rows.map((r) => `
  if (r0 + ${r}u < Nq) {
    // a row whose keys are all masked has l = 0: output zeros
    let inv = select(0.0, 1.0 / l${r}, l${r} > 0.0);
    ${each(n, (c) => `O[qo${r} + ${c}u] = a${r}_${c} * inv;`)}
    ${lse ? `LSE[bh * Nq + r0 + ${r}u] = select(0.0, m${r} + log2(l${r}), l${r} > 0.0);` : ""}
  }`).join("")
  }
}`;
  dispatch(kernel(kname("attention", g, TQ, !!mask), code), bindings, gx, gy);
}

// q, o, dO [B, Nq, D], k, v [B, Nk, D], lse [B, H, Nq] (, mask) → dq [B, Nq, D], delta [B, H, Nq]
function backwardQKernel(
  g: Geometry,
  variant: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  out: Tensor,
  lse: Tensor,
  dout: Tensor,
  dq: Tensor,
  delta: Tensor,
): void {
  const { n, T, HS } = g;
  const TQ = tileOf(variant, g.dh, 3);
  const { dims, gx, gy } = launch(g, g.Nq, TQ);
  const bindings = [dims, q, k, v, out, lse, dout];
  bindings.push(dq, delta);
  if (mask) bindings.push(mask); // ATTENTION_STORAGE_BUFFERS at most
  const rows = Array.from({ length: TQ }, (_, r) => r);
  const code = `${DIMS}
@group(0) @binding(1) var<storage, read> Q: array<${T}>;
@group(0) @binding(2) var<storage, read> K: array<${T}>;
@group(0) @binding(3) var<storage, read> V: array<${T}>;
@group(0) @binding(4) var<storage, read> O: array<${T}>;
@group(0) @binding(5) var<storage, read> LSE: array<f32>;
@group(0) @binding(6) var<storage, read> DO: array<${T}>;
@group(0) @binding(7) var<storage, read_write> DQ: array<${T}>;
@group(0) @binding(8) var<storage, read_write> DELTA: array<f32>;
${mask ? maskDecl(9) : ""}
${ENTRY_A}
  ${tileIndex(TQ)}
  ${
    rows.map((r) => `
  let row${r} = min(r0 + ${r}u, Nq - 1u);
  let qo${r} = (b * Nq + row${r}) * RS + h * ${HS}u;
  ${each(n, (c) => `let q${r}_${c} = Q[qo${r} + ${c}u] * ${g.s2};`)}
  ${each(n, (c) => `let do${r}_${c} = DO[qo${r} + ${c}u];`)}
  ${each(n, (c) => `var dq${r}_${c} = ${T}(0.0);`)}
  // delta = rowsum(dP ⊙ P) = dO · O
  let delta${r} = ${dots(g, (c) => `do${r}_${c}`, (c) => `O[qo${r} + ${c}u]`)};
  let L${r} = LSE[bh * Nq + row${r}];`).join("")
  }
  let kb = b * Nk * RS + h * ${HS}u;
  for (var j = 0u; j < Nk; j++) {
    let ko = kb + j * RS;
    ${mask ? `let keep = M[b * Nk + j] != 0.0;` : ""}
    ${each(n, (c) => `let k${c} = K[ko + ${c}u];`)}
    ${each(n, (c) => `let v${c} = V[ko + ${c}u];`)}
    ${
    rows.map((r) => `
    let s${r} = ${dots(g, (c) => `q${r}_${c}`, (c) => `k${c}`)};
    let p${r} = ${mask ? `select(0.0, exp2(s${r} - L${r}), keep)` : `exp2(s${r} - L${r})`};
    let dp${r} = ${dots(g, (c) => `do${r}_${c}`, (c) => `v${c}`)};
    let ds${r} = p${r} * (dp${r} - delta${r});`).join("")
  }
    ${each2(TQ, n, (r, c) => `dq${r}_${c} = fma(${splat(g, `ds${r}`)}, k${c}, dq${r}_${c});`)}
  }
  ${
    rows.map((r) => `
  if (r0 + ${r}u < Nq) {
    ${each(n, (c) => `DQ[qo${r} + ${c}u] = dq${r}_${c} * ${g.scale};`)}
    DELTA[bh * Nq + row${r}] = delta${r};
  }`).join("")
  }
}`;
  dispatch(kernel(kname("attention_backward_q", g, TQ, !!mask), code), bindings, gx, gy);
}

// q, dO [B, Nq, D], k, v [B, Nk, D], lse, delta [B, H, Nq] (, mask) → dk, dv [B, Nk, D]
function backwardKVKernel(
  g: Geometry,
  variant: string,
  q: Tensor,
  k: Tensor,
  v: Tensor,
  mask: Tensor | null,
  lse: Tensor,
  delta: Tensor,
  dout: Tensor,
  dk: Tensor,
  dv: Tensor,
): void {
  const { n, T, HS } = g;
  // the key tiles cover Nk rows: the variant's tile, within the budget and Nk
  let TK = tileOf(variant, g.dh, 4);
  while (TK > 1 && (TK > g.Nk || Math.ceil(g.Nk / TK) * TK > g.Nk * 1.25)) TK >>= 1;
  const { dims, gx, gy } = launch(g, g.Nk, TK);
  const bindings = [dims, q, k, v, lse, delta, dout];
  bindings.push(dk, dv);
  if (mask) bindings.push(mask); // ATTENTION_STORAGE_BUFFERS at most
  const rows = Array.from({ length: TK }, (_, r) => r);
  const zeroIfMasked = (r: number, x: string) => mask ? `select(${T}(0.0), ${x}, keep${r})` : x;
  const code = `${DIMS}
@group(0) @binding(1) var<storage, read> Q: array<${T}>;
@group(0) @binding(2) var<storage, read> K: array<${T}>;
@group(0) @binding(3) var<storage, read> V: array<${T}>;
@group(0) @binding(4) var<storage, read> LSE: array<f32>;
@group(0) @binding(5) var<storage, read> DELTA: array<f32>;
@group(0) @binding(6) var<storage, read> DO: array<${T}>;
@group(0) @binding(7) var<storage, read_write> DK: array<${T}>;
@group(0) @binding(8) var<storage, read_write> DV: array<${T}>;
${mask ? maskDecl(9) : ""}
${ENTRY_A}
  ${tileIndex(TK)}
  ${
    rows.map((r) => `
  let key${r} = min(r0 + ${r}u, Nk - 1u);
  let ko${r} = (b * Nk + key${r}) * RS + h * ${HS}u;
  ${each(n, (c) => `let k${r}_${c} = K[ko${r} + ${c}u] * ${g.s2};`)}
  ${each(n, (c) => `let v${r}_${c} = V[ko${r} + ${c}u];`)}
  ${each(n, (c) => `var dk${r}_${c} = ${T}(0.0);`)}
  ${each(n, (c) => `var dv${r}_${c} = ${T}(0.0);`)}`).join("")
  }
  let qb = b * Nq * RS + h * ${HS}u;
  for (var qi = 0u; qi < Nq; qi++) {
    let qo = qb + qi * RS;
    let L = LSE[bh * Nq + qi];
    let dl = DELTA[bh * Nq + qi];
    ${each(n, (c) => `let q${c} = Q[qo + ${c}u];`)}
    ${each(n, (c) => `let do${c} = DO[qo + ${c}u];`)}
    ${
    rows.map((r) => `
    let s${r} = ${dots(g, (c) => `q${c}`, (c) => `k${r}_${c}`)};
    // a masked key's p is meaningless (possibly inf); its gradients are zeroed at the end
    let p${r} = exp2(s${r} - L);
    let dp${r} = ${dots(g, (c) => `do${c}`, (c) => `v${r}_${c}`)};
    let ds${r} = p${r} * (dp${r} - dl);`).join("")
  }
    ${each2(TK, n, (r, c) => `dv${r}_${c} = fma(${splat(g, `p${r}`)}, do${c}, dv${r}_${c});`)}
    ${each2(TK, n, (r, c) => `dk${r}_${c} = fma(${splat(g, `ds${r}`)}, q${c}, dk${r}_${c});`)}
  }
  ${
    rows.map((r) => `
  if (r0 + ${r}u < Nk) {
    ${mask ? `let keep${r} = M[b * Nk + key${r}] != 0.0;` : ""}
    ${each(n, (c) => `DK[ko${r} + ${c}u] = ${zeroIfMasked(r, `dk${r}_${c} * ${g.scale}`)};`)}
    ${each(n, (c) => `DV[ko${r} + ${c}u] = ${zeroIfMasked(r, `dv${r}_${c}`)};`)}
  }`).join("")
  }
}`;
  dispatch(kernel(kname("attention_backward_kv", g, TK, !!mask), code), bindings, gx, gy);
}

/**
 * Multi-head scaled-dot-product attention: softmax(q·kᵀ/√dh + mask)·v per head, with q [B, Nq, D],
 * k and v [B, Nk, D] (Nq may differ from Nk), head j on channels j·dh … (j+1)·dh − 1, dh = D/heads.
 * `mask` [B, Nk] marks the keys to attend (nonzero) or ignore (0); a query whose keys are all
 * masked gets zeros. Returns [B, Nq, D]. Gradients flow to q, k and v (not the mask).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Tensor {
  const { heads } = opts;
  const mask = opts.mask ?? null;
  const bad = (why: string) =>
    new Error(
      `attention: ${why} (q ${shapeStr(q.shape)}, k ${shapeStr(k.shape)}, v ${shapeStr(v.shape)}${
        mask ? `, mask ${shapeStr(mask.shape)}` : ""
      }, heads ${heads})`,
    );
  if (q.rank !== 3 || k.rank !== 3 || v.rank !== 3) throw bad("q, k, v must be [B, N, D]");
  const [B, Nq, D] = q.shape;
  const Nk = k.shape[1];
  if (k.shape[0] !== B || v.shape[0] !== B) throw bad("batch sizes differ");
  if (k.shape[2] !== D || v.shape[2] !== D) throw bad("channel counts differ");
  if (v.shape[1] !== Nk) throw bad("k and v have different lengths");
  if (!Number.isInteger(heads) || heads < 1 || D % heads !== 0) {
    throw bad("heads must divide D");
  }
  if (Nq === 0 || Nk === 0 || D === 0 || B === 0) throw bad("empty operand");
  if (q.dtype !== "f32" || k.dtype !== "f32" || v.dtype !== "f32") throw bad("need f32 tensors");
  if (mask && (mask.rank !== 2 || mask.shape[0] !== B || mask.shape[1] !== Nk)) {
    throw bad("mask must be [B, Nk]");
  }
  if (mask && mask.dtype !== "f32") throw bad("mask must be f32 (1 = attend, 0 = masked)");
  const g = geometry(q, k, heads);
  const out = empty([B, Nq, D]);
  const lse = needsGrad(q, k, v) ? empty([B, heads, Nq]) : null;
  const variant = attentionVariant(g, !!mask);
  forwardKernel(g, variant, q, k, v, mask, out, lse);
  if (!lse) return out;
  return record(out, "attention", [q, k, v], (dout) => {
    const dq = empty(q.shape);
    const dk = empty(k.shape);
    const dv = empty(v.shape);
    const delta = empty([B, heads, Nq]);
    backwardQKernel(g, variant, q, k, v, mask, out, lse, dout, dq, delta);
    backwardKVKernel(g, variant, q, k, v, mask, lse, delta, dout, dk, dv);
    delta.dispose();
    lse.dispose();
    return [dq, dk, dv];
  }, [q, k, v, mask, out, lse]);
}
