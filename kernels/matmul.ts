// Matrix multiply: C[b] = A[b]·B[b] (+ bias), A [..., M, K], B [K, N] (shared) or [..., K, N].
// Transposed operands are materialised first (an O(MK) copy beside the O(MNK) product), so one
// well-tuned NN kernel serves the forward and both backward products.
//
// On CPU adapters each invocation's global loads dominate, so every invocation computes a large
// register tile (up to 16×16) from vec4 loads: the FMAs per load decide the speed.

import { needsGrad, record } from "./autograd.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, numel, shapeStr, type Tensor } from "./tensor.ts";
import { reshape, transpose } from "./shape.ts";
import { sumTo } from "./reduce.ts";

export interface MatmulOptions {
  transA?: boolean;
  transB?: boolean;
  bias?: Tensor | null;
}

function pick(n: number, options: number[]): number {
  for (const o of options) if (n % o === 0) return o;
  return 1;
}

/** Records C = A·B (+ bias) into `out`; shapes already checked. */
function matmulKernel(
  a: Tensor,
  b: Tensor,
  bias: Tensor | null,
  out: Tensor,
  batch: number,
  M: number,
  K: number,
  N: number,
  bBatched: boolean,
): void {
  const bStride = bBatched ? K * N : 0;
  const biasDecl = bias ? `@group(0) @binding(3) var<storage, read> Bias: array<f32>;` : "";
  if (K % 4 === 0 && N % 4 === 0) {
    // vec4 path: TM rows × TN columns per invocation
    const TN4 = pick(N / 4, [4, 2, 1]);
    const TN = TN4 * 4;
    const TM = pick(M, [16, 8, 4, 2, 1]);
    const WX = 8, WY = 8;
    const gx = Math.ceil(N / TN / WX), gy = Math.ceil(M / TM / WY);
    let decl = "", body = "", store = "";
    for (let r = 0; r < TM; r++) {
      for (let c = 0; c < TN4; c++) {
        decl += `var acc${r}_${c} = vec4<f32>(0.0);\n`;
        const bv = bias
          ? ` + vec4<f32>(Bias[col0 + ${c * 4}u], Bias[col0 + ${c * 4 + 1}u], Bias[col0 + ${
            c * 4 + 2
          }u], Bias[col0 + ${c * 4 + 3}u])`
          : "";
        store += `C[(cBase + (row0 + ${r}u) * ${N}u + col0) / 4u + ${c}u] = acc${r}_${c}${bv};\n`;
      }
    }
    for (let r = 0; r < TM; r++) {
      body += `let a${r} = A[(aBase + (row0 + ${r}u) * ${K}u + k) / 4u];\n`;
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let c = 0; c < TN4; c++) {
        body += `let b${kk}_${c} = B[(bBase + (k + ${kk}u) * ${N}u + col0) / 4u + ${c}u];\n`;
      }
    }
    for (let kk = 0; kk < 4; kk++) {
      for (let r = 0; r < TM; r++) {
        for (let c = 0; c < TN4; c++) {
          body += `acc${r}_${c} = fma(vec4<f32>(a${r}[${kk}]), b${kk}_${c}, acc${r}_${c});\n`;
        }
      }
    }
    const code = `
@group(0) @binding(0) var<storage, read> A: array<vec4<f32>>;
@group(0) @binding(1) var<storage, read> B: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> C: array<vec4<f32>>;
${biasDecl}
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col0 = gid.x * ${TN}u;
  let row0 = gid.y * ${TM}u;
  if (col0 >= ${N}u || row0 >= ${M}u) { return; }
  let z = gid.z;
  let aBase = z * ${M * K}u;
  let bBase = z * ${bStride}u;
  let cBase = z * ${M * N}u;
  ${decl}
  for (var k = 0u; k < ${K}u; k += 4u) {
    ${body}
  }
  ${store}
}`;
    const bufs = [a.buffer, b.buffer, out.buffer];
    if (bias) bufs.push(bias.buffer);
    dispatch(kernel(`matmul_${TM}x${TN}`, code), bufs, gx, gy, batch);
    return;
  }
  // scalar path for shapes that are not multiples of 4
  const TM = 4, TN = 4, WX = 8, WY = 8;
  const gx = Math.ceil(N / TN / WX), gy = Math.ceil(M / TM / WY);
  const code = `
@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read> B: array<f32>;
@group(0) @binding(2) var<storage, read_write> C: array<f32>;
${biasDecl}
@compute @workgroup_size(${WX}, ${WY})
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let col0 = gid.x * ${TN}u;
  let row0 = gid.y * ${TM}u;
  let z = gid.z;
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k = 0u; k < ${K}u; k++) {
    for (var r = 0u; r < ${TM}u; r++) {
      let row = min(row0 + r, ${M - 1}u);
      let av = A[z * ${M * K}u + row * ${K}u + k];
      for (var c = 0u; c < ${TN}u; c++) {
        let col = min(col0 + c, ${N - 1}u);
        acc[r][c] = fma(av, B[z * ${bStride}u + k * ${N}u + col], acc[r][c]);
      }
    }
  }
  for (var r = 0u; r < ${TM}u; r++) {
    for (var c = 0u; c < ${TN}u; c++) {
      let row = row0 + r;
      let col = col0 + c;
      if (row < ${M}u && col < ${N}u) {
        C[z * ${M * N}u + row * ${N}u + col] = acc[r][c]${bias ? " + Bias[col]" : ""};
      }
    }
  }
}`;
  const bufs = [a.buffer, b.buffer, out.buffer];
  if (bias) bufs.push(bias.buffer);
  dispatch(kernel("matmul_scalar", code), bufs, gx, gy, batch);
}

/**
 * A·B with optional transposes and a bias over the last axis. A: [..., M, K] (or [..., K, M] with
 * transA); B: [K, N] shared by every batch, or [..., K, N] with A's batch dims ([N, K] / [..., N, K]
 * with transB).
 */
export function matmul(a: Tensor, b: Tensor, opts: MatmulOptions = {}): Tensor {
  if (opts.transA || opts.transB) {
    // materialise the transposes; without autograd nothing keeps them past the dispatch
    const at = opts.transA ? transpose(a) : a;
    const bt = opts.transB ? transpose(b) : b;
    const r = matmul(at, bt, { bias: opts.bias });
    if (!needsGrad(a, b, opts.bias)) {
      if (at !== a) at.dispose();
      if (bt !== b) bt.dispose();
    }
    return r;
  }
  const bias = opts.bias ?? null;
  if (a.rank < 2 || b.rank < 2) {
    throw new Error(
      `matmul: operands need rank ≥ 2, got ${shapeStr(a.shape)}·${shapeStr(b.shape)}`,
    );
  }
  const M = a.shape[a.rank - 2], K = a.shape[a.rank - 1];
  const N = b.shape[b.rank - 1];
  const batchShape = a.shape.slice(0, -2);
  const batch = numel(batchShape);
  const bBatched = b.rank > 2;
  if (b.shape[b.rank - 2] !== K) {
    throw new Error(`matmul: inner sizes differ: ${shapeStr(a.shape)}·${shapeStr(b.shape)}`);
  }
  if (bBatched && numel(b.shape.slice(0, -2)) !== batch) {
    throw new Error(`matmul: batch sizes differ: ${shapeStr(a.shape)}·${shapeStr(b.shape)}`);
  }
  if (bias && (bias.size !== N)) {
    throw new Error(`matmul: bias ${shapeStr(bias.shape)} does not match ${N} columns`);
  }
  const out = empty([...batchShape, M, N]);
  if (!bBatched) {
    // fold the batch into M: one large product instead of many small ones
    matmulKernel(a, b, bias, out, 1, batch * M, K, N, false);
  } else matmulKernel(a, b, bias, out, batch, M, K, N, true);
  const inputs = bias ? [a, b, bias] : [a, b];
  return record(out, "matmul", inputs, (g) => {
    let ga: Tensor | null = null, gb: Tensor | null = null, gbias: Tensor | null = null;
    if (a.requiresGrad) {
      // dA = dC·Bᵀ
      ga = matmul(g, b, { transB: true });
    }
    if (b.requiresGrad) {
      if (bBatched) gb = matmul(a, g, { transA: true });
      else {
        // dB = Σ_batch Aᵀ·dC = A_flatᵀ·dC_flat
        const af = reshape(a, [batch * M, K]);
        const gf = reshape(g, [batch * M, N]);
        gb = matmul(af, gf, { transA: true });
        af.dispose();
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

/** x·Wᵀ + b as in torch.nn.Linear: x [..., in], weight [out, in], bias [out]. */
export function linear(x: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return matmul(x, weight, { transB: true, bias });
}
