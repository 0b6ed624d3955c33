import assert from "node:assert/strict";
import {
  attention,
  ATTENTION_VARIANTS,
  backward,
  noGrad,
  softmax,
  tensor,
  tidy,
  withKernelVariant,
} from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

// ---- softmax -----------------------------------------------------------------------------------

function refSoftmax(x: Float64Array, C: number): Float64Array {
  const out = new Float64Array(x.length);
  for (let r = 0; r < x.length / C; r++) {
    let m = -Infinity;
    for (let c = 0; c < C; c++) m = Math.max(m, x[r * C + c]);
    let s = 0;
    for (let c = 0; c < C; c++) s += Math.exp(x[r * C + c] - m);
    for (let c = 0; c < C; c++) out[r * C + c] = Math.exp(x[r * C + c] - m) / s;
  }
  return out;
}

Deno.test("softmax over the last axis: scalar and vec4 rows, large logits", async () => {
  for (const shape of [[3, 5], [2, 3, 8], [7], [4, 1], [2, 12]]) {
    const C = shape[shape.length - 1];
    await check({
      name: `softmax ${shape}`,
      inputs: [{ shape }],
      gpu: ([x]) => softmax(x),
      ref: ([x]) => refSoftmax(x, C),
    });
  }
  // logits far from 0 (different per row): the row maximum must be subtracted
  const big = rand(24, 5, 3).map((v, i) => v + [500, -300, 80][Math.floor(i / 8)]);
  await check({
    name: "softmax large logits",
    inputs: [{ shape: [3, 8], data: big }],
    gpu: ([x]) => softmax(x),
    ref: ([x]) => refSoftmax(x, 8),
    h: 1e-4,
  });
  // a row of −∞ (every entry masked) gives zeros, as attention's masked rows do, not NaN
  for (const C of [5, 8]) {
    const x = new Float32Array(2 * C).fill(-Infinity);
    for (let c = 0; c < C; c++) x[C + c] = c;
    const y = await tidy(() => softmax(tensor(x, [2, C]))).read();
    assert.deepEqual(Array.from(y.subarray(0, C)), new Array(C).fill(0), `C = ${C}`);
    assertClose(y.subarray(C), refSoftmax(Float64Array.from(x.subarray(C)), C), 1e-6, `C = ${C}`);
  }
});

// ---- attention -----------------------------------------------------------------------------------

interface Dims {
  B: number;
  Nq: number;
  Nk: number;
  D: number;
  H: number;
}

/** f64 reference: softmax(q·kᵀ/√dh, masked keys −∞)·v per head; all-masked rows give zeros. */
function refAttention(
  q: Float64Array,
  k: Float64Array,
  v: Float64Array,
  { B, Nq, Nk, D, H }: Dims,
  mask?: Float64Array,
): Float64Array {
  const dh = D / H;
  const sc = 1 / Math.sqrt(dh);
  const out = new Float64Array(B * Nq * D);
  const s = new Float64Array(Nk);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < H; h++) {
      for (let i = 0; i < Nq; i++) {
        const qo = (b * Nq + i) * D + h * dh;
        let m = -Infinity;
        for (let j = 0; j < Nk; j++) {
          if (mask && mask[b * Nk + j] === 0) {
            s[j] = -Infinity;
            continue;
          }
          const ko = (b * Nk + j) * D + h * dh;
          let d = 0;
          for (let c = 0; c < dh; c++) d += q[qo + c] * k[ko + c];
          s[j] = d * sc;
          m = Math.max(m, s[j]);
        }
        if (m === -Infinity) continue; // every key masked: zeros
        let sum = 0;
        for (let j = 0; j < Nk; j++) {
          s[j] = s[j] === -Infinity ? 0 : Math.exp(s[j] - m);
          sum += s[j];
        }
        for (let j = 0; j < Nk; j++) {
          const p = s[j] / sum;
          if (p === 0) continue;
          const vo = (b * Nk + j) * D + h * dh;
          for (let c = 0; c < dh; c++) out[qo + c] += p * v[vo + c];
        }
      }
    }
  }
  return out;
}

async function checkAttention(name: string, d: Dims, maskRows?: number[][]) {
  const { B, Nq, Nk, D, H } = d;
  const inputs: { shape: number[]; data?: Float32Array; noGrad?: boolean }[] = [
    { shape: [B, Nq, D] },
    { shape: [B, Nk, D] },
    { shape: [B, Nk, D] },
  ];
  if (maskRows) {
    inputs.push({ shape: [B, Nk], data: Float32Array.from(maskRows.flat()), noGrad: true });
  }
  await check({
    name,
    inputs,
    gpu: ([q, k, v, m]) => attention(q, k, v, { heads: H, mask: m }),
    ref: ([q, k, v, m]) => refAttention(q, k, v, d, m),
  });
}

Deno.test("attention: self-attention, vec4 heads", async () => {
  await checkAttention("self 1 head dh=8", { B: 2, Nq: 5, Nk: 5, D: 8, H: 1 });
  await checkAttention("self 2 heads dh=4", { B: 2, Nq: 5, Nk: 5, D: 8, H: 2 });
  await checkAttention("self 4 heads dh=4", { B: 1, Nq: 6, Nk: 6, D: 16, H: 4 });
  await checkAttention("self 2 heads dh=16", { B: 2, Nq: 3, Nk: 3, D: 32, H: 2 });
});

Deno.test("attention: q = k = v is the same tensor (gradients accumulate)", async () => {
  const d = { B: 2, Nq: 4, Nk: 4, D: 12, H: 3 };
  await check({
    name: "shared qkv",
    inputs: [{ shape: [2, 4, 12] }],
    gpu: ([x]) => attention(x, x, x, { heads: 3 }),
    ref: ([x]) => refAttention(x, x, x, d),
  });
});

Deno.test("attention: cross-attention (Nq ≠ Nk)", async () => {
  await checkAttention("cross Nq>Nk", { B: 2, Nq: 6, Nk: 3, D: 12, H: 3 });
  await checkAttention("cross Nq<Nk", { B: 2, Nq: 2, Nk: 7, D: 8, H: 2 });
  await checkAttention("cross one key", { B: 1, Nq: 3, Nk: 1, D: 4, H: 1 });
});

Deno.test("attention: odd head sizes (scalar path)", async () => {
  await checkAttention("dh=3 self", { B: 2, Nq: 4, Nk: 4, D: 6, H: 2 });
  await checkAttention("dh=5 cross", { B: 2, Nq: 3, Nk: 6, D: 15, H: 3 });
  await checkAttention("dh=1", { B: 1, Nq: 3, Nk: 4, D: 2, H: 2 });
  await checkAttention("dh=6", { B: 1, Nq: 5, Nk: 3, D: 12, H: 2 });
});

Deno.test("attention: register tiles with padding rows, several workgroups, dh = 64", async () => {
  await checkAttention("tiles padded, 2 heads", { B: 2, Nq: 7, Nk: 9, D: 16, H: 2 });
  await checkAttention("tiles padded, masked", { B: 2, Nq: 7, Nk: 9, D: 16, H: 2 }, [
    [1, 0, 1, 1, 0, 1, 1, 1, 0],
    [0, 0, 0, 0, 0, 0, 0, 1, 1],
  ]);
  await checkAttention("dh=64 (the model's head size)", { B: 1, Nq: 4, Nk: 2, D: 128, H: 2 });
  await checkAttention("Nq=37 Nk=35", { B: 1, Nq: 37, Nk: 35, D: 4, H: 1 });
  await checkAttention("Nq=9 Nk=33 scalar", { B: 1, Nq: 9, Nk: 33, D: 3, H: 1 });
});

Deno.test("attention: key padding mask, different per batch row", async () => {
  await checkAttention("mask vec4", { B: 3, Nq: 4, Nk: 5, D: 8, H: 2 }, [
    [1, 1, 0, 1, 0],
    [0, 1, 1, 1, 1],
    [1, 0, 0, 0, 0],
  ]);
  await checkAttention("mask scalar cross", { B: 2, Nq: 3, Nk: 6, D: 10, H: 2 }, [
    [1, 1, 1, 0, 0, 0],
    [0, 1, 0, 1, 1, 0],
  ]);
  await checkAttention("mask self dh=16", { B: 2, Nq: 4, Nk: 4, D: 16, H: 1 }, [
    [1, 1, 1, 1],
    [1, 1, 0, 0],
  ]);
});

Deno.test("attention: a row whose keys are all masked gives zeros, not NaN", async () => {
  const rows = [[0, 0, 0, 0], [1, 0, 1, 1]];
  await checkAttention("all masked vec4", { B: 2, Nq: 3, Nk: 4, D: 8, H: 2 }, rows);
  await checkAttention("all masked scalar", { B: 2, Nq: 3, Nk: 4, D: 6, H: 2 }, rows);
  // masked keys with huge entries: their scores would overflow exp if they were not excluded
  const d = { B: 2, Nq: 3, Nk: 4, D: 8, H: 2 };
  const k = rand(64, 4).map((x, i) => {
    const b = Math.floor(i / 32), j = Math.floor(i / 8) % 4;
    return rows[b][j] ? x : x * 1e4;
  });
  await check({
    name: "masked keys with huge scores",
    inputs: [
      { shape: [2, 3, 8] },
      { shape: [2, 4, 8], data: k },
      { shape: [2, 4, 8] },
      { shape: [2, 4], data: Float32Array.from(rows.flat()), noGrad: true },
    ],
    gpu: ([q, k, v, m]) => attention(q, k, v, { heads: 2, mask: m }),
    ref: ([q, k, v, m]) => refAttention(q, k, v, d, m),
  });
});

Deno.test("attention without gradients matches the reference", async () => {
  const d = { B: 2, Nq: 5, Nk: 3, D: 8, H: 2 };
  const [q, k, v] = [rand(80, 1), rand(48, 2), rand(48, 3)];
  const m = Float32Array.of(1, 0, 1, 0, 0, 0);
  const out = tidy(() =>
    noGrad(() =>
      attention(tensor(q, [2, 5, 8]), tensor(k, [2, 3, 8]), tensor(v, [2, 3, 8]), {
        heads: 2,
        mask: tensor(m, [2, 3]),
      })
    )
  );
  const got = await out.read();
  out.dispose();
  const f = (a: Float32Array) => Float64Array.from(a);
  const want = refAttention(f(q), f(k), f(v), d, f(m));
  for (let i = 40; i < 80; i++) if (got[i] !== 0) throw new Error("masked row not zero");
  assertClose(got, want, 1e-5, "noGrad attention");
});

Deno.test("attention rejects bad shapes", () => {
  const t = (s: number[]) => tensor(new Float32Array(s.reduce((a, b) => a * b, 1)), s);
  tidy(() => {
    const q = t([2, 3, 8]), k = t([2, 4, 8]);
    const expectThrow = (f: () => unknown, message: RegExp) => assert.throws(f, message);
    expectThrow(() => attention(q, k, k, { heads: 3 }), /^Error: attention: heads must divide D/);
    expectThrow(
      () => attention(q, k, t([2, 5, 8]), { heads: 2 }),
      /^Error: attention: k and v have different lengths/,
    );
    expectThrow(
      () => attention(q, t([1, 4, 8]), t([1, 4, 8]), { heads: 2 }),
      /^Error: attention: batch sizes differ/,
    );
    expectThrow(
      () => attention(q, k, k, { heads: 2, mask: t([2, 3]) }),
      /^Error: attention: mask must be \[B, Nk\]/,
    );
  });
});

Deno.test("attention variants: every row tile gives the reference and the same bits", async () => {
  for (
    const [d, masked] of [
      [{ B: 2, Nq: 7, Nk: 9, D: 16, H: 2 }, false],
      [{ B: 2, Nq: 9, Nk: 5, D: 12, H: 2 }, true],
      [{ B: 1, Nq: 16, Nk: 16, D: 64, H: 2 }, false],
      [{ B: 2, Nq: 5, Nk: 6, D: 6, H: 2 }, true], // scalar path
    ] as const
  ) {
    const { B, Nq, Nk, D, H } = d;
    const qd = rand(B * Nq * D, 1), kd = rand(B * Nk * D, 2), vd = rand(B * Nk * D, 3);
    const gd = rand(B * Nq * D, 4);
    const md = masked
      ? Float32Array.from({ length: B * Nk }, (_, i) => (i % 3 === 1 ? 0 : 1))
      : null;
    const ref = refAttention(
      Float64Array.from(qd),
      Float64Array.from(kd),
      Float64Array.from(vd),
      d,
      md ? Float64Array.from(md) : undefined,
    );
    let first: Float32Array[] | null = null;
    for (const variant of ATTENTION_VARIANTS) {
      const q = tensor(qd, [B, Nq, D]), k = tensor(kd, [B, Nk, D]), v = tensor(vd, [B, Nk, D]);
      const m = md ? tensor(md, [B, Nk]) : null;
      for (const t of [q, k, v]) t.requiresGrad = true;
      const y = withKernelVariant("attention", variant, () =>
        tidy(() => {
          const y = attention(q, k, v, { heads: H, mask: m });
          backward(y, tensor(gd, y.shape));
          return y;
        }));
      const got = [
        await y.read(),
        await q.grad!.read(),
        await k.grad!.read(),
        await v.grad!.read(),
      ];
      assertClose(got[0], ref, 1e-5, `${JSON.stringify(d)} ${variant}`);
      if (!first) first = got;
      else {
        got.forEach((x, i) => {
          if (x.some((e, j) => e !== first![i][j])) {
            throw new Error(`${JSON.stringify(d)} ${variant}: output ${i} differs from tile8's`);
          }
        });
      }
      for (const t of [q, k, v]) t.grad!.dispose();
      for (const t of [q, k, v, m, y]) t?.dispose();
    }
  }
});
