import assert from "node:assert/strict";
import {
  conv2d,
  convOutSize,
  crossEntropy,
  globalAvgPool,
  intTensor,
  noGrad,
  tensor,
  tidy,
  unfold,
} from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

interface Geo {
  B: number;
  C: number;
  H: number;
  W: number;
  k: number;
  s: number;
  p: number;
}

/** im2col by definition: cols[b, oy·Wo + ox, (c·k + r)·k + q] = x[b, c, oy·s + r − p, ox·s + q − p]. */
function refUnfold(x: Float64Array, g: Geo): Float64Array {
  const { B, C, H, W, k, s, p } = g;
  const Ho = convOutSize(H, k, s, p), Wo = convOutSize(W, k, s, p);
  const K = C * k * k;
  const out = new Float64Array(B * Ho * Wo * K);
  for (let b = 0; b < B; b++) {
    for (let oy = 0; oy < Ho; oy++) {
      for (let ox = 0; ox < Wo; ox++) {
        for (let c = 0; c < C; c++) {
          for (let r = 0; r < k; r++) {
            for (let q = 0; q < k; q++) {
              const y = oy * s + r - p, xx = ox * s + q - p;
              const v = y >= 0 && y < H && xx >= 0 && xx < W
                ? x[((b * C + c) * H + y) * W + xx]
                : 0;
              out[((b * Ho + oy) * Wo + ox) * K + (c * k + r) * k + q] = v;
            }
          }
        }
      }
    }
  }
  return out;
}

/** Direct convolution (torch.nn.functional.conv2d semantics), weight [O, C, k, k]. */
function refConv(
  x: Float64Array,
  w: Float64Array,
  bias: Float64Array | null,
  O: number,
  g: Geo,
): Float64Array {
  const { B, C, H, W, k, s, p } = g;
  const Ho = convOutSize(H, k, s, p), Wo = convOutSize(W, k, s, p);
  const out = new Float64Array(B * O * Ho * Wo);
  for (let b = 0; b < B; b++) {
    for (let o = 0; o < O; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let acc = bias ? bias[o] : 0;
          for (let c = 0; c < C; c++) {
            for (let r = 0; r < k; r++) {
              for (let q = 0; q < k; q++) {
                const y = oy * s + r - p, xx = ox * s + q - p;
                if (y < 0 || y >= H || xx < 0 || xx >= W) continue;
                acc += x[((b * C + c) * H + y) * W + xx] * w[((o * C + c) * k + r) * k + q];
              }
            }
          }
          out[((b * O + o) * Ho + oy) * Wo + ox] = acc;
        }
      }
    }
  }
  return out;
}

const GEOS: Geo[] = [
  { B: 2, C: 3, H: 5, W: 6, k: 3, s: 1, p: 1 },
  { B: 2, C: 2, H: 7, W: 5, k: 3, s: 2, p: 1 },
  { B: 1, C: 3, H: 6, W: 6, k: 2, s: 2, p: 0 },
  { B: 2, C: 1, H: 6, W: 7, k: 3, s: 2, p: 0 },
  { B: 1, C: 2, H: 4, W: 4, k: 5, s: 1, p: 2 },
];

Deno.test("unfold matches im2col by definition; backward sums each pixel's columns", async () => {
  for (const g of GEOS) {
    const Ho = convOutSize(g.H, g.k, g.s, g.p), Wo = convOutSize(g.W, g.k, g.s, g.p);
    await check({
      name: `unfold ${JSON.stringify(g)}`,
      inputs: [{ shape: [g.B, g.C, g.H, g.W] }],
      gpu: ([x]) => {
        const y = unfold(x, g.k, g.s, g.p);
        const want = [g.B, Ho * Wo, g.C * g.k * g.k];
        if (y.shape.some((d, i) => d !== want[i])) throw new Error(`unfold shape [${y.shape}]`);
        return y;
      },
      ref: ([x]) => refUnfold(x, g),
    });
  }
});

Deno.test("conv2d matches a direct convolution; gradients for x, weight and bias", async () => {
  const O = 4;
  for (const g of GEOS) {
    await check({
      name: `conv2d ${JSON.stringify(g)}`,
      inputs: [
        { shape: [g.B, g.C, g.H, g.W] },
        { shape: [O, g.C, g.k, g.k] },
        { shape: [O] },
      ],
      gpu: ([x, w, b]) => conv2d(x, w, b, g.s, g.p),
      ref: ([x, w, b]) => refConv(x, w, b, O, g),
    });
  }
  // flattened weight [O, C·k·k], no bias, more output channels than a matmul tile
  const g = { B: 2, C: 3, H: 6, W: 6, k: 3, s: 1, p: 1 };
  await check({
    name: "conv2d, flat weight, no bias",
    inputs: [{ shape: [g.B, g.C, g.H, g.W] }, { shape: [20, g.C * 9] }],
    gpu: ([x, w]) => conv2d(x, w, null, g.s, g.p),
    ref: ([x, w]) => refConv(x, w, null, 20, g),
  });
});

/** [B, C, H, W] → [B, H, W, C] on the host. */
function toNhwc(x: Float64Array, B: number, C: number, H: number, W: number): Float64Array {
  const o = new Float64Array(x.length);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < H * W; i++) o[(b * H * W + i) * C + c] = x[(b * C + c) * H * W + i];
    }
  }
  return o;
}

Deno.test("channels-last unfold and conv2d: same columns, [B, Ho, Wo, O] out", async () => {
  const O = 5;
  for (const g of GEOS.slice(0, 4)) {
    const Ho = convOutSize(g.H, g.k, g.s, g.p), Wo = convOutSize(g.W, g.k, g.s, g.p);
    // x is given channels-last; the references read it back as [B, C, H, W]
    const fromNhwc = (x: Float64Array) => {
      const o = new Float64Array(x.length);
      for (let b = 0; b < g.B; b++) {
        for (let c = 0; c < g.C; c++) {
          for (let i = 0; i < g.H * g.W; i++) {
            o[(b * g.C + c) * g.H * g.W + i] = x[(b * g.H * g.W + i) * g.C + c];
          }
        }
      }
      return o;
    };
    await check({
      name: `unfold nhwc ${JSON.stringify(g)}`,
      inputs: [{ shape: [g.B, g.H, g.W, g.C] }],
      gpu: ([x]) => unfold(x, g.k, g.s, g.p, "nhwc"),
      ref: ([x]) => refUnfold(fromNhwc(x), g),
    });
    await check({
      name: `conv2d nhwc ${JSON.stringify(g)}`,
      inputs: [{ shape: [g.B, g.H, g.W, g.C] }, { shape: [O, g.C, g.k, g.k] }, { shape: [O] }],
      gpu: ([x, w, b]) => {
        const y = conv2d(x, w, b, g.s, g.p, "nhwc");
        const want = [g.B, Ho, Wo, O];
        if (y.shape.some((d, i) => d !== want[i])) throw new Error(`conv2d shape [${y.shape}]`);
        return y;
      },
      ref: ([x, w, b]) => toNhwc(refConv(fromNhwc(x), w, b, O, g), g.B, O, Ho, Wo),
    });
  }
});

Deno.test("conv2d without gradients gives the same values; bad shapes are errors", async () => {
  const g = { B: 2, C: 4, H: 8, W: 8, k: 3, s: 2, p: 1 };
  const xs = rand(g.B * g.C * g.H * g.W, 3), ws = rand(8 * g.C * 9, 4), bs = rand(8, 5);
  const y = tidy(() =>
    noGrad(() =>
      conv2d(
        tensor(xs, [g.B, g.C, g.H, g.W]),
        tensor(ws, [8, g.C, 3, 3]),
        tensor(bs, [8]),
        g.s,
        g.p,
      )
    )
  );
  const got = await y.read();
  y.dispose();
  const want = refConv(
    Float64Array.from(xs),
    Float64Array.from(ws),
    Float64Array.from(bs),
    8,
    g,
  );
  assertClose(got, want, 1e-5, "conv2d (noGrad)");
  const bad: [RegExp, () => unknown][] = [
    [
      /^Error: conv2d: weight \[8, 3, 3, 3\] is not \[O, 4, k, k\]/,
      () => conv2d(tensor(xs, [2, 4, 8, 8]), tensor(rand(8 * 9 * 3), [8, 3, 3, 3])),
    ],
    [
      /^Error: conv2d: weight \[8, 10\] is not \[O, 4·k·k\]/,
      () => conv2d(tensor(xs, [2, 4, 8, 8]), tensor(rand(8 * 10), [8, 10])),
    ],
    [
      /^Error: unfold: a 9×9 kernel with pad 0 does not fit 8×8/,
      () => unfold(tensor(xs, [2, 4, 8, 8]), 9),
    ],
    [/^Error: unfold: x must be \[B, C, H, W\]/, () => unfold(tensor(xs, [8, 8, 8]), 3)],
  ];
  for (const [message, f] of bad) assert.throws(() => tidy(() => void f()), message);
});

Deno.test("globalAvgPool: the mean over each channel's pixels, with backward", async () => {
  const [B, C, H, W] = [2, 3, 4, 5];
  const ref = (x: Float64Array) => {
    const o = new Float64Array(B * C);
    for (let i = 0; i < B * C; i++) {
      for (let j = 0; j < H * W; j++) o[i] += x[i * H * W + j] / (H * W);
    }
    return o;
  };
  await check({
    name: "globalAvgPool",
    inputs: [{ shape: [B, C, H, W] }],
    gpu: ([x]) => globalAvgPool(x),
    ref: ([x]) => ref(x),
  });
  const nhwc = rand(B * C * H * W, 5);
  await check({
    name: "globalAvgPool nhwc",
    inputs: [{ shape: [B, H, W, C], data: nhwc }],
    gpu: ([x]) => globalAvgPool(x, "nhwc"),
    ref: ([x]) => {
      // back to [B, C, H, W] for the reference
      const o = new Float64Array(x.length);
      for (let b = 0; b < B; b++) {
        for (let c = 0; c < C; c++) {
          for (let i = 0; i < H * W; i++) o[(b * C + c) * H * W + i] = x[(b * H * W + i) * C + c];
        }
      }
      return ref(o);
    },
  });
});

function refCrossEntropy(x: Float64Array, labels: number[], K: number): Float64Array {
  const B = labels.length;
  let s = 0;
  for (let b = 0; b < B; b++) {
    let m = -Infinity;
    for (let j = 0; j < K; j++) m = Math.max(m, x[b * K + j]);
    let l = 0;
    for (let j = 0; j < K; j++) l += Math.exp(x[b * K + j] - m);
    s += m + Math.log(l) - x[b * K + labels[b]];
  }
  return Float64Array.of(s / B);
}

Deno.test("crossEntropy: mean of −log softmax at the label, gradient (softmax − onehot)/B", async () => {
  for (const [B, K] of [[4, 10], [3, 7], [1, 2], [5, 1]]) {
    const labels = Array.from({ length: B }, (_, b) => (b * 3 + 1) % K);
    await check({
      name: `crossEntropy ${B}x${K}`,
      inputs: [{ shape: [B, K], data: rand(B * K, 7 + B, 4) }],
      gpu: ([x]) => crossEntropy(x, intTensor(labels, [B])),
      ref: ([x]) => refCrossEntropy(x, labels, K),
    });
  }
  // large logits: the max is subtracted before exponentiating
  const big = Float32Array.from(rand(20, 11), (v) => v * 80 + 60);
  await check({
    name: "crossEntropy, large logits",
    inputs: [{ shape: [2, 10], data: big }],
    gpu: ([x]) => crossEntropy(x, intTensor([3, 9], [2])),
    ref: ([x]) => refCrossEntropy(x, [3, 9], 10),
    fwdTol: 1e-5,
    h: 1e-4,
  });
});

Deno.test("crossEntropy: many rows (two-stage mean), bad labels give NaN, bad shapes throw", async () => {
  const B = 4096 * 2 + 5, K = 3;
  const xs = rand(B * K, 21, 2);
  const labels = Array.from({ length: B }, (_, b) => b % K);
  const t = tidy(() => crossEntropy(tensor(xs, [B, K]), intTensor(labels, [B])));
  const got = await t.read();
  t.dispose();
  if (t.shape.length !== 0) throw new Error(`crossEntropy shape [${t.shape}]`);
  assertClose(got, refCrossEntropy(Float64Array.from(xs), labels, K), 1e-5, "two-stage");
  const n = tidy(() => crossEntropy(tensor(xs.subarray(0, 6), [2, 3]), intTensor([1, 3], [2])));
  const v = (await n.read())[0];
  n.dispose();
  if (!Number.isNaN(v)) throw new Error(`an out-of-range label gave ${v}, not NaN`);
  const bad: [RegExp, () => unknown][] = [
    [
      /^Error: crossEntropy: labels must be i32 \[2\], got Tensor\(\[3\], i32\)/,
      () => crossEntropy(tensor(xs.subarray(0, 6), [2, 3]), intTensor([1, 2, 0], [3])),
    ],
    [
      /^Error: crossEntropy: labels must be i32 \[2\], got Tensor\(\[2\], f32\)/,
      () => crossEntropy(tensor(xs.subarray(0, 6), [2, 3]), tensor([1, 2], [2])),
    ],
    [
      /^Error: crossEntropy: logits must be f32 \[B, K\]/,
      () => crossEntropy(tensor(xs.subarray(0, 6), [6]), intTensor([1], [1])),
    ],
  ];
  for (const [message, f] of bad) assert.throws(() => tidy(() => void f()), message);
});
