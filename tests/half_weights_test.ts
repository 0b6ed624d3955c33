import assert from "node:assert/strict";
// f16 weights for sampling (kernels/matmul.ts toHalf, model/half_weights.ts): read as f16 and
// summed in f32. Weights that are exactly f16 give the f32 results bit for bit; rounded weights
// move each output by no more than the rounding of its terms, layer by layer through the model;
// an f16 weight has no gradient, and only a model that owns its weights converts them.
import {
  concat,
  copy,
  halfPackable,
  linear,
  linearHalfRows,
  noGrad,
  slice,
  split,
  type Tensor,
  tensor,
  toHalf,
  transpose,
} from "../kernels/mod.ts";
import { roundToHalf } from "../io/safetensors.ts";
import { zero } from "../kernels/shape.ts";
import { byteSize } from "../kernels/tensor.ts";
import { copyTensor } from "../kernels/runtime.ts";
import { conditionFor } from "../diffusion/generate.ts";
import { modelFromCheckpoint, readCheckpoint } from "../model/checkpoint.ts";
import { useHalfWeights } from "../model/half_weights.ts";
import { PixArt } from "../model/pixart.ts";
import type { Params } from "../model/params.ts";
import { assertClose, rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

async function run(f: () => Tensor): Promise<Float32Array> {
  const t = f();
  const r = await t.read();
  t.dispose();
  return r;
}

Deno.test("an f16 weight holds the weight's values rounded to f16", async () => {
  const vals = Float32Array.from([
    0,
    1,
    -2.5,
    1 / 3,
    65504,
    1e-6,
    -7e-8,
    3.14159,
    1e5,
    -1e-3,
    2,
    4,
  ]);
  const w = tensor(vals, [3, 4]);
  const h = toHalf(w);
  if (h.dtype !== "f16" || h.shape.join() !== "3,4") throw new Error(`${h}`);
  const got = await h.read();
  const want = vals.map(roundToHalf);
  for (let i = 0; i < vals.length; i++) {
    const same = got[i] === want[i] || (Number.isNaN(got[i]) && Number.isNaN(want[i]));
    if (!same) throw new Error(`value ${vals[i]}: f16 ${got[i]}, want ${want[i]}`);
  }
  // the shape ops copy a word a value: an f16 tensor is refused, not copied at twice its bytes
  for (
    const [op, f] of [
      ["concat", () => concat([h, h], 0)],
      ["permute", () => transpose(h)],
      ["slice", () => slice(h, 1, 1, 2)],
      ["split", () => split(h, [1, 2], 0)],
    ] as const
  ) {
    assert.throws(f, new RegExp(`^Error: ${op}: not for f16 tensors$`));
  }
  w.dispose();
  h.dispose();
});

Deno.test("exactly-f16 weights: the f32 kernel's results, with bias, GELU and row slices", async () => {
  for (const [M, K, N] of [[5, 12, 24], [37, 16, 30], [64, 128, 64]]) {
    const x = tensor(rand(M * K, 1), [M, K]);
    const w = tensor(rand(N * K, 2).map(roundToHalf), [N, K]);
    const b = tensor(rand(N, 3), [N]);
    if (!halfPackable(w)) throw new Error(`[${N}, ${K}] should be packable`);
    const h = toHalf(w);
    assertClose(
      await run(() => linear(x, h, b)),
      await run(() => linear(x, w, b)),
      0,
      `${M}x${K}x${N}`,
    );
    assertClose(
      await run(() => linear(x, h, b, "gelu_tanh")),
      await run(() => linear(x, w, b, "gelu_tanh")),
      0,
      "with GELU",
    );
    // rows 4 … N−4 read in place from the f16 weight
    const n = N - 8;
    const [, wMid] = split(w, [4, n, 4], 0);
    const [, bMid] = split(b, [4, n, 4], 0);
    const slice = await run(() => linearHalfRows(x, h, 4, n, bMid)!);
    assertClose(slice, await run(() => linear(x, wMid, bMid)), 0, `rows 4…${N - 4}`);
    if (linearHalfRows(x, w, 4, n, bMid) !== null) {
      throw new Error("an f32 weight was taken as f16");
    }
    for (const t of [x, w, b, h, wMid, bMid]) t.dispose();
  }
});

Deno.test("rounded weights: each output within the f16 rounding of its terms", async () => {
  const [M, K, N] = [33, 96, 40];
  const xs = rand(M * K, 4), ws = rand(N * K, 5, 0.3);
  const x = tensor(xs, [M, K]), w = tensor(ws, [N, K]), h = toHalf(w);
  const exact = await run(() => linear(x, w));
  const half = await run(() => linear(x, h));
  let moved = 0;
  for (let m = 0; m < M; m++) {
    for (let n = 0; n < N; n++) {
      let abs = 0, absX = 0;
      for (let k = 0; k < K; k++) {
        abs += Math.abs(xs[m * K + k] * ws[n * K + k]);
        absX += Math.abs(xs[m * K + k]);
      }
      // f16 rounding: relative 2⁻¹¹ (absolute 2⁻²⁵ below f16's normal range), plus both f32 sums
      const bound = 2 ** -11 * abs + 2 ** -25 * absX + 2 * K * 2 ** -24 * abs;
      const d = Math.abs(half[m * N + n] - exact[m * N + n]);
      if (!(d <= bound)) throw new Error(`[${m}, ${n}]: moved ${d}, bound ${bound}`);
      moved = Math.max(moved, d);
    }
  }
  // the f16 values are really what is read: not-f16 weights move the outputs
  if (!(moved > 0)) throw new Error("rounded weights gave the f32 results exactly");
  for (const t of [x, w, h]) t.dispose();
});

Deno.test("a model with rounded f16 weights: every layer within a bound of its f32 output", async () => {
  const c = { ...TINY_TEXT_MODEL, depth: 2 };
  const f32 = PixArt.init(c, 3), f16 = PixArt.init(c, 3);
  // the zero-initialised layers (cross-attention's and the final projection) get values, so that
  // the text path's rounding reaches the image tokens and the output
  for (const m of [f32, f16]) {
    for (const [k, name] of m.params.names().entries()) {
      if (!/(cross_attn\.proj|final_layer\.linear)\.weight$/.test(name)) continue;
      const p = m.params.get(name);
      m.params.set(name, tensor(rand(p.size, 40 + k, 0.3), p.shape));
    }
  }
  f32.params.requireGrad(false);
  f16.params.requireGrad(false);
  const names = useHalfWeights(f16, "all");
  const linears = f16.params.tensors().filter((t) => t.dtype === "f16").length;
  if (names.length < 10 || names.length !== linears) throw new Error(`converted ${names}`);
  if (!names.includes("blocks.1.mlp.fc2.weight") || names.includes("x_embedder.proj.weight")) {
    throw new Error(`converted ${names}`);
  }
  const B = 3, S = c.image_size;
  const cond = conditionFor(f32, ["seven", "2", "a four"], []);
  const x = tensor(rand(B * S * S * c.in_channels, 6), [B, c.in_channels, S, S]);
  const taps = async (m: PixArt) => {
    // a read records its copy at once: the block may free its intermediates right after
    const reads: [string, Promise<Float32Array>][] = [];
    const out = noGrad(() =>
      m.forward(x, [999, 500, 10], cond, {
        tap: (n, t) => t.dtype === "f32" && reads.push([n, t.read()]),
      })
    );
    reads.push(["out", out.read()]);
    const vals = new Map<string, Float32Array>();
    for (const [n, r] of reads) vals.set(n, await r);
    out.dispose();
    return vals;
  };
  const a = await taps(f32), b = await taps(f16);
  // every layer: max |Δ| / max |y| within 4·2⁻¹¹ ≈ 0.2%, a few roundings' worth after its
  // inputs' own errors (measured: at most 6e-4, in the text encoder's output)
  const worst: string[] = [];
  for (const [n, want] of a) {
    const rel = Math.max(...want.map((v, i) => Math.abs(b.get(n)![i] - v))) /
      Math.max(1e-12, ...want.map(Math.abs));
    if (!(rel <= 4 * 2 ** -11)) worst.push(`${n}: ${rel.toExponential(2)}`);
  }
  if (worst.length) throw new Error(`layers past the bound: ${worst.join(", ")}`);
  if (a.size < 8) throw new Error(`only ${a.size} layers tapped`);
  // the output depends on the weights that were rounded: it is not the zero of an untrained head
  if (!a.get("out")!.some((v) => v !== 0)) throw new Error("the output is all zeros");
  if (a.get("out")!.every((v, i) => v === b.get("out")![i])) {
    throw new Error("the f16 weights left the output unchanged: nothing was rounded on its path");
  }
  x.dispose();
  f32.dispose();
  f16.dispose();
});

Deno.test("an f16 weight has no gradient; a model converts only weights it owns", () => {
  const x = tensor(rand(8, 7), [2, 4]), w = tensor(rand(8, 8), [2, 4]), h = toHalf(w);
  x.requiresGrad = true;
  let msg = "";
  try {
    linear(x, h);
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("no gradient")) throw new Error(`a product with a gradient ran: '${msg}'`);
  msg = "";
  try {
    toHalf(tensor(rand(6, 6), [2, 3]));
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("K % 4")) throw new Error(`an unpackable shape was accepted: '${msg}'`);
  const owner = PixArt.init(TINY_TEXT_MODEL, 1);
  const view = PixArt.over(owner.config, owner.params as Params);
  msg = "";
  try {
    useHalfWeights(view, "all");
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("does not own")) throw new Error(`a view converted its weights: '${msg}'`);
  if (owner.params.tensors().some((t) => t.dtype === "f16")) throw new Error("weights changed");
  owner.dispose();
  for (const t of [x, w, h]) t.dispose();
});

Deno.test("the bundled f16 checkpoint: f16 weights give the f32 weights' guided ε bit for bit", async () => {
  const path = "checkpoints/pixart_mnist.safetensors";
  const ck = readCheckpoint(path);
  const f32 = modelFromCheckpoint(ck, path, true), f16 = modelFromCheckpoint(ck, path, true);
  const exact = useHalfWeights(f16, "exact");
  if (!exact.some((n) => n.endsWith("mlp.fc1.weight"))) {
    throw new Error(`f16 weights not detected: ${exact.slice(0, 3)}`);
  }
  const cond = conditionFor(f32, ["seven", "2"], []);
  const x = tensor(rand(2 * 32 * 32, 7), [2, 1, 32, 32]);
  const guided = async (m: PixArt) => {
    const eps = m.guidedEps(cond, 4.5);
    const out = await run(() => noGrad(() => eps(x, 500)));
    eps.dispose();
    return out;
  };
  assertClose(await guided(f16), await guided(f32), 0, "guided ε, f16 vs f32 weights");
  x.dispose();
  f32.dispose();
  f16.dispose();
});

Deno.test("copies and zeroing of an f16 tensor work on its packed words, two values a word", async () => {
  const w = tensor(rand(63 * 4, 12), [63, 4]);
  const h = toHalf(w);
  assert.equal(byteSize(h.size, h.dtype), 2 * 63 * 4);
  const want = await h.read();
  assert.deepEqual(await copy(h).read(), want);
  const c = toHalf(tensor(new Float32Array(63 * 4), [63, 4]));
  copyTensor(h, c); // the default size: the f16 tensor's own bytes
  assert.deepEqual(await c.read(), want);
  zero(c);
  assert.ok((await c.read()).every((v) => v === 0));
  for (const t of [w, h, c]) t.dispose();
});
