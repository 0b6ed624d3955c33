// Every matmul variant (register tiles, workgroup-shared tiles, scalar) forced in turn on the
// same inputs: forward against the plain-TypeScript reference, and forward and gradients equal
// bit for bit across variants (each sums over k in the same order), for every layout, odd and
// aligned sizes, bias, the fused GELU with its saved pre-activation, and packed f16 weights.

import {
  backward,
  linear,
  matmul,
  MATMUL_VARIANTS,
  type Tensor,
  tensor,
  tidy,
  useHalfWeight,
  withKernelVariant,
} from "../kernels/mod.ts";
import { roundToHalf } from "../io/safetensors.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

const VARIANTS = Object.keys(MATMUL_VARIANTS);

function refMatmul(
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

function same(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: lengths ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      throw new Error(
        `${what}: element ${i} is ${a[i]}, not ${b[i]} (variants must agree exactly)`,
      );
    }
  }
}

/** Forward and gradients of one product under a forced variant. */
async function runVariant(
  variant: string,
  shapes: { a: number[]; b: number[]; n: number },
  data: { a: Float32Array; b: Float32Array; bias: Float32Array; g: Float32Array },
  opts: { tA: boolean; tB: boolean; bias: boolean; gelu: boolean },
): Promise<Float32Array[]> {
  const a = tensor(data.a, shapes.a), b = tensor(data.b, shapes.b);
  const bias = opts.bias ? tensor(data.bias, [shapes.n]) : null;
  for (const t of [a, b, bias]) if (t) t.requiresGrad = true;
  const y = withKernelVariant("matmul", variant, () =>
    tidy(() => {
      const y = matmul(a, b, {
        transA: opts.tA,
        transB: opts.tB,
        bias,
        activation: opts.gelu ? "gelu_tanh" : null,
      });
      backward(y, tensor(data.g, y.shape));
      return y;
    }));
  const out = [await y.read()];
  for (const t of [a, b, bias]) {
    if (!t) continue;
    out.push(await t.grad!.read());
    t.grad!.dispose();
    t.dispose();
  }
  y.dispose();
  return out;
}

Deno.test("matmul variants: every layout and size, the same bits as each other and the reference", async () => {
  const cases: [number, number, number, number][] = [
    [1, 5, 7, 3], // odd: scalar and shared only
    [2, 8, 12, 16],
    [1, 37, 16, 24], // M not a multiple of any tile
    [1, 64, 32, 72], // N not a multiple of 16 or 64
    [3, 12, 8, 20],
  ];
  for (const [batch, M, K, N] of cases) {
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]]) {
      for (const [bias, gelu] of [[false, false], [true, false], [true, true]]) {
        const shapes = {
          a: tA ? [batch, K, M] : [batch, M, K],
          b: tB ? [N, K] : [K, N],
          n: N,
        };
        const data = {
          a: rand(batch * M * K, 1),
          b: rand(K * N, 2),
          bias: rand(N, 3),
          g: rand(batch * M * N, 4),
        };
        const what = `b${batch} ${M}x${K}x${N} tA=${tA} tB=${tB} bias=${bias} gelu=${gelu}`;
        const ref = refMatmul(
          data.a,
          data.b,
          batch,
          M,
          K,
          N,
          tA,
          tB,
          bias ? data.bias : null,
          gelu,
        );
        let first: Float32Array[] | null = null;
        for (const v of VARIANTS) {
          const got = await runVariant(v, shapes, data, { tA, tB, bias, gelu });
          assertClose(got[0], ref, 1e-5, `${what} ${v} forward`);
          if (!first) first = got;
          else got.forEach((x, i) => same(x, first![i], `${what} ${v} output ${i}`));
        }
      }
    }
  }
});

Deno.test("matmul variants: large products across several workgroups and tiles", async () => {
  for (
    const [M, K, N, tA, tB] of [[130, 68, 136, false, true], [136, 130, 68, true, false]] as const
  ) {
    const a = rand(M * K, 5), b = rand(K * N, 6), bias = rand(N, 7);
    const ref = refMatmul(a, b, 1, M, K, N, tA, tB, bias, false);
    let first: Float32Array | null = null;
    for (const v of VARIANTS) {
      const at = tensor(a, tA ? [K, M] : [M, K]), bt = tensor(b, tB ? [N, K] : [K, N]);
      const ct = tensor(bias, [N]);
      const y = withKernelVariant(
        "matmul",
        v,
        () => matmul(at, bt, { transA: tA, transB: tB, bias: ct }),
      );
      const got = await y.read();
      assertClose(got, ref, 1e-5, `${M}x${K}x${N} ${v}`);
      if (!first) first = got;
      else same(got, first, `${M}x${K}x${N} ${v}`);
      for (const t of [at, bt, ct, y]) t.dispose();
    }
  }
});

Deno.test("matmul variants: packed f16 weights give the f32 product exactly", async () => {
  for (const [M, K, N] of [[5, 12, 24], [37, 16, 32], [70, 64, 80]]) {
    const x = tensor(rand(M * K, 8), [M, K]);
    const w = tensor(rand(N * K, 9).map(roundToHalf), [N, K]);
    const b = tensor(rand(N, 10), [N]);
    const want = await (async () => {
      const y = linear(x, w, b, "gelu_tanh");
      const r = await y.read();
      y.dispose();
      return r;
    })();
    const h = useHalfWeight(w);
    for (const v of VARIANTS) {
      const y = withKernelVariant("matmul", v, () => linear(x, w, b, "gelu_tanh"));
      same(await y.read(), want, `packed ${M}x${K}x${N} ${v}`);
      y.dispose();
    }
    h.dispose();
    for (const t of [x, w, b]) t.dispose();
  }
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
