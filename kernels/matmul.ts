// Matrix multiply C = op(A)·op(B) (+ bias), op = identity or transpose, batched over leading axes.
// Two layouts run natively, each reading both operands along their contiguous axis with vec4
// loads:
//   NN  C[m,n] = Σ_k A[m,k]·B[k,n]    (dX = dY·W)
//   TN  C[m,n] = Σ_k A[k,m]·B[k,n]    (dW = dYᵀ·X)
// For B transposed (Y = X·Wᵀ, the forward of nn.Linear) Bᵀ is materialised first: it is the small
// weight, and the NN kernel then reads both operands along contiguous rows. Shapes that are not
// multiples of 4 along the loaded axes take a scalar kernel that handles every layout.
//
// On CPU adapters each invocation's global loads dominate, so every invocation computes a large
// register tile (up to 16×16 outputs): the FMAs per load decide the speed. Rows and columns past
// the edge are clamped on load and skipped on store, so any M and N work with any tile.

import { needsGrad, record } from "./autograd.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, numel, shapeStr, type Tensor } from "./tensor.ts";
import { reshape, transpose } from "./shape.ts";
import { sumTo } from "./reduce.ts";
import { GELU_TANH_WGSL, geluTanh } from "./elementwise.ts";
import { ENTRY, flatIndex, grid1d } from "./wgsl.ts";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
  /**
   * tanh-GELU of the result (+ bias). Without gradients it runs in the product's store, saving the
   * activation's pass over the output (an MLP's widest tensor); with them the two ops are recorded
   * apart, as the activation's backward needs the pre-activation.
   */
  activation?: "gelu_tanh" | null;
}

interface Dims {
  batch: number;
  M: number;
  K: number;
  N: number;
  transA: boolean;
  transB: boolean;
  /** elements between consecutive batches of B (0: shared) */
  bStride: number;
  gelu?: boolean;
  /** B holds f16 pairs along n packed in u32 (a weight packed by `useHalfWeight`); NN only */
  halfB?: boolean;
  /** halfB: B's row length and the first column read (a slice of a wider packed weight) */
  ldb?: number;
  bOff?: number;
}

const WX = 8, WY = 8;

function tileOf(n: number, max: number): number {
  for (const t of [16, 8, 4, 2, 1]) if (t <= max && (t <= n || t === 1)) return t;
  return 1;
}

// C [batch, M, N] = op(A)·op(B) + bias — one invocation per TM×TN tile.
function matmulKernel(a: Tensor, b: Tensor, bias: Tensor | null, out: Tensor, d: Dims): void {
  const { batch, M, K, N, transA, transB, bStride } = d;
  const act = (e: string, vec: boolean) => d.gelu ? `${vec ? "gelu_t4" : "gelu_t"}(${e})` : e;
  const biasDecl = (t = "f32") =>
    bias ? `@group(0) @binding(3) var<storage, read> Bias: array<${t}>;` : "";
  const bufs = [a.buffer, b.buffer, out.buffer];
  if (bias) bufs.push(bias.buffer);
  const mode = `${transA ? "T" : "N"}${transB ? "T" : "N"}`;
  let code: string | null = null, TM = 1, TN = 1;
  const header = (aT: string, bT: string, cT = "f32") => `
@group(0) @binding(0) var<storage, read> A: array<${aT}>;
@group(0) @binding(1) var<storage, read> B: array<${bT}>;
@group(0) @binding(2) var<storage, read_write> C: array<${cT}>;
${biasDecl(cT)}
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col0 = gid.x * TN;
  let row0 = gid.y * TM;
  if (col0 >= ${N}u || row0 >= ${M}u) { return; }
  let z = gid.z;
  let aBase = z * ${M * K}u;
  let bBase = z * ${bStride}u;
  let cBase = z * ${M * N}u;`;
  const rowsDecl = (tm: number) =>
    Array.from({ length: tm }, (_, r) => `let r${r} = min(row0 + ${r}u, ${M - 1}u);`).join("\n");
  const colsDecl = (tn: number) =>
    Array.from({ length: tn }, (_, c) => `let c${c} = min(col0 + ${c}u, ${N - 1}u);`).join("\n");
  // store: acc(r, c) is a WGSL expression for output (row0 + r, col0 + c)
  const store = (acc: (r: number, c: number) => string) => {
    let s = "";
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN; c++) {
        const guard = [];
        if (M % TM !== 0) guard.push(`row0 + ${r}u < ${M}u`);
        if (N % TN !== 0) guard.push(`col0 + ${c}u < ${N}u`);
        const st = `C[cBase + (row0 + ${r}u) * ${N}u + col0 + ${c}u] = ${
          act(acc(r, c) + (bias ? ` + Bias[col0 + ${c}u]` : ""), false)
        };`;
        s += guard.length ? `if (${guard.join(" && ")}) { ${st} }\n` : st + "\n";
      }
    }
    return s;
  };
  // vec4 store: acc(r, c4) is the vec4 of output (row0 + r, col0 + 4·c4 …); N % TN == 0 here
  const store4 = (acc: (r: number, c4: number) => string) => {
    let s = "";
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN / 4; c++) {
        const st = `C[(cBase + (row0 + ${r}u) * ${N}u + col0) / 4u + ${c}u] = ${
          act(acc(r, c) + (bias ? ` + Bias[col0 / 4u + ${c}u]` : ""), true)
        };`;
        s += M % TM !== 0 ? `if (row0 + ${r}u < ${M}u) { ${st} }\n` : st + "\n";
      }
    }
    return s;
  };
  if (d.halfB && !(mode === "NN" && K % 4 === 0 && N % 8 === 0)) {
    throw new Error(`matmul: a packed f16 B needs the NN layout, K % 4 == 0 and N % 8 == 0`);
  }
  if (mode === "NN" && K % 4 === 0 && N % 4 === 0) {
    // A rows as vec4 along k; B rows as vec4 along n; acc vec4 per (row, 4 columns)
    TM = tileOf(M, 16);
    TN = N % 16 === 0 ? 16 : N % 8 === 0 ? 8 : 4;
    const TN4 = TN / 4;
    let body = "";
    for (let r = 0; r < TM; r++) body += `let a${r} = A[(aBase + r${r} * ${K}u + k) / 4u];\n`;
    for (let kk = 0; kk < 4; kk++) {
      for (let c = 0; c < TN4; c++) {
        // a packed B row: vec4<u32> c/2 holds columns 8·(c/2) … +7 as f16 pairs
        body += d.halfB
          ? (c % 2 === 0
            ? `let w${kk}_${c >> 1} = B[((k + ${kk}u) * ${d.ldb ?? N}u + ${
              d.bOff ?? 0
            }u + col0) / 8u + ${c >> 1}u];\n`
            : "") +
            `let b${kk}_${c} = vec4<f32>(unpack2x16float(w${kk}_${c >> 1}.${
              c % 2 ? "z" : "x"
            }), unpack2x16float(w${kk}_${c >> 1}.${c % 2 ? "w" : "y"}));\n`
          : `let b${kk}_${c} = B[(bBase + (k + ${kk}u) * ${N}u + col0) / 4u + ${c}u];\n`;
      }
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let r = 0; r < TM; r++) {
        for (let c = 0; c < TN4; c++) {
          body += `acc${r}_${c} = fma(vec4<f32>(a${r}[${kk}]), b${kk}_${c}, acc${r}_${c});\n`;
        }
      }
    }
    let decl = "";
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN4; c++) decl += `var acc${r}_${c} = vec4<f32>(0.0);\n`;
    }
    code = header("vec4<f32>", d.halfB ? "vec4<u32>" : "vec4<f32>", "vec4<f32>") + `
  ${rowsDecl(TM)}
  ${decl}
  for (var k = 0u; k < ${K}u; k += 4u) {
    ${body}
  }
  ${store4((r, c) => `acc${r}_${c}`)}
}`;
  } else if (mode === "TN" && M % 4 === 0 && N % 4 === 0) {
    // outer products: A[k, m..m+TM] and B[k, n..n+TN] as vec4s
    TM = M % 16 === 0 ? 16 : M % 8 === 0 ? 8 : 4;
    TN = N % 16 === 0 ? 16 : N % 8 === 0 ? 8 : 4;
    const TM4 = TM / 4, TN4 = TN / 4;
    let body = "";
    for (let r = 0; r < TM4; r++) {
      body += `let a${r} = A[(aBase + k * ${M}u + row0) / 4u + ${r}u];\n`;
    }
    for (let c = 0; c < TN4; c++) {
      body += `let b${c} = B[(bBase + k * ${N}u + col0) / 4u + ${c}u];\n`;
    }
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN4; c++) {
        body += `acc${r}_${c} = fma(vec4<f32>(a${r >> 2}[${r & 3}]), b${c}, acc${r}_${c});\n`;
      }
    }
    let decl = "";
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN4; c++) decl += `var acc${r}_${c} = vec4<f32>(0.0);\n`;
    }
    code = header("vec4<f32>", "vec4<f32>", "vec4<f32>") + `
  ${decl}
  for (var k = 0u; k < ${K}u; k++) {
    ${body}
  }
  ${store4((r, c) => `acc${r}_${c}`)}
}`;
  }
  if (!code) {
    // scalar fallback, any layout
    TM = 4;
    TN = 4;
    const aIdx = (r: string) => transA ? `aBase + k * ${M}u + ${r}` : `aBase + ${r} * ${K}u + k`;
    const bIdx = (c: string) => transB ? `bBase + ${c} * ${K}u + k` : `bBase + k * ${N}u + ${c}`;
    let body = "";
    for (let r = 0; r < TM; r++) body += `let a${r} = A[${aIdx(`r${r}`)}];\n`;
    for (let c = 0; c < TN; c++) body += `let b${c} = B[${bIdx(`c${c}`)}];\n`;
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN; c++) body += `acc${r}_${c} = fma(a${r}, b${c}, acc${r}_${c});\n`;
    }
    let decl = "";
    for (let r = 0; r < TM; r++) for (let c = 0; c < TN; c++) decl += `var acc${r}_${c} = 0.0;\n`;
    code = header("f32", "f32") + `
  ${rowsDecl(TM)}
  ${colsDecl(TN)}
  ${decl}
  for (var k = 0u; k < ${K}u; k++) {
    ${body}
  }
  ${store((r, c) => `acc${r}_${c}`)}
}`;
  }
  code = `const TM = ${TM}u;\nconst TN = ${TN}u;\n` + (d.gelu ? GELU_TANH_WGSL : "") + code;
  const gx = Math.ceil(N / TN / WX), gy = Math.ceil(M / TM / WY);
  const name = `matmul_${mode}_${TM}x${TN}${d.halfB ? "_hb" : ""}${d.gelu ? "_gelu" : ""}`;
  dispatch(kernel(name, code), bufs, gx, gy, batch);
}

/**
 * op(A)·op(B) with an optional bias over the last axis. A: [..., M, K] ([..., K, M] with transA);
 * B: [K, N] shared by every batch, or [..., K, N] with A's batch dims ([N, K] / [..., N, K] with
 * transB).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  const transA = !!opts.transA, transB = !!opts.transB;
  const bias = opts.bias ?? null;
  const gelu = opts.activation === "gelu_tanh";
  if (opts.activation && !gelu) throw new Error(`matmul: unknown activation '${opts.activation}'`);
  if (gelu && needsGrad(a, b, bias)) return geluTanh(matmul(a, b, { ...opts, activation: null }));
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
  const out = empty([...batchShape, M, N]);
  if (transB && (transA || K % 4 === 0 && N % 4 === 0)) {
    // Bᵀ is materialised (for a linear layer it is the small weight) so the NN or TN kernel,
    // which read both operands along contiguous rows, can run
    const bt = transpose(b);
    const st = bBatched ? K * N : 0;
    if (!bBatched && !transA) {
      matmulKernel(a, bt, bias, out, {
        batch: 1,
        M: batch * M,
        K,
        N,
        transA,
        transB: false,
        bStride: 0,
        gelu,
      });
    } else {matmulKernel(a, bt, bias, out, {
        batch,
        M,
        K,
        N,
        transA,
        transB: false,
        bStride: st,
        gelu,
      });}
    bt.dispose();
  } else if (!bBatched && !transA) {
    // fold the batch into M: one large product instead of many small ones
    matmulKernel(a, b, bias, out, {
      batch: 1,
      M: batch * M,
      K,
      N,
      transA,
      transB,
      bStride: 0,
      gelu,
    });
  } else {
    matmulKernel(a, b, bias, out, {
      batch,
      M,
      K,
      N,
      transA,
      transB,
      bStride: bBatched ? K * N : 0,
      gelu,
    });
  }
  if (!needsGrad(a, b, bias)) return out;
  const inputs = bias ? [a, b, bias] : [a, b];
  return record(out, "matmul", inputs, (g) => {
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
        if (rowsA) {
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
    if (bias?.requiresGrad) {
      const s = sumTo(g, [N]);
      gbias = reshape(s, [...bias.shape]);
      if (s !== g) s.dispose();
    }
    return [ga, gb, gbias];
  });
}

/** x·Wᵀ + b as in torch.nn.Linear (then the activation): x [..., in], weight [out, in], bias [out]. */
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
 * x·W[start : start + count]ᵀ + b through the weight's f16 twin (see useHalfWeight), reading the
 * rows in place; null when the weight has no twin or a gradient is needed.
 */
export function linearHalfRows(
  x: Tensor,
  weight: Tensor,
  start: number,
  count: number,
  bias?: Tensor | null,
  activation?: MatmulOptions["activation"],
): Tensor | null {
  const half = halfTwins.get(weight);
  if (!half || needsGrad(x, weight, bias)) return null;
  const [N, K] = weight.shape;
  if (x.shape[x.rank - 1] !== K) {
    throw new Error(`linear: ${shapeStr(x.shape)} input for a [${N}, ${K}] weight`);
  }
  if (start % 8 !== 0 || count % 8 !== 0 || start + count > N) {
    throw new Error(
      `linear: rows ${start}…${start + count} of [${N}, ${K}] are not whole f16 words`,
    );
  }
  if (bias && bias.size !== count) {
    throw new Error(`linear: bias ${shapeStr(bias.shape)} does not match ${count} outputs`);
  }
  const out = empty([...x.shape.slice(0, -1), count]);
  matmulKernel(x, half, bias ?? null, out, {
    batch: 1,
    M: x.size / K,
    K,
    N: count,
    transA: false,
    transB: false,
    bStride: 0,
    gelu: activation === "gelu_tanh",
    halfB: true,
    ldb: N,
    bOff: start,
  });
  return out;
}

// ---- f16-packed weights for inference ------------------------------------------------------------
// On CPU adapters a product's cost follows the number of scalar loads per FMA (each is a gather
// across SIMD lanes); a weight read as f16 pairs packed in u32 halves its share. Only weights whose
// values are exactly f16 (a checkpoint stored in f16) are packed, so the results do not change: the
// unpacked values, the FMAs and their order are the same as the f32 kernel's.

const halfTwins = new WeakMap<Tensor, Tensor>();

/** Whether linear(x, weight) can use a packed twin: [N, K] with N % 8 == 0 and K % 4 == 0. */
export function halfPackable(weight: Tensor): boolean {
  return weight.rank === 2 && weight.shape[0] % 8 === 0 && weight.shape[1] % 4 === 0;
}

// P [K, N/2] (u32 pairs) = pack2x16float(Wᵀ), W [N, K] f32 — one invocation per output word
function packHalfKernel(w: Tensor, out: Tensor): void {
  const [N, K] = w.shape;
  const n2 = N / 2, count = K * n2;
  const [gx, gy] = grid1d(count);
  const code = `
@group(0) @binding(0) var<storage, read> W: array<f32>;
@group(0) @binding(1) var<storage, read_write> P: array<u32>;
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${count}u) { return; }
  let k = i / ${n2}u;
  let n = 2u * (i % ${n2}u);
  P[i] = pack2x16float(vec2<f32>(W[n * ${K}u + k], W[(n + 1u) * ${K}u + k]));
}`;
  dispatch(kernel("pack_half_t", code), [w.buffer, out.buffer], gx, gy);
}

/**
 * Packs a linear weight [N, K] whose values are exactly f16 into the layout the NN kernel reads,
 * and makes linear() use it whenever no gradient is needed, until the returned handle is disposed.
 * The weight must not change while the twin lives (sampling from a loaded checkpoint).
 */
export function useHalfWeight(weight: Tensor): { dispose(): void } {
  if (!halfPackable(weight)) {
    throw new Error(`useHalfWeight: ${weight} needs shape [N, K] with N % 8 == 0, K % 4 == 0`);
  }
  if (halfTwins.has(weight)) throw new Error(`useHalfWeight: ${weight} already has a twin`);
  const [N, K] = weight.shape;
  const twin = empty([K, N / 2], "i32").keep();
  packHalfKernel(weight, twin);
  halfTwins.set(weight, twin);
  return {
    dispose: () => {
      if (halfTwins.get(weight) === twin) halfTwins.delete(weight);
      twin.dispose();
    },
  };
}
