// WGSL for the matrix products of matmul.ts, one generator per variant. Sizes come from a buffer
// (struct Dims, a small storage buffer), not WGSL constants, so one pipeline serves every shape: on a CPU adapter compiling
// a large register tile costs about a second, far more than running it.
//
// Every variant computes each output as one chain of fma over k = 0 … K−1 in order, then adds the
// bias: the variants differ in speed, never in results (bitwise), so which one an adapter picks
// cannot change a training run.
//
// Layouts, with op(A) [M, K] and op(B) [K, N] per batch:
//   NN  A [M, K], B [K, N]     (dX = dY·W)
//   NT  A [M, K], B [N, K]     (Y = X·Wᵀ, nn.Linear: both read along contiguous k)
//   TN  A [K, M], B [K, N]     (dW = dYᵀ·X)
//   TT  A [K, M], B [N, K]     (only the scalar, shared and subgroup variants)
// Bindings: 0 Dims, 1 A, 2 B, 3 C, then Bias, Pre and SA when used.

import { GELU_TANH_WGSL } from "./elementwise.ts";

export type Layout = "NN" | "NT" | "TN" | "TT";
export type Epilogue = "none" | "gelu" | "gelu_pre";

/** What one pipeline is specialised on (everything else is in the sizes buffer). */
export interface MatmulSpec {
  layout: Layout;
  /**
   * B is an f16 weight [N, K] (two values per u32, kernels/matmul.ts toHalf), read from row bOff/K
   * on with rows ldb = K halves long; NT only. Values widen to f32 and sum in f32.
   */
  half: boolean;
  bias: boolean;
  /** gelu: C = gelu(acc + bias); gelu_pre: the same, and Pre = acc + bias (for the backward) */
  epilogue: Epilogue;
  /**
   * TN only: also SA[m] = Σ_k A[k, m], the row sums of op(A), summed in order of k. For a weight
   * gradient dYᵀ·X that is the bias gradient Σ dY, computed from loads the product makes anyway.
   */
  sumA?: boolean;
}

/** How a variant tiles the output. */
export interface RegTiling {
  kind: "reg";
  /** output rows and columns per invocation */
  TM: number;
  TN: number;
  /**
   * "grid": 8×8 workgroups over (column tile, row tile); "rows": 64 invocations along the
   * columns of one row tile, so the rows an invocation reads are the same across its workgroup.
   */
  map: "grid" | "rows";
}

export interface SharedTiling {
  kind: "shared";
}

export interface ScalarTiling {
  kind: "scalar";
}

export interface SubgroupTiling {
  kind: "subgroup";
  /** output rows (the same for the whole workgroup) and columns (`wg` apart) per invocation */
  TM: number;
  TN: number;
  /** invocations per workgroup, along the columns */
  wg: number;
}

export type Tiling = RegTiling | SharedTiling | ScalarTiling | SubgroupTiling;

export const DIMS_WGSL =
  `struct Dims { M: u32, K: u32, N: u32, bStride: u32, ldb: u32, bOff: u32, p0: u32, p1: u32 }
@group(0) @binding(0) var<storage, read> dims: Dims;`;

/** Whether the vec4 register kernel of `spec` can run a problem of these sizes. */
export function regFits(spec: MatmulSpec, M: number, K: number, N: number, t: RegTiling): boolean {
  switch (spec.layout) {
    case "NN":
      return !spec.half && K % 4 === 0 && N % 4 === 0 && t.TN % 4 === 0;
    case "NT":
      return K % 4 === 0 && N % 4 === 0 && t.TN % 4 === 0;
    case "TN":
      return !spec.half && M % 4 === 0 && N % 4 === 0 && t.TM % 4 === 0 && t.TN % 4 === 0;
    case "TT":
      return false;
  }
}

function decls(spec: MatmulSpec, aT: string, bT: string, cT: string): string {
  let s = `${DIMS_WGSL}
@group(0) @binding(1) var<storage, read> A: array<${aT}>;
@group(0) @binding(2) var<storage, read> B: array<${bT}>;
@group(0) @binding(3) var<storage, read_write> C: array<${cT}>;
`;
  let b = 4;
  if (spec.bias) s += `@group(0) @binding(${b++}) var<storage, read> Bias: array<${cT}>;\n`;
  if (spec.epilogue === "gelu_pre") {
    s += `@group(0) @binding(${b++}) var<storage, read_write> Pre: array<${cT}>;\n`;
  }
  if (spec.sumA) s += `@group(0) @binding(${b++}) var<storage, read_write> SA: array<${aT}>;\n`;
  return (spec.epilogue !== "none" ? GELU_TANH_WGSL : "") + s;
}

/** Statements storing value `v` at C[idx], bias element `bi`: bias, pre-activation, GELU. */
function epilogue(spec: MatmulSpec, v: string, idx: string, bi: string, vec: boolean): string {
  const y = spec.bias ? `${v} + Bias[${bi}]` : v;
  const g = vec ? "gelu_t4" : "gelu_t";
  switch (spec.epilogue) {
    case "none":
      return `C[${idx}] = ${y};`;
    case "gelu":
      return `C[${idx}] = ${g}(${y});`;
    case "gelu_pre":
      return `{ let y = ${y}; Pre[${idx}] = y; C[${idx}] = ${g}(y); }`;
  }
}

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const lines = (n: number, f: (i: number) => string) => range(n).map(f).join("\n  ");
const lines2 = (n: number, m: number, f: (i: number, j: number) => string) =>
  range(n).flatMap((i) => range(m).map((j) => f(i, j))).join("\n  ");

/**
 * Stores a TM×TN tile of accumulators: value(r, c) at row `row(r)` and column `col(c)` of C
 * (`cols` wide), through the epilogue; rows and columns past `rows`/`cols` are skipped.
 */
function storeTile(
  spec: MatmulSpec,
  TM: number,
  TN: number,
  o: {
    row: (r: number) => string;
    col: (c: number) => string;
    rows: string;
    cols: string;
    value: (r: number, c: number) => string;
    vec: boolean;
  },
): string {
  return lines2(
    TM,
    TN,
    (r, c) =>
      `if (${o.row(r)} < ${o.rows} && ${o.col(c)} < ${o.cols}) { ${
        epilogue(
          spec,
          o.value(r, c),
          `cBase + (${o.row(r)}) * ${o.cols} + ${o.col(c)}`,
          o.col(c),
          o.vec,
        )
      } }`,
  );
}

/** Tile coordinates: `ct` (column tile) and `rt` (row tile), and the workgroup size. */
function tileCoords(t: RegTiling): { size: string; coords: string } {
  return t.map === "grid" ? { size: "8, 8", coords: "let ct = gid.x; let rt = gid.y;" } : {
    size: "64",
    coords: "let ct = wid.x * 64u + lid.x; let rt = wid.y;",
  };
}

/** Workgroups for a register tiling: [x, y] (z is the batch). */
export function regGrid(t: RegTiling, M: number, N: number): [number, number] {
  const ct = Math.ceil(N / t.TN), rt = Math.ceil(M / t.TM);
  return t.map === "grid" ? [Math.ceil(ct / 8), Math.ceil(rt / 8)] : [Math.ceil(ct / 64), rt];
}

const ENTRY_REG = (size: string) =>
  `@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {`;

/** The vec4 register-tiled kernel of one layout (regFits must hold). */
export function regWGSL(spec: MatmulSpec, t: RegTiling): string {
  const { TM, TN } = t;
  const TN4 = TN / 4;
  const { size, coords } = tileCoords(t);
  const v = "vec4<f32>";
  if (spec.layout === "NN") {
    // a row of A as vec4 along k; 4 rows of B (k … k+3) as vec4s along n; acc vec4 per (row, 4 cols)
    const bLoad = (kk: number, c: number) => `let b${kk}_${c} = B[kb + ${kk}u * N4 + bc${c}];`;
    return decls(spec, v, v, v) + `
${ENTRY_REG(size)}
  ${coords}
  let M = dims.M; let K4 = dims.K / 4u; let N4 = dims.N / 4u;
  let col4 = ct * ${TN4}u;
  let row0 = rt * ${TM}u;
  if (col4 >= N4 || row0 >= M) { return; }
  let z = gid.z;
  let aBase = z * M * K4;
  let bBase = z * (dims.bStride / 4u);
  let cBase = z * M * N4;
  ${lines(TM, (r) => `let ar${r} = aBase + min(row0 + ${r}u, M - 1u) * K4;`)}
  ${lines(TN4, (c) => `let bc${c} = min(col4 + ${c}u, N4 - 1u);`)}
  ${lines2(TM, TN4, (r, c) => `var acc${r}_${c} = ${v}(0.0);`)}
  for (var k4 = 0u; k4 < K4; k4++) {
    let kb = bBase + k4 * 4u * N4;
    ${lines(TM, (r) => `let a${r} = A[ar${r} + k4];`)}
    ${
      range(4).map((kk) =>
        lines(TN4, (c) => bLoad(kk, c)) + "\n    " +
        lines2(
          TM,
          TN4,
          (r, c) => `acc${r}_${c} = fma(${v}(a${r}[${kk}]), b${kk}_${c}, acc${r}_${c});`,
        )
      ).join("\n    ")
    }
  }
  ${
      storeTile(spec, TM, TN4, {
        row: (r) => `row0 + ${r}u`,
        col: (c) => `col4 + ${c}u`,
        rows: "M",
        cols: "N4",
        value: (r, c) => `acc${r}_${c}`,
        vec: true,
      })
    }
}`;
  }
  if (spec.layout === "NT") {
    // rows of A and of B as vec4s along k; one scalar accumulator per output, stored as vec4s. An
    // f16 B: 4 values of a row in one vec2<u32>, from row bOff/K on
    const bLoad = (c: number) =>
      spec.half
        ? `let w${c} = B[br${c} + k4]; let b${c} = ${v}(unpack2x16float(w${c}.x), unpack2x16float(w${c}.y));`
        : `let b${c} = B[br${c} + k4];`;
    return decls(spec, v, spec.half ? "vec2<u32>" : v, v) + `
${ENTRY_REG(size)}
  ${coords}
  let M = dims.M; let K4 = dims.K / 4u; let N = dims.N; let N4 = N / 4u;
  let col4 = ct * ${TN4}u;
  let row0 = rt * ${TM}u;
  if (col4 >= N4 || row0 >= M) { return; }
  let z = gid.z;
  let aBase = z * M * K4;
  let bBase = z * (dims.bStride / 4u) + dims.bOff / 4u;
  let cBase = z * M * N4;
  ${lines(TM, (r) => `let ar${r} = aBase + min(row0 + ${r}u, M - 1u) * K4;`)}
  ${lines(TN, (c) => `let br${c} = bBase + min(col4 * 4u + ${c}u, N - 1u) * K4;`)}
  ${lines2(TM, TN, (r, c) => `var acc${r}_${c} = 0.0;`)}
  for (var k4 = 0u; k4 < K4; k4++) {
    ${lines(TM, (r) => `let a${r} = A[ar${r} + k4];`)}
    ${lines(TN, bLoad)}
    ${
      ["x", "y", "z", "w"].map((e) =>
        lines2(TM, TN, (r, c) => `acc${r}_${c} = fma(a${r}.${e}, b${c}.${e}, acc${r}_${c});`)
      ).join("\n    ")
    }
  }
  ${
      storeTile(spec, TM, TN4, {
        row: (r) => `row0 + ${r}u`,
        col: (c) => `col4 + ${c}u`,
        rows: "M",
        cols: "N4",
        value: (r, c) =>
          `${v}(acc${r}_${4 * c}, acc${r}_${4 * c + 1}, acc${r}_${4 * c + 2}, acc${r}_${
            4 * c + 3
          })`,
        vec: true,
      })
    }
}`;
  }
  if (spec.layout === "TN") {
    // outer products: A[k, m … m+TM] and B[k, n … n+TN] as vec4s
    const TM4 = TM / 4;
    return decls(spec, v, v, v) + `
${ENTRY_REG(size)}
  ${coords}
  let M = dims.M; let M4 = M / 4u; let K = dims.K; let N4 = dims.N / 4u;
  let col4 = ct * ${TN4}u;
  let row4 = rt * ${TM4}u;
  if (col4 >= N4 || row4 >= M4) { return; }
  let z = gid.z;
  let aBase = z * K * M4;
  let bBase = z * (dims.bStride / 4u);
  let cBase = z * M * N4;
  ${lines(TM4, (r) => `let am${r} = min(row4 + ${r}u, M4 - 1u);`)}
  ${lines(TN4, (c) => `let bc${c} = min(col4 + ${c}u, N4 - 1u);`)}
  ${lines2(TM, TN4, (r, c) => `var acc${r}_${c} = ${v}(0.0);`)}
  ${spec.sumA ? lines(TM4, (r) => `var sa${r} = ${v}(0.0);`) : ""}
  for (var k = 0u; k < K; k++) {
    ${lines(TM4, (r) => `let a${r} = A[aBase + k * M4 + am${r}];`)}
    ${spec.sumA ? lines(TM4, (r) => `sa${r} += a${r};`) : ""}
    ${lines(TN4, (c) => `let b${c} = B[bBase + k * N4 + bc${c}];`)}
    ${
      lines2(TM, TN4, (r, c) =>
        `acc${r}_${c} = fma(${v}(a${r >> 2}[${r & 3}]), b${c}, acc${r}_${c});`)
    }
  }
  ${
      storeTile(spec, TM, TN4, {
        row: (r) => `row4 * 4u + ${r}u`,
        col: (c) => `col4 + ${c}u`,
        rows: "M",
        cols: "N4",
        value: (r, c) => `acc${r}_${c}`,
        vec: true,
      })
    }
  ${
      spec.sumA
        ? lines(TM4, (r) =>
          `if (ct == 0u && row4 + ${r}u < M4) { SA[z * M4 + row4 + ${r}u] = sa${r}; }`)
        : ""
    }
}`;
  }
  throw new Error(`matmul: no register kernel for layout ${spec.layout}`);
}

/** Scalar index expressions of A[m, k] and B[k, n] for a layout (bases aBase, bBase in scope). */
function scalarIndex(
  spec: MatmulSpec,
): { a: (m: string, k: string) => string; b: (k: string, n: string) => string } {
  const tA = spec.layout[0] === "T", tB = spec.layout[1] === "T";
  return {
    a: (m, k) => tA ? `aBase + (${k}) * M + (${m})` : `aBase + (${m}) * K + (${k})`,
    b: (k, n) => tB ? `bBase + (${n}) * K + (${k})` : `bBase + (${k}) * N + (${n})`,
  };
}

/** B[k, n] as an f32 expression: plain, or an f16 of an f16 weight's row n (ldb halves, from bOff). */
function bValue(spec: MatmulSpec, k: string, n: string): string {
  if (!spec.half) return `B[${scalarIndex(spec).b(k, n)}]`;
  const h = `((${n}) * dims.ldb + dims.bOff + (${k}))`;
  return `unpack2x16float(B[${h} / 2u])[${h} % 2u]`;
}

/** The scalar kernel: 4×4 outputs per invocation, any layout and any sizes. */
export function scalarWGSL(spec: MatmulSpec): string {
  const TM = 4, TN = 4;
  const idx = scalarIndex(spec);
  return decls(spec, "f32", spec.half ? "u32" : "f32", "f32") + `
@compute @workgroup_size(8, 8)
fn main(@builtin(global_invocation_id) gid: vec3<u32>) {
  let M = dims.M; let K = dims.K; let N = dims.N;
  let col0 = gid.x * ${TN}u;
  let row0 = gid.y * ${TM}u;
  if (col0 >= N || row0 >= M) { return; }
  let z = gid.z;
  let aBase = z * M * K;
  let bBase = z * dims.bStride;
  let cBase = z * M * N;
  ${lines(TM, (r) => `let r${r} = min(row0 + ${r}u, M - 1u);`)}
  ${lines(TN, (c) => `let c${c} = min(col0 + ${c}u, N - 1u);`)}
  ${lines2(TM, TN, (r, c) => `var acc${r}_${c} = 0.0;`)}
  ${spec.sumA ? lines(TM, (r) => `var sa${r} = 0.0;`) : ""}
  for (var k = 0u; k < K; k++) {
    ${lines(TM, (r) => `let a${r} = A[${idx.a(`r${r}`, "k")}];`)}
    ${spec.sumA ? lines(TM, (r) => `sa${r} += a${r};`) : ""}
    ${lines(TN, (c) => `let b${c} = ${bValue(spec, "k", `c${c}`)};`)}
    ${lines2(TM, TN, (r, c) => `acc${r}_${c} = fma(a${r}, b${c}, acc${r}_${c});`)}
  }
  ${
    storeTile(spec, TM, TN, {
      row: (r) => `row0 + ${r}u`,
      col: (c) => `col0 + ${c}u`,
      rows: "M",
      cols: "N",
      value: (r, c) => `acc${r}_${c}`,
      vec: false,
    })
  }
  ${
    spec.sumA
      ? lines(TM, (r) =>
        `if (gid.x == 0u && row0 + ${r}u < M) { SA[z * M + row0 + ${r}u] = sa${r}; }`)
      : ""
  }
}`;
}

/** Output tile of the shared kernel: 16×16 invocations, 4×4 outputs each. */
export const SHARED_TILE = 64;
const SK = 16;

/**
 * The workgroup-shared kernel (the classic GPU tiling): a 64×64 output tile per workgroup of
 * 16×16 invocations, 4×4 outputs each; 64×16 blocks of A and B staged in workgroup memory, each
 * loaded once per workgroup instead of once per invocation. Any layout and sizes (scalar loads,
 * zero-padded at the edges). On CPU adapters the barriers cost more than the loads they save.
 */
export function sharedWGSL(spec: MatmulSpec): string {
  const T = SHARED_TILE;
  const idx = scalarIndex(spec);
  return decls(spec, "f32", spec.half ? "u32" : "f32", "f32") + `
var<workgroup> As: array<f32, ${SK * T}>;
var<workgroup> Bs: array<f32, ${SK * T}>;
@compute @workgroup_size(16, 16)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let M = dims.M; let K = dims.K; let N = dims.N;
  let z = wid.z;
  let aBase = z * M * K;
  let bBase = z * dims.bStride;
  let cBase = z * M * N;
  let m0 = wid.y * ${T}u;
  let n0 = wid.x * ${T}u;
  let t = lid.y * 16u + lid.x;
  ${lines2(4, 4, (r, c) => `var acc${r}_${c} = 0.0;`)}
  ${spec.sumA ? lines(4, (r) => `var sa${r} = 0.0;`) : ""}
  for (var k0 = 0u; k0 < K; k0 += ${SK}u) {
    // 256 invocations stage 4 elements of each block; As[kk][m], Bs[kk][n]
    for (var e = 0u; e < 4u; e++) {
      let flat = e * 256u + t;
      let kk = flat / ${T}u;
      let j = flat % ${T}u;
      let k = k0 + kk;
      let m = m0 + j;
      let n = n0 + j;
      As[flat] = select(0.0, A[${idx.a("min(m, M - 1u)", "min(k, K - 1u)")}], m < M && k < K);
      Bs[flat] = select(0.0, ${bValue(spec, "min(k, K - 1u)", "min(n, N - 1u)")}, n < N && k < K);
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${SK}u; kk++) {
      ${lines(4, (r) => `let a${r} = As[kk * ${T}u + lid.y * 4u + ${r}u];`)}
      ${spec.sumA ? lines(4, (r) => `sa${r} += a${r};`) : ""}
      ${lines(4, (c) => `let b${c} = Bs[kk * ${T}u + lid.x * 4u + ${c}u];`)}
      ${lines2(4, 4, (r, c) => `acc${r}_${c} = fma(a${r}, b${c}, acc${r}_${c});`)}
    }
    workgroupBarrier();
  }
  ${
    lines2(4, 4, (r, c) =>
      `{ let row = m0 + lid.y * 4u + ${r}u; let col = n0 + lid.x * 4u + ${c}u;
  if (row < M && col < N) { ${
        epilogue(spec, `acc${r}_${c}`, "cBase + row * N + col", "col", false)
      } } }`)
  }
  ${
    spec.sumA
      ? lines(4, (r) =>
        `if (wid.x == 0u && lid.x == 0u && m0 + lid.y * 4u + ${r}u < M) { SA[z * M + m0 + lid.y * 4u + ${r}u] = sa${r}; }`)
      : ""
  }
}`;
}

/** Workgroups for the subgroup kernel: [x, y] (z is the batch). */
export function subgroupGrid(t: SubgroupTiling, M: number, N: number): [number, number] {
  return [Math.ceil(N / (t.wg * t.TN)), Math.ceil(M / t.TM)];
}

/**
 * The subgroup kernel (devices with the `subgroups` feature). C [batch, M, N] = op(A)·op(B); a
 * workgroup per TM rows × wg·TN columns × batch.
 *
 * TM×TN outputs per invocation, the TM rows shared by the whole workgroup, so by every subgroup in
 * it however the adapter groups invocations. A's values come through subgroupShuffle instead of
 * workgroup memory: for S values of k (S the subgroup size) each lane loads its rows at one k,
 * then every lane takes them from lane 0, 1, … in turn, so an invocation loads A once per S steps
 * of k and needs no barrier. Any layout and sizes (scalar loads, clamped at the edges).
 *
 * The shuffles run in uniform control flow (WGSL requires it): the loop bounds depend only on the
 * sizes and S, out-of-range rows and columns are clamped on load and skipped only at the store. A
 * subgroup with lanes missing (a workgroup smaller than, or not a multiple of, S) cannot hand out
 * every k, so its invocations load A themselves; the values, and the sums, are the same.
 */
export function subgroupWGSL(spec: MatmulSpec, t: SubgroupTiling): string {
  const { TM, TN, wg } = t;
  const idx = scalarIndex(spec);
  return "enable subgroups;\n" + decls(spec, "f32", spec.half ? "u32" : "f32", "f32") + `
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(subgroup_invocation_id) lane: u32, @builtin(subgroup_size) S: u32) {
  let M = dims.M; let K = dims.K; let N = dims.N;
  let z = wid.z;
  let aBase = z * M * K;
  let bBase = z * dims.bStride;
  let cBase = z * M * N;
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${wg * TN}u + lid.x;
  ${lines(TM, (r) => `let r${r} = min(row0 + ${r}u, M - 1u);`)}
  ${lines(TN, (c) => `let c${c} = min(col0 + ${c * wg}u, N - 1u);`)}
  let partial = subgroupAdd(1u) != S;
  ${lines2(TM, TN, (r, c) => `var acc${r}_${c} = 0.0;`)}
  ${spec.sumA ? lines(TM, (r) => `var sa${r} = 0.0;`) : ""}
  for (var k0 = 0u; k0 < K; k0 += S) {
    let kl = min(k0 + lane, K - 1u);
    ${lines(TM, (r) => `let l${r} = A[${idx.a(`r${r}`, "kl")}];`)}
    let kn = min(S, K - k0);
    for (var j = 0u; j < kn; j++) {
      let k = k0 + j;
      ${lines(TM, (r) => `var a${r} = subgroupShuffle(l${r}, j);`)}
      if (partial) {
        ${lines(TM, (r) => `a${r} = A[${idx.a(`r${r}`, "k")}];`)}
      }
      ${spec.sumA ? lines(TM, (r) => `sa${r} += a${r};`) : ""}
      ${lines(TN, (c) => `let b${c} = ${bValue(spec, "k", `c${c}`)};`)}
      ${lines2(TM, TN, (r, c) => `acc${r}_${c} = fma(a${r}, b${c}, acc${r}_${c});`)}
    }
  }
  ${
    storeTile(spec, TM, TN, {
      row: (r) => `row0 + ${r}u`,
      col: (c) => `col0 + ${c * wg}u`,
      rows: "M",
      cols: "N",
      value: (r, c) => `acc${r}_${c}`,
      vec: false,
    })
  }
  ${
    spec.sumA
      ? lines(TM, (r) =>
        `if (wid.x == 0u && lid.x == 0u && row0 + ${r}u < M) { SA[z * M + row0 + ${r}u] = sa${r}; }`)
      : ""
  }
}`;
}
