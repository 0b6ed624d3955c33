import {
  Adam,
  type AdamOptions,
  adamW,
  arenaOf,
  backward,
  counters,
  Ema,
  lerpAll,
  type LrDecay,
  matmul,
  newArena,
  packInArena,
  pool,
  sum,
  type Tensor,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import assert from "node:assert/strict";
import { compiledKernelCount } from "../kernels/runtime.ts";
import { assertClose, rand, ready } from "./helpers.ts";

await ready;

// ---- plain-TypeScript reference (f64) ---------------------------------------------------------

class RefAdam {
  m: Float64Array[];
  v: Float64Array[];
  t = 0;
  constructor(public p: Float64Array[], public o: RefOptions) {
    this.m = p.map((x) => new Float64Array(x.length));
    this.v = p.map((x) => new Float64Array(x.length));
  }

  /** One step; returns the global gradient norm before clipping. */
  step(grads: (Float32Array | null)[]): number {
    const { betas: [b1, b2], eps, weightDecay: wd, decoupled, clipNorm } = this.o;
    const t = ++this.t;
    const lrT = refLr(this.o, t);
    let sq = 0;
    for (const g of grads) if (g) { for (const x of g) sq += x * x; }
    const norm = Math.sqrt(sq);
    const c = clipNorm > 0 ? Math.min(1, clipNorm / (norm + 1e-6)) : 1;
    const bc1 = 1 - b1 ** t, bc2 = 1 - b2 ** t;
    grads.forEach((g, k) => {
      if (!g) return;
      const p = this.p[k], m = this.m[k], v = this.v[k];
      for (let i = 0; i < p.length; i++) {
        const gi = g[i] * c + (decoupled ? 0 : wd * p[i]);
        if (decoupled) p[i] *= 1 - lrT * wd;
        m[i] = b1 * m[i] + (1 - b1) * gi;
        v[i] = b2 * v[i] + (1 - b2) * gi * gi;
        p[i] -= (lrT / bc1) * m[i] / (Math.sqrt(v[i]) / Math.sqrt(bc2) + eps);
      }
    });
    return norm;
  }
}

type RefOptions = Required<Omit<AdamOptions, "decay" | "schedule" | "settings">> & {
  decay?: LrDecay;
};

/** The schedule written out case by case: warm-up ramp × (constant, then cosine or line). */
function refLr(o: RefOptions, t: number): number {
  let lr = o.lr;
  const d = o.decay;
  if (d && t > d.start) {
    const p = Math.min(1, (t - d.start) / (d.end - d.start));
    const shape = d.shape === "cosine" ? (1 + Math.cos(Math.PI * p)) / 2 : 1 - p;
    lr = d.minLr + (o.lr - d.minLr) * shape;
  }
  return o.warmupSteps > 0 && t < o.warmupSteps ? (lr * t) / o.warmupSteps : lr;
}

const DEFAULTS: RefOptions = {
  lr: 1e-3,
  betas: [0.9, 0.999],
  eps: 1e-8,
  weightDecay: 0,
  decoupled: false,
  warmupSteps: 0,
  clipNorm: 0,
};

interface RunSpec {
  opts: AdamOptions;
  shapes: number[][];
  steps: number;
  /** gradient of parameter k at step s (null: no gradient this step) */
  grad: (k: number, s: number, n: number) => Float32Array | null;
  returnNorm?: boolean;
  /** how the optimiser is built (default new Adam) */
  make?: (params: Tensor[], opts: AdamOptions) => Adam;
}

function numelOf(shape: number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** Runs the GPU optimiser and the reference side by side and compares everything at the end. */
async function compare(spec: RunSpec, what: string): Promise<void> {
  const init = spec.shapes.map((s, k) => rand(numelOf(s), 5 + k));
  const params = spec.shapes.map((s, k) => {
    const p = tensor(init[k], s).keep();
    p.requiresGrad = true;
    return p;
  });
  const opt = (spec.make ?? ((p, o) => new Adam(p, o)))(params, spec.opts);
  const ref = new RefAdam(init.map((x) => Float64Array.from(x)), { ...DEFAULTS, ...spec.opts });
  const norms: Tensor[] = [];
  const refNorms: number[] = [];
  const readbacks = counters.readbacks;
  let kernelsAfterFirst = 0;
  for (let s = 0; s < spec.steps; s++) {
    const grads = spec.shapes.map((sh, k) => spec.grad(k, s, numelOf(sh)));
    grads.forEach((g, k) => {
      if (g) params[k].grad = tensor(g, spec.shapes[k]).keep();
    });
    const norm = opt.step({ returnNorm: spec.returnNorm });
    if (norm) norms.push(norm);
    opt.zeroGrad();
    for (const p of params) if (p.grad) throw new Error("zeroGrad left a gradient");
    refNorms.push(ref.step(grads));
    if (s === 0) kernelsAfterFirst = compiledKernelCount();
  }
  if (counters.readbacks !== readbacks) throw new Error(`${what}: step() read back from the GPU`);
  if (compiledKernelCount() !== kernelsAfterFirst) {
    throw new Error(`${what}: later steps compiled new kernels`);
  }
  if (opt.stepCount !== spec.steps) throw new Error(`${what}: stepCount ${opt.stepCount}`);
  const st = opt.state;
  for (let k = 0; k < params.length; k++) {
    assertClose(await params[k].read(), ref.p[k], 1e-5, `${what}: param ${k}`);
    assertClose(await st.m[k].read(), ref.m[k], 1e-5, `${what}: m ${k}`);
    assertClose(await st.v[k].read(), ref.v[k], 1e-5, `${what}: v ${k}`);
  }
  if (spec.returnNorm) {
    for (let s = 0; s < spec.steps; s++) {
      const [got] = await norms[s].read();
      assertClose([got], [refNorms[s]], 1e-5, `${what}: gradient norm at step ${s + 1}`);
      norms[s].dispose();
    }
  }
  opt.dispose();
  for (const p of params) p.dispose();
}

/** Gradients whose size changes a lot from step to step (so clipping changes the result). */
function varyingGrad(k: number, s: number, n: number): Float32Array {
  return rand(n, 1000 + 17 * s + k, 0.05 * (1 + ((s * 7) % 5) ** 2));
}

const SHAPES = [[7], [33, 17], [5000]];

Deno.test("Adam matches the reference over several steps", async () => {
  await compare({
    opts: { lr: 1e-2 },
    shapes: SHAPES,
    steps: 6,
    grad: (k, s, n) => rand(n, 100 + 10 * s + k),
  }, "Adam");
});

Deno.test("Adam with L2 weight decay (coupled) matches the reference", async () => {
  await compare({
    opts: { lr: 2e-2, betas: [0.8, 0.99], eps: 1e-6, weightDecay: 0.1 },
    shapes: SHAPES,
    steps: 5,
    grad: (k, s, n) => rand(n, 200 + 10 * s + k, 0.5),
  }, "Adam+L2");
});

Deno.test("AdamW (decoupled decay) with linear warm-up matches the reference", async () => {
  const spec: RunSpec = {
    opts: { lr: 5e-2, weightDecay: 0.05, decoupled: true, warmupSteps: 4 },
    shapes: SHAPES,
    steps: 8,
    grad: (k, s, n) => rand(n, 300 + 10 * s + k),
  };
  await compare(spec, "AdamW+warm-up");
  const opt = new Adam([], spec.opts);
  const lrs = [1, 2, 4, 9].map((t) => opt.lrAt(t));
  assertClose(lrs, [0.0125, 0.025, 0.05, 0.05], 1e-12, "warm-up schedule");
  opt.dispose();
});

Deno.test("adamW, the optimiser the training loops build, decays decoupled; without decay it is Adam", async () => {
  // adamW is not told `decoupled`: the reference is
  const make = (p: Tensor[], { decoupled: _, ...o }: AdamOptions) => adamW(p, o);
  const grad = (k: number, s: number, n: number) => rand(n, 350 + 10 * s + k, 0.5);
  // the reference decays decoupled: coupled L2 decay, which `new Adam` does by default, fails
  await compare({
    opts: { lr: 2e-2, weightDecay: 0.1, decoupled: true, clipNorm: 1 },
    shapes: SHAPES,
    steps: 5,
    grad,
    make,
  }, "adamW with weight decay");
  await compare({ opts: { lr: 2e-2 }, shapes: SHAPES, steps: 5, grad, make }, "adamW without");
});

Deno.test("learning-rate decay after a constant phase matches the reference", async () => {
  for (const shape of ["cosine", "linear"] as const) {
    const spec: RunSpec = {
      opts: { lr: 4e-2, warmupSteps: 2, decay: { shape, start: 3, end: 7, minLr: 1e-2 } },
      shapes: SHAPES,
      steps: 9,
      grad: (k, s, n) => rand(n, 400 + 10 * s + k),
    };
    await compare(spec, `decay ${shape}`);
    const opt = new Adam([], spec.opts);
    // warm-up, the constant phase, the midpoint of the decay, its end and after it
    const got = [1, 3, 5, 7, 9].map((t) => opt.lrAt(t));
    const mid = 2.5e-2; // both shapes pass through the mean at p = 1/2
    assertClose(got, [2e-2, 4e-2, mid, 1e-2, 1e-2], 1e-12, `${shape} schedule`);
    const quarter = opt.lrAt(4);
    const want = shape === "cosine" ? 1e-2 + 3e-2 * (1 + Math.SQRT1_2) / 2 : 1e-2 + 3e-2 * 0.75;
    assertClose([quarter], [want], 1e-12, `${shape} schedule at a quarter`);
    opt.dispose();
  }
  let msg = "";
  try {
    new Adam([], { lr: 1e-3, decay: { shape: "cosine", start: 0, end: 10, minLr: 1e-2 } });
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("minLr")) throw new Error(`a min lr above lr was accepted (${msg})`);
});

Deno.test("global-norm clipping (and the returned norm) match the reference", async () => {
  // a 70 000-element parameter spreads its sum of squares over many partial sums; parameter 1
  // has no gradient on step 3 (skipped, and left out of the norm)
  const shapes = [...SHAPES, [70000]];
  const grad = (k: number, s: number, n: number) =>
    k === 1 && s === 2 ? null : varyingGrad(k, s, n);
  await compare({
    opts: { lr: 1e-2, eps: 1e-3, clipNorm: 1.5, weightDecay: 0.01, decoupled: true },
    shapes,
    steps: 6,
    grad,
    returnNorm: true,
  }, "clipped");
  // the norm alone, no clipping
  await compare({ opts: { lr: 1e-2 }, shapes, steps: 3, grad, returnNorm: true }, "norm only");
});

Deno.test("the clipping check is sensitive: unclipped steps differ from clipped ones", async () => {
  const run = async (clipNorm: number) => {
    const p = tensor(rand(64, 9), [64]).keep();
    const opt = new Adam([p], { lr: 1e-2, eps: 1e-3, clipNorm });
    for (let s = 0; s < 4; s++) {
      p.grad = tensor(varyingGrad(0, s, 64), [64]).keep();
      opt.step();
      opt.zeroGrad();
    }
    const r = await p.read();
    opt.dispose();
    p.dispose();
    return r;
  };
  const a = await run(0), b = await run(0.1);
  let d = 0;
  for (let i = 0; i < a.length; i++) d = Math.max(d, Math.abs(a[i] - b[i]));
  if (!(d > 1e-3)) throw new Error(`clipping changed the parameters by only ${d}`);
});

Deno.test("state save/restore continues exactly; zeroGrad(false) zeroes in place", async () => {
  const opts: AdamOptions = { lr: 3e-2, weightDecay: 0.02, decoupled: true, warmupSteps: 3 };
  const init = SHAPES.map((s, k) => rand(numelOf(s), 40 + k));
  const mk = (data: Float32Array[]) =>
    data.map((d, k) => {
      const p = tensor(d, SHAPES[k]).keep();
      p.requiresGrad = true;
      return p;
    });
  const stepAll = (opt: Adam, ps: Tensor[], s: number) => {
    ps.forEach((p, k) => (p.grad = tensor(rand(p.size, 700 + 10 * s + k), SHAPES[k]).keep()));
    opt.step();
    opt.zeroGrad();
  };
  const a = mk(init);
  const optA = new Adam(a, opts);
  for (let s = 0; s < 3; s++) stepAll(optA, a, s);
  // checkpoint: parameters and optimiser state to the host
  const saved = await optA.readState();
  const savedParams = await Promise.all(a.map((p) => p.read()));
  for (let s = 3; s < 6; s++) stepAll(optA, a, s);

  const b = mk(savedParams);
  const optB = new Adam(b, opts);
  optB.loadState(saved);
  if (optB.stepCount !== 3) throw new Error(`restored stepCount ${optB.stepCount}`);
  for (let s = 3; s < 6; s++) stepAll(optB, b, s);
  for (let k = 0; k < a.length; k++) {
    assertClose(await b[k].read(), await a[k].read(), 0, `restored run, param ${k}`);
  }
  // restoring from live tensors (another optimiser's state) works too
  const optC = new Adam(b, opts);
  optC.loadState(optA.state);
  assertClose(await optC.state.v[2].read(), await optA.state.v[2].read(), 0, "copied state");

  b[0].grad = tensor(rand(b[0].size, 1), SHAPES[0]).keep();
  optC.zeroGrad(false);
  const g = await b[0].grad!.read();
  if (g.some((x) => x !== 0)) throw new Error("zeroGrad(false) did not zero the gradient");
  optC.zeroGrad();
  if (b[0].grad) throw new Error("zeroGrad() kept the gradient");
  for (const o of [optA, optB, optC]) o.dispose();
  for (const p of [...a, ...b]) p.dispose();
});

Deno.test("arenas: packing keeps contents and views; lerpAll over arenas is one dispatch", async () => {
  const shapes = [[3], [70], [2, 5]];
  const data = shapes.map((sh, k) => rand(sh.reduce((a, b) => a * b, 1), 50 + k));
  const ts = data.map((d, k) => tensor(d, shapes[k]).keep());
  const a = packInArena(ts);
  if (!arenaOf(ts) || a.offsets.some((o) => o % 64)) throw new Error("not laid out as an arena");
  for (let k = 0; k < ts.length; k++) assertClose(await ts[k].read(), data[k], 0, `tensor ${k}`);
  // the same tensors, laid out already: not moved again
  if (packInArena(ts).buffer !== a.buffer) throw new Error("an arena was packed twice");
  // y += w·(x − y) over every pair: one dispatch over arenas, the per-tensor result
  const ys = newArena(shapes);
  const w = tensor([0.25], [1]);
  const d0 = counters.dispatches;
  lerpAll(ys.tensors, ts, w);
  if (counters.dispatches - d0 !== 1) {
    throw new Error(`lerpAll took ${counters.dispatches - d0} dispatches`);
  }
  for (let k = 0; k < ts.length; k++) {
    assertClose(await ys.tensors[k].read(), data[k].map((x) => 0.25 * x), 1e-7, `ema ${k}`);
  }
  for (const t of [...ts, ...ys.tensors, w]) t.dispose();
});

Deno.test("Adam: backward fills the gradient arena; a step is three dispatches for any model", async () => {
  const shapes = [[8, 4], [4], [4, 6], [6], [6, 2]];
  const ps = shapes.map((sh, k) => {
    const t = tensor(rand(sh.reduce((a, b) => a * b, 1), 60 + k), sh).keep();
    t.requiresGrad = true;
    return t;
  });
  const opt = new Adam(ps, { lr: 1e-2, clipNorm: 1 });
  const x = tensor(rand(5 * 8, 70), [5, 8]).keep();
  const loss = () =>
    tidy(() => {
      const h = matmul(matmul(x, ps[0], { bias: ps[1] }), ps[2], { bias: ps[3] });
      backward(sum(matmul(h, ps[4])));
    });
  for (let s = 0; s < 3; s++) {
    loss();
    ps.forEach((p, k) => {
      if (p.grad !== p.gradSlot) throw new Error(`parameter ${k}'s gradient is not in its slot`);
    });
    const d0 = counters.dispatches;
    opt.step();
    if (counters.dispatches - d0 !== 3) {
      throw new Error(`a step took ${counters.dispatches - d0} dispatches, not 3`);
    }
    opt.zeroGrad();
  }
  const st = await opt.readState();
  if (st.m.length !== ps.length || st.m.some((m, k) => m.length !== ps[k].size)) {
    throw new Error("readState: wrong pieces");
  }
  assertClose(st.m[2], await opt.state.m[2].read(), 0, "readState matches the live moment");
  opt.dispose();
  for (const t of [...ps, x]) t.dispose();
});

Deno.test("Adam, Ema and arenas give back every byte they took when disposed", () => {
  const before = pool.stats.inUseBytes;
  const ps = [[700, 3], [5], [64, 64]].map((s, k) =>
    tensor(rand(s.reduce((a, b) => a * b, 1), 80 + k), s).keep()
  );
  const withParams = pool.stats.inUseBytes;
  const opt = new Adam(ps, { lr: 1e-2, clipNorm: 1 });
  const ema = new Ema(ps, 0.9);
  const arena = newArena([[3, 3], [1000]]);
  assert.ok(pool.stats.inUseBytes > withParams);
  for (const t of arena.tensors) t.dispose();
  ema.dispose();
  opt.dispose();
  for (const p of ps) p.dispose();
  assert.equal(pool.stats.inUseBytes, before);
});

Deno.test("Adam refuses eps 0 (0/0 where a gradient has always been 0)", () => {
  const p = tensor(new Float32Array(4), [4]).keep();
  assert.throws(
    () => new Adam([p], { lr: 1e-2, eps: 0 }),
    /^Error: Adam: eps = 0 is out of range$/,
  );
  p.dispose();
});
