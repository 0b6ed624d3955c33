// f16-packed weights for sampling (kernels/matmul.ts useHalfWeight): the same results as the f32
// kernel when the weights are exactly f16, used only while the twin lives and no gradient is needed.
import {
  halfPackable,
  linear,
  linearHalfRows,
  noGrad,
  split,
  type Tensor,
  tensor,
  useHalfWeight,
} from "../kernels/mod.ts";
import { roundToHalf } from "../io/safetensors.ts";
import { conditionFor } from "../diffusion/generate.ts";
import { modelFromCheckpoint, readCheckpoint } from "../model/checkpoint.ts";
import { assertClose, maxAbs, rand, ready } from "./helpers.ts";

await ready;

const toHalf = (a: Float32Array) => a.map(roundToHalf);

async function run(f: () => Tensor): Promise<Float32Array> {
  const t = f();
  const r = await t.read();
  t.dispose();
  return r;
}

Deno.test("a packed f16 weight gives the f32 kernel's results, with bias, GELU and row slices", async () => {
  for (const [M, K, N] of [[5, 12, 24], [37, 16, 32], [64, 128, 64]]) {
    const x = tensor(rand(M * K, 1), [M, K]);
    const w = tensor(toHalf(rand(N * K, 2)), [N, K]);
    const b = tensor(rand(N, 3), [N]);
    if (!halfPackable(w)) throw new Error(`[${N}, ${K}] should be packable`);
    const want = await run(() => linear(x, w, b));
    const wantGelu = await run(() => linear(x, w, b, "gelu_tanh"));
    const h = useHalfWeight(w);
    assertClose(await run(() => linear(x, w, b)), want, 1e-7, `packed ${M}x${K}x${N}`);
    assertClose(await run(() => linear(x, w, b, "gelu_tanh")), wantGelu, 1e-7, "packed + GELU");
    // rows 8 … N−8 read in place from the packed weight
    const n = N - 16;
    const [, wMid] = split(w, [8, n, 8], 0);
    const [, bMid] = split(b, [8, n, 8], 0);
    const slice = linearHalfRows(x, w, 8, n, bMid);
    if (!slice) throw new Error("linearHalfRows declined a packed weight");
    h.dispose();
    const sliceWant = await run(() => linear(x, wMid, bMid));
    assertClose(await slice.read(), sliceWant, 1e-7, `rows 8…${N - 8}`);
    if (linearHalfRows(x, w, 8, n, bMid) !== null) throw new Error("a disposed twin was used");
    for (const t of [x, w, b, wMid, bMid, slice]) t.dispose();
  }
});

Deno.test("the twin is really read: weights that are not f16 change by f16 rounding", async () => {
  const [M, K, N] = [16, 32, 16];
  const x = tensor(rand(M * K, 4), [M, K]), w = tensor(rand(N * K, 5), [N, K]);
  const exact = await run(() => linear(x, w));
  const h = useHalfWeight(w);
  const packed = await run(() => linear(x, w));
  const d = maxAbs(packed, exact);
  if (!(d > 1e-6 && d < 1e-2)) throw new Error(`packed vs f32 weights differ by ${d}`);
  // with a gradient to compute, the f32 weight is used
  w.requiresGrad = true;
  const withGrad = await run(() => linear(x, w));
  assertClose(withGrad, exact, 0, "recorded product");
  w.requiresGrad = false;
  h.dispose();
  assertClose(await run(() => linear(x, w)), exact, 0, "after dispose");
  let msg = "";
  try {
    useHalfWeight(tensor(rand(12, 6), [3, 4]));
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("N % 8")) throw new Error(`an unpackable shape was accepted: ${msg}`);
  x.dispose();
  w.dispose();
});

Deno.test("sampling from the bundled f16 checkpoint: packed weights, same guided ε", async () => {
  const path = "checkpoints/pixart_mnist.safetensors";
  const model = modelFromCheckpoint(readCheckpoint(path), path, true);
  const names = [...model.halfExact];
  if (!names.some((n) => n.endsWith("mlp.fc1.weight"))) {
    throw new Error(`f16 weights not detected: ${names.slice(0, 3)}`);
  }
  const cond = conditionFor(model, ["seven", "2"], []);
  const x = tensor(rand(2 * 32 * 32, 7), [2, 1, 32, 32]);
  const guided = async () => {
    const eps = model.guidedEps(cond, 4.5);
    const out = await run(() => noGrad(() => eps(x, 500)));
    eps.dispose();
    return out;
  };
  const packed = await guided();
  const all = model.halfExact;
  model.halfExact = new Set();
  const plain = await guided();
  model.halfExact = all;
  assertClose(packed, plain, 1e-5, "guided ε, packed vs f32 weights");
  x.dispose();
  model.dispose();
});
