// Matrix multiply C = op(A)·op(B) (+ bias) (+ tanh-GELU), op = identity or transpose, batched
// over leading axes. Every layout runs natively (kernels/matmul_wgsl.ts): NN, NT (nn.Linear's
// X·Wᵀ, no transposed copy of the weight), TN (a weight gradient dYᵀ·X) with vec4 loads along
// the contiguous axes, and any layout or size through the scalar and workgroup-shared kernels.
//
// Each product runs one of several variants (register tiles of two sizes, workgroup-shared tiles,
// subgroup shuffles where the device has subgroups, scalar), chosen per adapter and shape
// (kernels/tune.ts). They sum in the same order, so the choice changes the speed and never the
// numbers. Sizes reach the kernels in a small buffer: one pipeline per variant and epilogue serves
// every shape.
//
// On CPU adapters each invocation's global loads dominate, so every invocation computes a
// register tile of outputs: the FMAs per load decide the speed. Rows and columns past the edge
// are clamped on load and skipped on store, so any M and N work with any tile.

import { needsGrad, record } from "./autograd.ts";
import { type Binding, dispatch, kernel, sizeWords } from "./runtime.ts";
import { empty, numel, shapeStr, Tensor } from "./tensor.ts";
import { reshape, transpose } from "./shape.ts";
import { sumTo } from "./reduce.ts";
import { geluTanhBackward } from "./elementwise.ts";
import { randomNormal } from "./random.ts";
import { gridKernel } from "./grid_kernel.ts";
import { chooseVariant, isCpuAdapter, type TuneTask } from "./tune.ts";
import { deviceInfo } from "./device.ts";
import {
  type Epilogue,
  type Layout,
  type MatmulSpec,
  regFits,
  regGrid,
  regWGSL,
  scalarWGSL,
  SHARED_TILE,
  sharedWGSL,
  subgroupGrid,
  subgroupWGSL,
  type Tiling,
} from "./matmul_wgsl.ts";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  /**
   * tanh-GELU of the result (+ bias), applied in the product's store. With gradients the kernel
   * also stores the pre-activation, which the activation's backward reads.
   */
  activation?: "gelu_tanh" | null;
}

/** One product as the kernels see it. */
interface Problem {
  spec: MatmulSpec;
  batch: number;
  M: number;
  K: number;
  N: number;
  /** elements between consecutive batches of B (0: shared) */
  bStride: number;
  /** an f16 B (NT): its row length in values (K) and the first value read (start row × K) */
  ldb: number;
  bOff: number;
}

// ---- variants -------------------------------------------------------------------------------

/** The matmul variants by name (see matmul_wgsl.ts). */
export const MATMUL_VARIANTS: Readonly<Record<string, Tiling>> = {
  // today's CPU tiling: 256 outputs per invocation, the most FMAs per load; ~1.4 s to compile on
  // lavapipe
  reg16: { kind: "reg", TM: 16, TN: 16, map: "grid" },
  // a quarter of the register tile: a quarter of the compile time, more loads per FMA
  reg8: { kind: "reg", TM: 8, TN: 8, map: "grid" },
  // the GPU tiling: 64×64 tiles staged in workgroup memory
  shared: { kind: "shared" },
  // 4×4 outputs, scalar loads: any layout and size
  scalar: { kind: "scalar" },
  // devices with the subgroups feature: 8×4 outputs per invocation, A's loads shared across a
  // subgroup by shuffles; any layout and size. Never a default: only timing picks it
  subgroup: { kind: "subgroup", TM: 8, TN: 4, wg: 64 },
};

/**
 * Whether this device can run a variant at all (the subgroup variant needs the `subgroups`
 * feature). One it cannot is never a candidate: forcing it runs the default instead, as forcing a
 * variant on a shape it cannot tile does.
 */
export function matmulVariantSupported(variant: string): boolean {
  const t = MATMUL_VARIANTS[variant];
  return !!t && (t.kind !== "subgroup" || deviceInfo().subgroups);
}

/** Names of the variants that can run this problem: within the adapter's workgroup grid too. */
function candidates(p: Problem): string[] {
  const max = deviceInfo().workgroupsPerDimension;
  const out: string[] = [];
  for (const [name, t] of Object.entries(MATMUL_VARIANTS)) {
    if (!matmulVariantSupported(name)) continue;
    if (t.kind === "reg" && !regFits(p.spec, p.M, p.K, p.N, t)) continue;
    if (Math.max(...grid(p, name)) > max) continue;
    out.push(name);
  }
  if (!out.length) {
    throw new Error(
      `matmul: ${p.batch} product(s) of [${p.M}×${p.K}]·[${p.K}×${p.N}] need more than this ` +
        `adapter's ${max} workgroups a dimension with every variant: a smaller batch ` +
        `(train.batch_size, --num) or image makes smaller products`,
    );
  }
  return out;
}

/** Products of at least this many FLOPs take the 16×16 register tile by default on a CPU. */
const LARGE_FLOP = 2 ** 28;

/**
 * The variant an adapter runs when it has no timing. A GPU: the shared tiles. A CPU: register
 * tiles, 16×16 for a weight gradient (TN: the outer-product loop gains most from the larger tile)
 * and for large products, 8×8 for small ones, where the larger tile's extra second of compile
 * (paid on a machine's first run) would cost more than it saves.
 */
function defaultVariant(p: Problem, cands: string[]): string {
  let order = ["shared", "reg8", "scalar"];
  if (isCpuAdapter()) {
    const large = p.spec.layout === "TN" || 2 * p.batch * p.M * p.K * p.N >= LARGE_FLOP;
    order = large ? ["reg16", "reg8", "scalar"] : ["reg8", "reg16", "scalar"];
  }
  return order.find((v) => cands.includes(v)) ?? cands[0];
}

function shapeKey(p: Problem): string {
  return `${p.spec.layout}${p.spec.half ? "h" : ""} ${p.batch}x${p.M}x${p.K}x${p.N}`;
}

function specName(s: MatmulSpec): string {
  return `${s.layout}${s.half ? "_hb" : ""}${s.bias ? "_bias" : ""}${
    s.epilogue === "none" ? "" : "_" + s.epilogue
  }${s.sumA ? "_sumA" : ""}`;
}

function pipeline(spec: MatmulSpec, variant: string) {
  const t = MATMUL_VARIANTS[variant];
  const code = t.kind === "reg"
    ? regWGSL(spec, t)
    : t.kind === "shared"
    ? sharedWGSL(spec)
    : t.kind === "subgroup"
    ? subgroupWGSL(spec, t)
    : scalarWGSL(spec);
  return kernel(`matmul_${specName(spec)}_${variant}`, code);
}

function grid(p: Problem, variant: string): [number, number, number] {
  const t = MATMUL_VARIANTS[variant];
  if (t.kind === "reg") return [...regGrid(t, p.M, p.N), p.batch];
  if (t.kind === "subgroup") return [...subgroupGrid(t, p.M, p.N), p.batch];
  const T = t.kind === "shared" ? SHARED_TILE : 32;
  return [Math.ceil(p.N / T), Math.ceil(p.M / T), p.batch];
}

/** Records the product with a given variant; `bufs` are A, B, C, then bias and pre if used. */
function run(p: Problem, variant: string, bufs: Binding[]): void {
  const dims = sizeWords([p.M, p.K, p.N, p.bStride, p.ldb, p.bOff, 0, 0]);
  const [gx, gy, gz] = grid(p, variant);
  dispatch(pipeline(p.spec, variant), [dims, ...bufs], gx, gy, gz);
}

/** Chooses the variant for a problem (timed once per adapter when tuning is on) and runs it. */
function runChosen(p: Problem, bufs: Binding[]): void {
  const cands = candidates(p);
  const key = shapeKey(p);
  const task: TuneTask = {
    family: "matmul",
    key,
    candidates: cands,
    prepare: () => tuneInputs(p),
  };
  run(p, chooseVariant(task, defaultVariant(p, cands)), bufs);
}

/** Inputs of a problem's shape for timing its candidates (plain f32 epilogue-free product). */
function tuneInputs(p: Problem) {
  const { batch, M, K, N, spec } = p;
  const a = randomNormal([batch * M * K], 1);
  const bRows = p.bStride ? batch : 1;
  const w = spec.half ? randomNormal([p.bOff / K + N, K], 2) : randomNormal([bRows * K * N], 2);
  const b = spec.half ? toHalf(w) : w;
  const c = empty([batch * M * N]);
  const bias = randomNormal([N], 3);
  const pre = empty([batch * M * N]);
  const sa = empty([batch * M]);
  const bufs = [a, b, c];
  if (spec.bias) bufs.push(bias);
  if (spec.epilogue === "gelu_pre") bufs.push(pre);
  if (spec.sumA) bufs.push(sa);
  return {
    run: (variant: string) => run(p, variant, bufs),
    dispose: () => {
      for (const t of new Set([a, w, b, c, bias, pre, sa])) t.dispose();
    },
  };
}

function layoutOf(transA: boolean, transB: boolean): Layout {
  return `${transA ? "T" : "N"}${transB ? "T" : "N"}` as Layout;
}

// C [batch, M, N] = op(A)·op(B) (+ bias) (→ GELU, with Pre the pre-activation)
function matmulKernel(
  a: Tensor,
  b: Tensor,
  bias: Tensor | null,
  out: Tensor,
  pre: Tensor | null,
  d: { batch: number; M: number; K: number; N: number; layout: Layout; bStride: number },
  epilogue: Epilogue,
): void {
  const p: Problem = {
    spec: { layout: d.layout, half: false, bias: !!bias, epilogue },
    batch: d.batch,
    M: d.M,
    K: d.K,
    N: d.N,
    bStride: d.bStride,
    ldb: 0,
    bOff: 0,
  };
  const bufs = [a, b, out];
  if (bias) bufs.push(bias);
  if (pre) bufs.push(pre);
  runChosen(p, bufs);
}

/**
 * op(A)·op(B) with an optional bias over the last axis. A: [..., M, K] ([..., K, M] with transA);
 * B: [K, N] shared by every batch, or [..., K, N] with A's batch dims ([N, K] / [..., N, K] with
 * transB).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  if (a.dtype !== "f32" || b.dtype !== "f32") {
    throw new Error(
      `matmul: f32 operands only, got ${a}·${b} (an f16 weight goes through linear())`,
    );
  }
  const transA = !!opts.transA, transB = !!opts.transB;
  const bias = opts.bias ?? null;
  const gelu = opts.activation === "gelu_tanh";
  if (opts.activation && !gelu) throw new Error(`matmul: unknown activation '${opts.activation}'`);
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(
      `matmul: operands need rank ≥ 2, got ${shapeStr(a.shape)}·${shapeStr(b.shape)}`,
    );
  }
  const M = transA ? a.shape[a.rank - 1] : a.shape[a.rank - 2];
  const K = transA ? a.shape[a.rank - 2] : a.shape[a.rank - 1];
  const N = transB ? b.shape[b.rank - 2] : b.shape[b.rank - 1];
  const Kb = transB ? b.shape[b.rank - 1] : b.shape[b.rank - 2];
  const batchShape = a.shape.slice(0, -2);
  const batch = numel(batchShape);
  const bBatched = b.rank > 2;
  if (Kb !== K) {
    throw new Error(
      `matmul: inner sizes differ: ${shapeStr(a.shape)}${transA ? "ᵀ" : ""}·${shapeStr(b.shape)}${
        transB ? "ᵀ" : ""
      }`,
    );
  }
  if (bBatched && numel(b.shape.slice(0, -2)) !== batch) {
    throw new Error(`matmul: batch sizes differ: ${shapeStr(a.shape)}·${shapeStr(b.shape)}`);
  }
  if (bias && bias.size !== N) {
    throw new Error(`matmul: bias ${shapeStr(bias.shape)} does not match ${N} columns`);
  }
  const grad = needsGrad(a, b, bias);
  const out = empty([...batchShape, M, N]);
  // with gradients, GELU's backward needs the pre-activation: the kernel stores both
  const pre = gelu && grad ? empty(out.shape) : null;
  const layout = layoutOf(transA, transB);
  // a shared B with A's rows contiguous: fold the batch into M (one large product)
  const fold = !bBatched && !transA;
  matmulKernel(a, b, bias, out, pre, {
    batch: fold ? 1 : batch,
    M: fold ? batch * M : M,
    K,
    N,
    layout,
    bStride: bBatched ? K * N : 0,
  }, gelu ? (pre ? "gelu_pre" : "gelu") : "none");
  if (!grad) return out;
  const inputs = bias ? [a, b, bias] : [a, b];
  return record(out, gelu ? "matmul_gelu" : "matmul", inputs, (gOut) => {
    // through the activation first: d pre = g · gelu'(pre)
    const g = pre ? geluTanhBackward(pre, gOut) : gOut;
    let ga: Tensor | null = null, gb: Tensor | null = null, gbias: Tensor | null = null;
    if (a.requiresGrad) {
      // C = op(A)·op(B): d op(A) = dC·op(B)ᵀ; dA is its transpose when A was transposed
      if (!transA) ga = matmul(g, b, { transB: !transB });
      else if (bBatched || batch === 1) {
        const bb = bBatched ? b : reshape(b, [...batchShape, ...b.shape]);
        ga = matmul(bb, g, { transA: transB, transB: true });
        if (bb !== b) bb.dispose();
      } else {
        const t = matmul(g, b, { transB: !transB });
        ga = transpose(t);
        t.dispose();
      }
    }
    if (b.requiresGrad) {
      if (bBatched) {
        gb = transB
          ? matmul(g, a, { transA: true, transB: transA })
          : matmul(a, g, { transA: !transA });
      } else {
        // B is shared: its gradient sums over the batch, i.e. one product over all rows
        const rowsA = transA ? null : reshape(a, [batch * M, K]);
        const gf = reshape(g, [batch * M, N]);
        if (rowsA && transB && bias?.requiresGrad) {
          // a linear layer's weight and bias gradients in one product: dW = gᵀ·A, db = Σ rows g
          const [w, s] = productWithRowSums(gf, rowsA);
          gb = w;
          gbias = reshape(s, [...bias.shape]);
          s.dispose();
          rowsA.dispose();
        } else if (rowsA) {
          gb = transB ? matmul(gf, rowsA, { transA: true }) : matmul(rowsA, gf, { transA: true });
          rowsA.dispose();
        } else {
          // Aᵀ batched with a shared B (rare): sum per-batch products
          const at = transpose(a);
          const af = reshape(at, [batch * M, K]);
          gb = transB ? matmul(gf, af, { transA: true }) : matmul(af, gf, { transA: true });
          af.dispose();
          at.dispose();
        }
        gf.dispose();
      }
    }
    if (bias?.requiresGrad && !gbias) {
      const s = sumTo(g, [N]);
      gbias = reshape(s, [...bias.shape]);
      if (s !== g) s.dispose();
    }
    if (g !== gOut) g.dispose();
    return [ga, gb, gbias];
  }, pre ? [...inputs, pre] : inputs);
}

/** aᵀ·b and the row sums of aᵀ (Σ over a's rows): a [K, M], b [K, N] → [M, N], [M]. No autograd. */
function productWithRowSums(a: Tensor, b: Tensor): [Tensor, Tensor] {
  const [K, M] = a.shape, N = b.shape[1];
  const out = empty([M, N]), sums = empty([M]);
  runChosen({
    spec: { layout: "TN", half: false, bias: false, epilogue: "none", sumA: true },
    batch: 1,
    M,
    K,
    N,
    bStride: 0,
    ldb: 0,
    bOff: 0,
  }, [a, b, out, sums]);
  return [out, sums];
}

/**
 * x·Wᵀ + b as in torch.nn.Linear (then the activation): x [..., in], weight [out, in], bias [out].
 * An f16 weight (toHalf) is read as f16 and summed in f32; it has no gradient.
 */
export function linear(
  x: Tensor,
  weight: Tensor,
  bias?: Tensor | null,
  activation?: MatmulOptions["activation"],
): Tensor {
  return linearHalfRows(x, weight, 0, weight.shape[0], bias, activation) ??
    matmul(x, weight, { transB: true, bias, activation });
}

/**
 * x·W[start : start + count]ᵀ + b for an f16 weight W, reading the rows in place; null for an f32
 * weight (split it and call linear()).
 */
export function linearHalfRows(
  x: Tensor,
  weight: Tensor,
  start: number,
  count: number,
  bias?: Tensor | null,
  activation?: MatmulOptions["activation"],
): Tensor | null {
  if (weight.dtype !== "f16") return null;
  const [N, K] = weight.shape;
  if (weight.rank !== 2 || x.shape[x.rank - 1] !== K || x.dtype !== "f32") {
    throw new Error(`linear: ${x} input for a ${weight} weight`);
  }
  if (needsGrad(x, bias)) {
    throw new Error(
      `linear: ${weight} is an f16 weight, for sampling: no gradient flows through it`,
    );
  }
  if (!Number.isInteger(start) || !Number.isInteger(count) || start < 0 || start + count > N) {
    throw new Error(`linear: rows ${start}…${start + count} of a ${weight} weight`);
  }
  if (bias && bias.size !== count) {
    throw new Error(`linear: bias ${shapeStr(bias.shape)} does not match ${count} outputs`);
  }
  const out = empty([...x.shape.slice(0, -1), count]);
  const bufs = [x, weight, out];
  if (bias) bufs.push(bias);
  runChosen({
    spec: {
      layout: "NT",
      half: true,
      bias: !!bias,
      epilogue: activation === "gelu_tanh" ? "gelu" : "none",
    },
    batch: 1,
    M: x.size / K,
    K,
    N: count,
    bStride: 0,
    ldb: K,
    bOff: start * K,
  }, bufs);
  return out;
}

// ---- f16 weights for sampling --------------------------------------------------------------------
// On CPU adapters a product's cost follows the number of scalar loads per FMA (each a per-lane
// access, docs/RESULTS.md); a weight read as f16 pairs halves its share, and halves its memory.
// The values widen to f32 and every sum stays in f32, in the same order as the f32 kernel's: a
// weight whose values are exactly f16 (a checkpoint stored in f16) gives the same results.

/** Whether toHalf can make an f16 copy of a linear weight: [N, K] with K % 4 == 0. */
export function halfPackable(weight: Tensor): boolean {
  return weight.rank === 2 && weight.dtype === "f32" && weight.shape[1] % 4 === 0;
}

/**
 * An f16 copy of a linear weight [N, K] (each value rounded to the nearest f16), for linear()
 * without gradients; K % 4 == 0 (halfPackable).
 */
export function toHalf(weight: Tensor): Tensor {
  if (!halfPackable(weight)) {
    throw new Error(`toHalf: ${weight} needs to be an f32 [N, K] weight with K % 4 == 0`);
  }
  const out = new Tensor(weight.shape, "f16");
  const words = weight.size / 2;
  // P [N·K/2] (u32 pairs) = pack2x16float(W [N·K]): one invocation per word
  gridKernel({
    name: "to_half",
    n: words,
    read: { W: [weight, "vec2<f32>"] },
    write: { P: [out, "u32"] },
    body: "P[i] = pack2x16float(W[i]);",
    sizes: [],
  });
  return out;
}
