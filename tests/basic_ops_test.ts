import {
  add,
  div,
  geluErf,
  geluTanh,
  matmul,
  mean,
  mul,
  scale,
  silu,
  sub,
  sum,
  tensor,
} from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

function bcast(
  a: Float64Array,
  as: number[],
  b: Float64Array,
  bs: number[],
  f: (x: number, y: number) => number,
  os: number[],
) {
  const n = os.reduce((p, q) => p * q, 1);
  const out = new Float64Array(n);
  const idx = (shape: number[], i: number) => {
    const pad = [...Array(os.length - shape.length).fill(1), ...shape];
    let off = 0, mulS = 1, rem = i;
    const coords: number[] = [];
    for (let k = os.length - 1; k >= 0; k--) {
      coords[k] = rem % os[k];
      rem = Math.floor(rem / os[k]);
    }
    for (let k = os.length - 1; k >= 0; k--) {
      if (pad[k] !== 1) off += coords[k] * mulS;
      mulS *= pad[k];
    }
    return off;
  };
  for (let i = 0; i < n; i++) out[i] = f(a[idx(as, i)], b[idx(bs, i)]);
  return out;
}

for (
  const [name, op, f] of [
    ["add", add, (x: number, y: number) => x + y],
    ["sub", sub, (x: number, y: number) => x - y],
    ["mul", mul, (x: number, y: number) => x * y],
  ] as const
) {
  Deno.test(`${name} broadcasts over leading and middle axes`, async () => {
    for (
      const [as, bs, os] of [[[2, 3, 4], [4], [2, 3, 4]], [[2, 3, 4], [2, 1, 4], [2, 3, 4]], [
        [3, 1],
        [1, 5],
        [3, 5],
      ]]
    ) {
      await check({
        name,
        inputs: [{ shape: as }, { shape: bs }],
        gpu: ([a, b]) => op(a, b),
        ref: ([a, b]) => bcast(a, as, b, bs, f, os),
      });
    }
  });
}

Deno.test("div forward and backward", async () => {
  const b = new Float32Array(6).map((_, i) => 1.5 + i * 0.1);
  await check({
    name: "div",
    inputs: [{ shape: [2, 6] }, { shape: [6], data: b }],
    gpu: ([x, y]) => div(x, y),
    ref: ([x, y]) => x.map((v, i) => v / y[i % 6]),
  });
});

const gelu = (x: number) =>
  0.5 * x * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (x + 0.044715 * x ** 3)));
function erf(x: number): number {
  // series / continued fraction in f64 (reference only)
  const t = Math.abs(x);
  if (t < 3) {
    let s = 0, term = t;
    for (let n = 0; n < 200; n++) {
      s += term / (2 * n + 1);
      term *= -t * t / (n + 1);
    }
    return Math.sign(x) * 2 / Math.sqrt(Math.PI) * s;
  }
  return Math.sign(x) * (1 - Math.exp(-t * t) / (t * Math.sqrt(Math.PI)) * (1 - 1 / (2 * t * t)));
}
Deno.test("activations: tanh-GELU, erf-GELU, SiLU", async () => {
  const x = new Float32Array(40).map((_, i) => (i - 20) / 4);
  await check({
    name: "gelu_tanh",
    inputs: [{ shape: [40], data: x }],
    gpu: ([a]) => geluTanh(a),
    ref: ([a]) => a.map(gelu),
  });
  await check({
    name: "gelu_erf",
    inputs: [{ shape: [40], data: x }],
    gpu: ([a]) => geluErf(a),
    ref: ([a]) => a.map((v) => 0.5 * v * (1 + erf(v / Math.SQRT2))),
  });
  await check({
    name: "silu",
    inputs: [{ shape: [40], data: x }],
    gpu: ([a]) => silu(a),
    ref: ([a]) => a.map((v) => v / (1 + Math.exp(-v))),
  });
  await check({
    name: "scale",
    inputs: [{ shape: [7] }],
    gpu: ([a]) => scale(a, 2.5, 1),
    ref: ([a]) => a.map((v) => 2.5 * v + 1),
  });
});

Deno.test("sum and mean over axes", async () => {
  const s = [2, 3, 4];
  await check({
    name: "sum(1)",
    inputs: [{ shape: s }],
    gpu: ([x]) => sum(x, 1),
    ref: ([x]) => {
      const o = new Float64Array(8);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 3; j++) {
          for (let k = 0; k < 4; k++) o[i * 4 + k] += x[i * 12 + j * 4 + k];
        }
      }
      return o;
    },
  });
  await check({
    name: "mean(0,2)",
    inputs: [{ shape: s }],
    gpu: ([x]) => mean(x, [0, 2]),
    ref: ([x]) => {
      const o = new Float64Array(3);
      for (let i = 0; i < 2; i++) {
        for (let j = 0; j < 3; j++) for (let k = 0; k < 4; k++) o[j] += x[i * 12 + j * 4 + k] / 8;
      }
      return o;
    },
  });
  await check({
    name: "sum all",
    inputs: [{ shape: s }],
    gpu: ([x]) => sum(x),
    ref: ([x]) => Float64Array.of(x.reduce((a, b) => a + b, 0)),
  });
});

function refMatmul(
  a: Float64Array,
  b: Float64Array,
  batch: number,
  M: number,
  K: number,
  N: number,
  tA: boolean,
  tB: boolean,
  bBatched: boolean,
  bias?: Float64Array,
) {
  const o = new Float64Array(batch * M * N);
  for (let z = 0; z < batch; z++) {
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = bias ? bias[j] : 0;
        for (let k = 0; k < K; k++) {
          const av = tA ? a[z * M * K + k * M + i] : a[z * M * K + i * K + k];
          const bo = bBatched ? z * K * N : 0;
          const bv = tB ? b[bo + j * K + k] : b[bo + k * N + j];
          s += av * bv;
        }
        o[z * M * N + i * N + j] = s;
      }
    }
  }
  return o;
}

Deno.test("matmul: batched, transposed operands, fused bias, vec4 and scalar paths", async () => {
  for (
    const [batch, M, K, N] of [[1, 5, 7, 3], [2, 8, 12, 16], [3, 9, 8, 12], [1, 20, 16, 8], [
      2,
      36,
      8,
      20,
    ]]
  ) {
    for (const tA of [false, true]) {
      for (const tB of [false, true]) {
        for (const bBatched of [false, true]) {
          const ashape = tA ? [batch, K, M] : [batch, M, K];
          const bshape0 = tB ? [N, K] : [K, N];
          const bshape = bBatched ? [batch, ...bshape0] : bshape0;
          await check({
            name: `matmul b${batch} ${M}x${K}x${N} tA=${tA} tB=${tB} bb=${bBatched}`,
            inputs: [{ shape: ashape }, { shape: bshape }, { shape: [N] }],
            gpu: ([a, b, c]) => matmul(a, b, { transA: tA, transB: tB, bias: c }),
            ref: ([a, b, c]) => refMatmul(a, b, batch, M, K, N, tA, tB, bBatched, c),
            gradTol: 1e-4,
          });
        }
      }
    }
  }
});

Deno.test("matmul with a tanh-GELU: fused in the store without gradients, recorded apart with", async () => {
  // vec4 NN (16-wide tiles), vec4 NN with a 4-wide tile, the scalar path, and TN
  for (
    const [M, K, N, tA] of [[40, 32, 64, false], [9, 8, 12, false], [5, 7, 3, false], [
      12,
      8,
      16,
      true,
    ]] as const
  ) {
    const a = rand(M * K, 3, 2), b = rand(K * N, 4), c = rand(N, 5);
    const ref = refMatmul(
      Float64Array.from(a),
      Float64Array.from(b),
      1,
      M,
      K,
      N,
      tA,
      false,
      false,
      Float64Array.from(c),
    ).map(gelu);
    const at = tensor(a, tA ? [K, M] : [M, K]), bt = tensor(b, [K, N]), ct = tensor(c, [N]);
    const y = matmul(at, bt, { transA: tA, bias: ct, activation: "gelu_tanh" });
    assertClose(await y.read(), ref, 1e-5, `fused ${M}x${K}x${N} tA=${tA}`);
    for (const t of [at, bt, ct, y]) t.dispose();
    await check({
      name: `matmul+gelu ${M}x${K}x${N} tA=${tA} (with gradients)`,
      inputs: [{ shape: tA ? [K, M] : [M, K] }, { shape: [K, N] }, { shape: [N] }],
      gpu: ([x, w, bias]) => matmul(x, w, { transA: tA, bias, activation: "gelu_tanh" }),
      ref: ([x, w, bias]) => refMatmul(x, w, 1, M, K, N, tA, false, false, bias).map(gelu),
      gradTol: 1e-4,
    });
  }
});

Deno.test("split and chunk: one op, gradients of unused pieces are zero", async () => {
  const { split, chunk } = await import("../kernels/mod.ts");
  const s = [2, 5, 3];
  const ref = (x: Float64Array, lo: number, len: number, use: boolean) => {
    const o = new Float64Array(2 * len * 3);
    for (let i = 0; i < 2; i++) {
      for (let j = 0; j < len; j++) {
        for (let k = 0; k < 3; k++) {
          o[(i * len + j) * 3 + k] = use ? x[(i * 5 + lo + j) * 3 + k] : 0;
        }
      }
    }
    return o;
  };
  // pieces 0 and 2 weighted differently, piece 1 unused: out = concat(p0·2, p2) along axis 1
  const { concat, scale } = await import("../kernels/mod.ts");
  await check({
    name: "split",
    inputs: [{ shape: s }],
    gpu: ([x]) => {
      const [p0, , p2] = split(x, [1, 2, 2], 1);
      return concat([scale(p0, 2), p2], 1);
    },
    ref: ([x]) => {
      const a = ref(x, 0, 1, true).map((v) => 2 * v), c = ref(x, 3, 2, true);
      const o = new Float64Array(2 * 3 * 3);
      for (let i = 0; i < 2; i++) {
        o.set(a.subarray(i * 3, i * 3 + 3), i * 9);
        o.set(c.subarray(i * 6, i * 6 + 6), i * 9 + 3);
      }
      return o;
    },
  });
  await check({
    name: "chunk",
    inputs: [{ shape: [4, 6] }],
    gpu: ([x]) => {
      const [p, q] = chunk(x, 2, 1);
      return concat([q, p], 0);
    },
    ref: ([x]) => {
      const o = new Float64Array(24);
      for (let i = 0; i < 4; i++) {
        for (let j = 0; j < 3; j++) {
          o[i * 3 + j] = x[i * 6 + 3 + j];
          o[12 + i * 3 + j] = x[i * 6 + j];
        }
      }
      return o;
    },
  });
});

Deno.test("sum over a long axis (chunked reduction) matches the reference", async () => {
  const { sum } = await import("../kernels/mod.ts");
  const rows = 1500, cols = 6;
  await check({
    name: "sum(0) long",
    inputs: [{ shape: [rows, cols] }],
    gpu: ([x]) => sum(x, 0),
    ref: ([x]) => {
      const o = new Float64Array(cols);
      for (let i = 0; i < rows; i++) for (let j = 0; j < cols; j++) o[j] += x[i * cols + j];
      return o;
    },
    fwdTol: 1e-5,
  });
});
