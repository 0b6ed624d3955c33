// Every matmul variant this device can run (register tiles, workgroup-shared tiles, subgroup
// shuffles where the device has subgroups, scalar) forced in turn on the same inputs: forward
// against the plain-TypeScript reference, and forward and gradients equal bit for bit across
// variants (each sums over k in the same order), for every layout, odd and aligned sizes, bias,
// the fused GELU with its saved pre-activation, and packed f16 weights (tests/matmul_cases.ts; the
// browser test runs the same checks on Chromium's adapter, which has subgroups). Without the
// subgroups feature the subgroup variant is no candidate: forcing it runs the default.

import {
  chosenVariants,
  device,
  deviceInfo,
  linear,
  matmul,
  MATMUL_VARIANTS,
  matmulVariantSupported,
  rememberedChoice,
  resetTuningCache,
  type Tensor,
  tensor,
  warmUp,
  withKernelVariant,
} from "../kernels/mod.ts";
import { assertClose, rand, ready, refMatmul } from "./helpers.ts";
import { check } from "./gradcheck.ts";
import { checkHalf, checkLarge, checkLayouts, type Ran, same } from "./matmul_cases.ts";

await ready;

const VARIANTS = Object.keys(MATMUL_VARIANTS).filter(matmulVariantSupported);

/** The variants that can run any shape ran themselves when forced, not a fallback. */
function ranThemselves(ran: Ran): void {
  for (const v of ["shared", "scalar", "subgroup"]) {
    const got = ran.get(v);
    if (got && (got.size !== 1 || !got.has(v))) {
      throw new Error(`forced '${v}', the products ran ${[...got].join(", ")}`);
    }
  }
}

Deno.test("matmul variants: every layout and size, the same bits as each other and the reference", async () => {
  ranThemselves(await checkLayouts(VARIANTS));
});

Deno.test("matmul variants: large products across several workgroups and tiles", async () => {
  ranThemselves(await checkLarge(VARIANTS));
});

Deno.test("matmul variants: packed f16 weights give the f32 product exactly", async () => {
  ranThemselves(await checkHalf(VARIANTS));
});

Deno.test({
  name:
    "matmul subgroup variant: no candidate without the device feature; forced, the default runs",
  ignore: deviceInfo().subgroups,
  fn: async () => {
    if (matmulVariantSupported("subgroup")) throw new Error("supported without subgroups");
    // timing tries every candidate and remembers each one's time: subgroup must not be among them
    const dir = await Deno.makeTempDir();
    const prev = [Deno.env.get("PIXART_CACHE_DIR"), Deno.env.get("PIXART_TUNE")];
    Deno.env.set("PIXART_CACHE_DIR", dir);
    Deno.env.set("PIXART_TUNE", "always");
    resetTuningCache();
    const [M, K, N] = [5, 7, 3];
    const a = tensor(rand(M * K, 11), [M, K]), b = tensor(rand(K * N, 12), [K, N]);
    const key = `NN 1x${M}x${K}x${N}`;
    try {
      await warmUp(() => matmul(a, b));
      const timed = Object.keys(rememberedChoice("matmul", key)?.ms ?? {}).sort();
      if (timed.join() !== "scalar,shared") throw new Error(`timed candidates: ${timed}`);
    } finally {
      for (const [k, v] of [["PIXART_CACHE_DIR", prev[0]], ["PIXART_TUNE", prev[1]]] as const) {
        if (v === undefined) Deno.env.delete(k);
        else Deno.env.set(k, v);
      }
      resetTuningCache();
      await Deno.remove(dir, { recursive: true });
    }
    const y = withKernelVariant("matmul", "subgroup", () => matmul(a, b));
    const ranAs = chosenVariants().get(`matmul:${key}`);
    const y0 = withKernelVariant("matmul", "scalar", () => matmul(a, b));
    if (ranAs === "subgroup" || !ranAs) throw new Error(`forced subgroup ran as ${ranAs}`);
    const got = await y.read();
    same(got, await y0.read(), `forced subgroup (ran ${ranAs})`);
    assertClose(
      got,
      refMatmul(await a.read(), await b.read(), 1, M, K, N, false, false, null, false),
      1e-5,
      "forced subgroup",
    );
    for (const t of [a, b, y, y0]) t.dispose();
  },
});

Deno.test("matmul with a fused GELU: gradients against finite differences", async () => {
  const [M, K, N] = [6, 8, 12];
  const gelu = (s: number) =>
    0.5 * s * (1 + Math.tanh(0.7978845608028654 * (s + 0.044715 * s ** 3)));
  await check({
    name: "linear + GELU (pre-activation saved)",
    inputs: [{ shape: [M, K] }, { shape: [N, K] }, { shape: [N] }],
    gpu: ([x, w, bias]: Tensor[]) => linear(x, w, bias, "gelu_tanh"),
    ref: ([x, w, bias]) => {
      const o = new Float64Array(M * N);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = bias[j];
          for (let k = 0; k < K; k++) s += x[i * K + k] * w[j * K + k];
          o[i * N + j] = gelu(s);
        }
      }
      return o;
    },
  });
});

Deno.test("matmul: a product taller than a variant's workgroup grid runs on a variant that fits it", async () => {
  // 32-row tiles would need 65,536 workgroups down the rows, past WebGPU's 65,535 a dimension
  const max = device().limits.maxComputeWorkgroupsPerDimension;
  const [M, K, N] = [32 * max + 1, 3, 5];
  const av = rand(M * K, 21), bv = rand(K * N, 22);
  const a = tensor(av, [M, K]), b = tensor(bv, [K, N]);
  const y = matmul(a, b);
  const ranAs = chosenVariants().get(`matmul:NN 1x${M}x${K}x${N}`);
  if (!ranAs || ranAs === "scalar") throw new Error(`ran as ${ranAs}`);
  assertClose(
    await y.read(),
    refMatmul(av, bv, 1, M, K, N, false, false, null, false),
    1e-5,
    "tall",
  );
  for (const t of [a, b, y]) t.dispose();
});
