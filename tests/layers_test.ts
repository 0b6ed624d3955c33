import {
  dropPath,
  embedding,
  intTensor,
  layerNorm,
  layerNormModulate,
  mseLoss,
  noGrad,
  patchify,
  tensor,
  tidy,
  unpatchify,
} from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

/** Plain LN over rows of D (biased variance), then y = xh·mul(row, d) + add(row, d). */
function refNorm(
  x: Float64Array,
  D: number,
  eps: number,
  mul: (row: number, d: number) => number,
  add: (row: number, d: number) => number,
): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / D; r++) {
    let m = 0;
    for (let d = 0; d < D; d++) m += x[r * D + d];
    m /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[r * D + d] - m) ** 2;
    v /= D;
    const rs = 1 / Math.sqrt(v + eps);
    for (let d = 0; d < D; d++) out[r * D + d] = (x[r * D + d] - m) * rs * mul(r, d) + add(r, d);
  }
  return out;
}

Deno.test("layerNormModulate: LN(x)·(1 + scale) + shift, gradients for x, shift, scale", async () => {
  for (const [B, N, D] of [[2, 3, 8], [2, 2, 5], [1, 3, 70], [3, 1, 64]]) {
    await check({
      name: `layerNormModulate ${B}x${N}x${D}`,
      inputs: [{ shape: [B, N, D] }, { shape: [B, D] }, { shape: [B, D] }],
      gpu: ([x, shift, scale]) => layerNormModulate(x, shift, scale, 1e-6),
      ref: ([x, shift, scale]) =>
        refNorm(
          x,
          D,
          1e-6,
          (r, d) => 1 + scale[Math.floor(r / N) * D + d],
          (r, d) => shift[Math.floor(r / N) * D + d],
        ),
    });
  }
  // x alone requiring a gradient; shift/scale given as [B, 1, D]
  const [B, N, D] = [2, 4, 6];
  await check({
    name: "layerNormModulate, constant modulation",
    inputs: [{ shape: [B, N, D] }, { shape: [B, 1, D], noGrad: true }, {
      shape: [B, 1, D],
      noGrad: true,
    }],
    gpu: ([x, shift, scale]) => layerNormModulate(x, shift, scale),
    ref: ([x, shift, scale]) =>
      refNorm(
        x,
        D,
        1e-6,
        (r, d) => 1 + scale[Math.floor(r / N) * D + d],
        (r, d) => shift[Math.floor(r / N) * D + d],
      ),
  });
});

Deno.test("layerNormModulate and layerNorm without gradients (no saved statistics)", async () => {
  const [B, N, D] = [2, 3, 12];
  const xs = rand(B * N * D, 5), sh = rand(B * D, 6), sc = rand(B * D, 7);
  const w = rand(D, 8), b = rand(D, 9);
  const [y1, y2] = await (async () => {
    const [t1, t2] = tidy(() =>
      noGrad(() => {
        const x = tensor(xs, [B, N, D]);
        return [
          layerNormModulate(x, tensor(sh, [B, D]), tensor(sc, [B, D])),
          layerNorm(x, tensor(w, [D]), tensor(b, [D]), 1e-5),
        ];
      })
    );
    const r = [await t1.read(), await t2.read()];
    t1.dispose();
    t2.dispose();
    return r;
  })();
  const x64 = Float64Array.from(xs);
  assertClose(
    y1,
    refNorm(
      x64,
      D,
      1e-6,
      (r, d) => 1 + sc[Math.floor(r / N) * D + d],
      (r, d) => sh[Math.floor(r / N) * D + d],
    ),
    1e-5,
    "layerNormModulate (noGrad)",
  );
  assertClose(
    y2,
    refNorm(x64, D, 1e-5, (_, d) => w[d], (_, d) => b[d]),
    1e-5,
    "layerNorm (noGrad)",
  );
});

Deno.test("layerNorm with affine weight and bias, rank 2 and 3", async () => {
  for (const shape of [[5, 8], [2, 3, 7], [2, 2, 80]]) {
    const D = shape[shape.length - 1];
    await check({
      name: `layerNorm [${shape}]`,
      inputs: [{ shape }, { shape: [D] }, { shape: [D] }],
      gpu: ([x, w, b]) => layerNorm(x, w, b, 1e-5),
      ref: ([x, w, b]) => refNorm(x, D, 1e-5, (_, d) => w[d], (_, d) => b[d]),
    });
  }
});

Deno.test("embedding: gather rows, deterministic scatter-add backward, out-of-range ids", async () => {
  const [V, E] = [5, 6];
  // repeated ids accumulate; 5 and -1 are out of range → zero rows, no gradient
  const ids = [3, 0, 3, 4, 1, 3, 5, -1];
  for (const S of [[8], [2, 4]]) {
    await check({
      name: `embedding ids [${S}]`,
      inputs: [{ shape: [V, E] }],
      gpu: ([t]) => embedding(t, intTensor(ids, S)),
      ref: ([t]) => {
        const o = new Float64Array(ids.length * E);
        ids.forEach((id, m) => {
          if (id >= 0 && id < V) { for (let e = 0; e < E; e++) o[m * E + e] = t[id * E + e]; }
        });
        return o;
      },
    });
  }
  // more channels than one workgroup of the backward covers
  const ids2 = [1, 2, 1, 0, 2, 2];
  await check({
    name: "embedding E=70",
    inputs: [{ shape: [3, 70] }],
    gpu: ([t]) => embedding(t, intTensor(ids2, [3, 2])),
    ref: ([t]) => {
      const o = new Float64Array(ids2.length * 70);
      ids2.forEach((id, m) => {
        for (let e = 0; e < 70; e++) o[m * 70 + e] = t[id * 70 + e];
      });
      return o;
    },
  });
});

function refMse(p: Float64Array, t: Float64Array): Float64Array {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += (p[i] - t[i]) ** 2;
  return Float64Array.of(s / p.length);
}

Deno.test("mseLoss: scalar mean of squares, gradients to pred and target", async () => {
  await check({
    name: "mseLoss",
    inputs: [{ shape: [2, 3, 5] }, { shape: [2, 3, 5] }],
    gpu: ([p, t]) => mseLoss(p, t),
    ref: ([p, t]) => refMse(p, t),
  });
  await check({
    name: "mseLoss, constant target",
    inputs: [{ shape: [300] }, { shape: [300], noGrad: true }],
    gpu: ([p, t]) => mseLoss(p, t),
    ref: ([p, t]) => refMse(p, t),
  });
  // two-stage reduction (several partial sums)
  const n = 4096 * 3 + 17;
  const a = rand(n, 3), b = rand(n, 4);
  const t = tidy(() => mseLoss(tensor(a, [n]), tensor(b, [n])));
  const got = await t.read();
  t.dispose();
  if (t.shape.length !== 0) throw new Error(`mseLoss shape [${t.shape}]`);
  assertClose(got, refMse(Float64Array.from(a), Float64Array.from(b)), 1e-5, "mseLoss two-stage");
});

Deno.test("patchify and unpatchify layouts with backward", async () => {
  const [B, C, H, W, p] = [2, 3, 4, 6, 2];
  const gw = W / p, N = (H / p) * gw, K = C * p * p;
  await check({
    name: "patchify",
    inputs: [{ shape: [B, C, H, W] }],
    gpu: ([x]) => patchify(x, p),
    ref: ([x]) => {
      const o = new Float64Array(B * N * K);
      for (let b = 0; b < B; b++) {
        for (let n = 0; n < N; n++) {
          for (let c = 0; c < C; c++) {
            for (let i = 0; i < p; i++) {
              for (let j = 0; j < p; j++) {
                const y = Math.floor(n / gw) * p + i, xx = (n % gw) * p + j;
                o[(b * N + n) * K + c * p * p + i * p + j] = x[((b * C + c) * H + y) * W + xx];
              }
            }
          }
        }
      }
      return o;
    },
  });
  await check({
    name: "unpatchify",
    inputs: [{ shape: [B, N, K] }],
    gpu: ([x]) => unpatchify(x, p, C, H, W),
    ref: ([x]) => {
      const o = new Float64Array(B * C * H * W);
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          for (let y = 0; y < H; y++) {
            for (let xx = 0; xx < W; xx++) {
              const n = Math.floor(y / p) * gw + Math.floor(xx / p);
              const k = ((y % p) * p + (xx % p)) * C + c;
              o[((b * C + c) * H + y) * W + xx] = x[(b * N + n) * K + k];
            }
          }
        }
      }
      return o;
    },
  });
  // p = 1 and a single channel
  await check({
    name: "patchify p=1",
    inputs: [{ shape: [1, 1, 2, 3] }],
    gpu: ([x]) => patchify(x, 1),
    ref: ([x]) => x.slice(),
  });
});

Deno.test("dropPath scales each sample by its keep factor, backward to x", async () => {
  const keep = Float32Array.of(0, 2, 1.25);
  await check({
    name: "dropPath",
    inputs: [{ shape: [3, 2, 4] }, { shape: [3], data: keep, noGrad: true }],
    gpu: ([x, k]) => dropPath(x, k),
    ref: ([x, k]) => x.map((v, i) => v * k[Math.floor(i / 8)]),
  });
});
