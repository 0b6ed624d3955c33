import {
  Adam,
  backward,
  geluTanh,
  Generator,
  linear,
  mean,
  mul,
  pool,
  scale,
  silu,
  sub,
  type Tensor,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import { ready } from "./helpers.ts";

await ready;

interface Mlp {
  w1: Tensor;
  b1: Tensor;
  w2: Tensor;
  b2: Tensor;
}

/** A 1 → hidden → 1 MLP with a Gaussian init drawn on the GPU. */
function makeMlp(hidden: number, gen: Generator): Mlp {
  const leaf = (t: Tensor) => {
    t.keep();
    t.requiresGrad = true;
    return t;
  };
  return tidy(() => ({
    w1: leaf(scale(gen.normal([hidden, 1]), 1.5)),
    b1: leaf(scale(gen.uniform([hidden]), 4, -2)),
    w2: leaf(scale(gen.normal([1, hidden]), 0.3 / Math.sqrt(hidden))),
    b2: leaf(tensor([0], [1])),
  }));
}

const params = (m: Mlp) => [m.w1, m.b1, m.w2, m.b2];

function mseLoss(m: Mlp, x: Tensor, y: Tensor, act: (t: Tensor) => Tensor): Tensor {
  const h = act(linear(x, m.w1, m.b1));
  const d = sub(linear(h, m.w2, m.b2), y);
  return mean(mul(d, d));
}

Deno.test("an MLP (linear → silu → linear) learns y = sin(x) with Adam", async () => {
  const n = 64;
  const xs = Float32Array.from({ length: n }, (_, i) => -Math.PI + (2 * Math.PI * i) / (n - 1));
  const x = tensor(xs, [n, 1]).keep();
  const y = tensor(xs.map(Math.sin), [n, 1]).keep();
  const m = makeMlp(32, new Generator(7));
  const opt = new Adam(params(m), { lr: 2e-2, warmupSteps: 10 });
  const step = (wantLoss: boolean) =>
    tidy(() => {
      const loss = mseLoss(m, x, y, silu);
      backward(loss);
      opt.step();
      opt.zeroGrad();
      return wantLoss ? loss : null;
    });
  const steps = 300;
  const first = step(true)!;
  for (let s = 1; s < steps - 1; s++) step(false);
  const last = step(true)!;
  const [l0] = await first.read();
  const [l1] = await last.read();
  first.dispose();
  last.dispose();
  console.log(`sin regression: loss ${l0.toFixed(4)} → ${l1.toExponential(2)} in ${steps} steps`);
  if (!(l0 > 0.1)) throw new Error(`initial loss ${l0} is suspiciously low`);
  if (!(l1 < 2e-3 && l1 < l0 / 50)) throw new Error(`loss went from ${l0} only to ${l1}`);
  opt.dispose();
  for (const t of [x, y, ...params(m)]) t.dispose();
});

Deno.test("50 training steps in tidy(): the buffer pool stops growing", async () => {
  const gen = new Generator(123);
  const m = makeMlp(48, gen);
  const opt = new Adam(params(m), { lr: 1e-2, clipNorm: 1, weightDecay: 1e-2, decoupled: true });
  const history: { allocated: number; buffers: number; inUse: number }[] = [];
  let lastLoss: Tensor | null = null;
  for (let s = 0; s < 50; s++) {
    lastLoss?.dispose();
    lastLoss = tidy(() => {
      // a fresh random minibatch each step, drawn on the GPU
      const x = scale(gen.uniform([32, 1]), 2 * Math.PI, -Math.PI);
      const y = mul(x, x);
      const loss = mseLoss(m, x, y, geluTanh);
      backward(loss);
      opt.step({ returnNorm: true }); // the norm tensor is left to the scope
      opt.zeroGrad();
      return loss;
    });
    const st = pool.stats;
    history.push({ allocated: st.allocatedBytes, buffers: st.buffers, inUse: st.inUseBytes });
  }
  const [l] = await lastLoss!.read();
  lastLoss!.dispose();
  if (!Number.isFinite(l)) throw new Error(`loss ${l}`);
  const settled = history[4];
  for (let s = 5; s < history.length; s++) {
    const h = history[s];
    if (h.allocated !== settled.allocated || h.buffers !== settled.buffers) {
      throw new Error(
        `pool grew at step ${s + 1}: ${settled.buffers} buffers / ${settled.allocated} B → ` +
          `${h.buffers} / ${h.allocated} B`,
      );
    }
    if (h.inUse !== settled.inUse) {
      throw new Error(`in-use bytes changed at step ${s + 1}: ${settled.inUse} → ${h.inUse}`);
    }
  }
  console.log(
    `pool after 5 and 50 steps: ${settled.buffers} buffers, ${settled.allocated} B allocated`,
  );
  opt.dispose();
  for (const t of params(m)) t.dispose();
});
