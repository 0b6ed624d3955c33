// The page script of the browser test's matmul check (tests/browser_test.ts bundles it with
// `deno bundle --platform browser`, as tasks/build_web.ts bundles web/app.ts): on the browser's
// adapter, which has the `subgroups` feature Deno's lavapipe lacks, the variant checks of
// tests/matmul_cases.ts for the subgroup variant against the scalar one; the subgroup kernel at
// workgroup sizes that leave subgroups partly empty (the fallback no full-subgroup adapter runs);
// and each variant's time on one product. `runMatmulChecks()` resolves to a report, or rejects with
// the first difference.

import {
  deviceInfo,
  empty,
  initDevice,
  matmul,
  MATMUL_VARIANTS,
  matmulVariantSupported,
  sync,
  tensor,
  withKernelVariant,
} from "../kernels/mod.ts";
import { dispatch, kernel, sizeWords } from "../kernels/runtime.ts";
import { type MatmulSpec, subgroupGrid, subgroupWGSL } from "../kernels/matmul_wgsl.ts";
import { rand } from "./helpers.ts";
import { type Case, checkHalf, checkLarge, checkLayouts, type Ran, same } from "./matmul_cases.ts";

export interface MatmulReport {
  adapter: string;
  subgroups: boolean;
  /** what `subgroup_size` reads in a compute shader here */
  subgroupSize: number;
  /** forced variant → the variants its products ran */
  ran: Record<string, string[]>;
  /** workgroup sizes the partly-empty-subgroup check ran */
  partial: number[];
  /** ms per product of the timed shape, per variant (after a run that compiles) */
  ms: Record<string, number>;
  timed: string;
}

/** The subgroup size compute shaders see (0 without the feature). */
async function subgroupSize(): Promise<number> {
  if (!deviceInfo().subgroups) return 0;
  const out = empty([1], "i32");
  dispatch(
    kernel(
      "subgroup_size",
      `enable subgroups;
@group(0) @binding(0) var<storage, read_write> O: array<u32>;
@compute @workgroup_size(1)
fn main(@builtin(subgroup_size) s: u32) { O[0] = s; }`,
    ),
    [out],
    1,
  );
  const s = (await out.readInt())[0];
  out.dispose();
  return s;
}

/**
 * The subgroup kernel with `wg` invocations per workgroup, where `wg` is below or not a multiple of
 * the subgroup size, against the scalar variant's product, bit for bit (NN and TN, bias, GELU).
 */
async function checkPartialSubgroups(wg: number): Promise<void> {
  const [M, K, N] = [7, 13, 11];
  for (const layout of ["NN", "TN"] as const) {
    const spec: MatmulSpec = { layout, half: false, bias: true, epilogue: "gelu" };
    const tA = layout === "TN";
    const a = tensor(rand(M * K, 21), tA ? [K, M] : [M, K]);
    const b = tensor(rand(K * N, 22), [K, N]), bias = tensor(rand(N, 23), [N]);
    const c = empty([M, N]);
    const t = { kind: "subgroup", TM: 3, TN: 2, wg } as const;
    const [gx, gy] = subgroupGrid(t, M, N);
    dispatch(
      kernel(`matmul_partial_${layout}_${wg}`, subgroupWGSL(spec, t)),
      [sizeWords([M, K, N, 0, 0, 0, 0, 0]), a, b, c, bias],
      gx,
      gy,
    );
    const want = withKernelVariant(
      "matmul",
      "scalar",
      () => matmul(a, b, { transA: tA, bias, activation: "gelu_tanh" }),
    );
    same(await c.read(), await want.read(), `${layout} ${M}x${K}x${N}, workgroups of ${wg}`);
    for (const x of [a, b, bias, c, want]) x.dispose();
  }
}

/** ms per product of each variant on one shape: the median of 3 after a run that compiles. */
async function timeVariants(M: number, K: number, N: number): Promise<Record<string, number>> {
  const a = tensor(rand(M * K, 31), [M, K]), b = tensor(rand(K * N, 32), [K, N]);
  const ms: Record<string, number> = {};
  for (const v of Object.keys(MATMUL_VARIANTS).filter(matmulVariantSupported)) {
    const t: number[] = [];
    for (let r = 0; r < 4; r++) {
      const t0 = performance.now();
      withKernelVariant("matmul", v, () => matmul(a, b)).dispose();
      await sync();
      if (r) t.push(performance.now() - t0);
    }
    ms[v] = Math.round(t.sort((x, y) => x - y)[1] * 100) / 100;
  }
  a.dispose();
  b.dispose();
  return ms;
}

async function runMatmulChecks(): Promise<MatmulReport> {
  await initDevice();
  const info = deviceInfo();
  const ran: Ran = new Map();
  const partial: number[] = [];
  if (info.subgroups) {
    const variants = ["scalar", "subgroup"];
    // the cases past one 8-row, 256-column tile, and past several chunks of k
    const cases: Case[] = [[1, 5, 7, 3], [2, 8, 12, 16], [1, 37, 41, 24], [1, 20, 70, 300]];
    const runs = [
      await checkLayouts(variants, cases),
      await checkLarge(variants),
      await checkHalf(variants),
    ];
    for (const r of runs) {
      for (const [k, s] of r) ran.set(k, new Set([...ran.get(k) ?? [], ...s]));
    }
    for (const wg of [3, 6]) {
      await checkPartialSubgroups(wg);
      partial.push(wg);
    }
  }
  const [M, K, N] = [256, 256, 256];
  return {
    adapter: info.adapter,
    subgroups: info.subgroups,
    subgroupSize: await subgroupSize(),
    ran: Object.fromEntries([...ran].map(([k, s]) => [k, [...s].sort()])),
    partial,
    ms: await timeVariants(M, K, N),
    timed: `NN ${M}x${K}x${N}`,
  };
}

(globalThis as { runMatmulChecks?: () => Promise<MatmulReport> }).runMatmulChecks = runMatmulChecks;
