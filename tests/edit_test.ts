// Image-to-image and inpainting, by exact properties: the samplers run part of their path and pick
// up where a full run was; RePaint's path is diffusers' schedule; strength 0 returns the start
// image and inpainting keeps the known region, both to the bit (and so after 8-bit rounding), with
// every sampler; bad options are one-line errors.

import assert from "node:assert/strict";
import { pool, type Tensor, tensor, tidy } from "../kernels/mod.ts";
import { linearSchedule, timePoints } from "../diffusion/schedule.ts";
import { defaultJump, repaintPath, samplerTimes, strengthStart } from "../diffusion/edit.ts";
import {
  sampleAncestral,
  sampleDdim,
  sampleDpmSolver,
  type SamplerName,
  SAMPLERS,
} from "../diffusion/samplers.ts";
import { conditionFor } from "../diffusion/generate.ts";
import { loadPipeline } from "../diffusion/load_pipeline.ts";
import { toByte } from "../io/pixels.ts";
import { maxAbs, rand, ready } from "./helpers.ts";

await ready;

/** diffusers' RePaintScheduler.set_timesteps, transcribed: the steps-left counts it visits. */
function diffusersRepaint(N: number, jump: number, resample: number): number[] {
  const jumps = new Map<number, number>();
  for (let j = 0; j < N - jump; j += jump) jumps.set(j, resample - 1);
  const ts: number[] = [];
  let t = N;
  while (t >= 1) {
    t -= 1;
    ts.push(t);
    if ((jumps.get(t) ?? 0) > 0) {
      jumps.set(t, jumps.get(t)! - 1);
      for (let i = 0; i < jump; i++) ts.push(++t);
    }
  }
  return ts;
}

Deno.test("repaintPath walks diffusers' RePaint schedule; strengthStart counts as diffusers' img2img", () => {
  for (
    const [S, start, jump, resample] of [
      [4, 0, 1, 2],
      [20, 0, 3, 4],
      [25, 7, 2, 3],
      [10, 4, 10, 5],
      [6, 6, 1, 3],
    ]
  ) {
    const path = repaintPath(S, start, jump, resample);
    // the points visited, as steps left (S − index) after the start
    const visited: number[] = [];
    for (const m of path) {
      const dir = m.to > m.from ? 1 : -1;
      for (let k = m.from + dir; dir * (m.to - k) >= 0; k += dir) visited.push(S - k);
    }
    assert.deepEqual(
      visited,
      diffusersRepaint(S - start, jump, resample),
      `${[S, start, jump, resample]}`,
    );
    assert.equal(path.at(-1)!.to, S, "it ends at the output");
    for (let i = 1; i < path.length; i++) {
      assert.equal(path[i].from, path[i - 1].to, "a continuous path");
    }
    for (const m of path) {
      assert.equal(m.kind === "sample", m.to >= m.from, "sampling goes down in time");
    }
  }
  assert.deepEqual(repaintPath(20, 5, 2, 1), [{ kind: "sample", from: 5, to: 20 }]);
  assert.equal(strengthStart(20, 0), 20);
  assert.equal(strengthStart(20, 1), 0);
  assert.equal(strengthStart(20, 0.3), 14, "0.3 of 20 steps is 6");
  assert.equal(strengthStart(1000, 0.35), 650);
  assert.throws(() => strengthStart(20, 1.5), /strength must be in \[0, 1\], got 1.5/);
  assert.throws(() => repaintPath(20, 0, 2, 0), /resample must be an integer ≥ 1/);
  assert.deepEqual(samplerTimes("ddim", 1000, 4), [999, 749, 500, 250, -1]);
  assert.deepEqual(samplerTimes("ancestral", 3, 99), [2, 1, 0, -1]);
});

Deno.test("samplers run part of their path: from a full run's midpoint they end where it ends", async () => {
  const pipe = await loadPipeline("digits");
  const { model } = pipe;
  // 12 steps of the default βs would pass β = 1 (ᾱ < 0, every sample NaN): scale beta_end down
  const s = linearSchedule(1000), small = linearSchedule(12, 1e-4, 0.011);
  const before = pool.stats.inUseBytes;
  const eps = model.guidedEps(conditionFor(model, ["seven", "3"], []), 2.5);
  const xT = tensor(rand(2 * 32 * 32, 4), [2, 1, 32, 32]).keep();
  // the x after each step of a run, read back; the run's result
  const trace = async (f: (onStep: (st: { x: Tensor }) => void) => Tensor) => {
    const xs: Promise<Float32Array>[] = [];
    const out = f((st) => xs.push(st.x.read()));
    const r = { xs: await Promise.all(xs), out: await out.read() };
    out.dispose();
    return r;
  };
  const at = (v: Float32Array) => tensor(v, [2, 1, 32, 32]).keep();
  const z = (t: number) => tensor(rand(2 * 32 * 32, 100 + t), [2, 1, 32, 32]);
  const tau6 = timePoints(1000, 6);
  const runs = {
    ddim: (x: Tensor, start: number, end: number, onStep: (st: { x: Tensor }) => void) =>
      sampleDdim(s, eps, x, { timePoints: tau6.slice(start, end + 1), onStep }),
    ancestral: (x: Tensor, start: number, end: number, onStep: (st: { x: Tensor }) => void) =>
      sampleAncestral(small, eps, x, { noise: z, from: 11 - start, to: 12 - end, onStep }),
  };
  for (const [name, run] of Object.entries(runs)) {
    const S = name === "ddim" ? 6 : 12;
    const full = await trace((onStep) => run(xT, 0, S, onStep));
    assert.ok(full.out.every(Number.isFinite), `${name}: a finite result to compare`);
    const mid = at(full.xs[2]);
    const tail = await trace((onStep) => run(mid, 3, S, onStep));
    assert.deepEqual(tail.out, full.out, `${name}: from step 3 on`);
    // and in two pieces, the second from the first's result
    const head = await trace((onStep) => run(xT, 0, 2, onStep));
    const rest = at(head.out);
    const tail2 = await trace((onStep) => run(rest, 2, S, onStep));
    assert.deepEqual(tail2.out, full.out, `${name}: 0 … 2, then 2 … end`);
    for (const t of [mid, rest]) t.dispose();
  }
  // a multistep solver starts again at first order, which is DDIM's step
  const fromMid = at(rand(2 * 32 * 32, 7));
  const part = { timePoints: tau6.slice(2, 4) };
  const d = tidy(() => sampleDdim(s, eps, fromMid, part));
  const p = tidy(() => sampleDpmSolver(s, eps, fromMid, part));
  assert.ok(maxAbs(await d.read(), await p.read()) < 1e-4, "DPM-Solver++'s first step is DDIM's");
  for (const t of [d, p, fromMid]) t.dispose();
  // constrain sees every step's x at its new time and replaces it; the ancestral output is at −1
  const fill = (x: Tensor) => tensor(new Float32Array(x.size).fill(0.25), x.shape);
  const seen: number[] = [];
  const constrain = (x: Tensor, t: number) => (seen.push(t), t <= 0 ? fill(x) : x);
  const outs = [
    tidy(() => sampleDdim(s, eps, xT, { timePoints: timePoints(1000, 4).slice(1), constrain })),
    tidy(() => sampleAncestral(small, eps, xT, { noise: z, from: 2, constrain })),
  ];
  assert.deepEqual(seen, [500, 250, 0, 1, 0, -1]);
  for (const o of outs) {
    assert.ok((await o.read()).every((v) => v === 0.25), "the replacement is the result");
    o.dispose();
  }
  xT.dispose();
  eps.dispose();
  assert.equal(pool.stats.inUseBytes, before, "bytes in use after the runs");
  pipe.dispose();
});

/** n digit-model-sized images as 8-bit values in [-1, 1], as a PNG file would give. */
function byteImages(n: number, seed: number): Float32Array {
  return rand(n * 32 * 32, seed).map((v) => toByte(v) / 255 * 2 - 1);
}

Deno.test("strength 0 returns the start image, and inpainting keeps the known region, with every sampler", async () => {
  const pipe = await loadPipeline("digits");
  const n = 3, per = 32 * 32;
  const init = byteImages(n, 11);
  const mask = new Float32Array(per).map((_, i) => (i % 32 < 16 ? 1 : 0)); // left half repainted
  const before = pool.stats.inUseBytes;
  for (const sampler of SAMPLERS as readonly SamplerName[]) {
    const o = { sampler, steps: 4, seed: 2 };
    const back = await pipe.generate(["seven", "3", "one"], { ...o, initImage: init, strength: 0 });
    assert.deepEqual(back, init, `${sampler}: strength 0`);
    // one image for every sample, at a strength too small to run a step
    if (sampler !== "ancestral") {
      const first = init.subarray(0, per);
      const one = await pipe.generate(["seven", "3"], { ...o, initImage: first, strength: 0.2 });
      assert.deepEqual(one, Float32Array.from([...first, ...first]), `${sampler}: no step to run`);
    }
    for (const resample of sampler === "ancestral" ? [1] : [1, 2]) {
      const out = await pipe.generate(["seven", "3", "one"], {
        ...o,
        initImage: init,
        mask,
        resample,
        ...(resample > 1 && { jump: 1 }),
        ...(sampler === "ancestral" ? { strength: 0.02 } : {}),
      });
      let kept = 0, changed = 0;
      for (let i = 0; i < out.length; i++) {
        if (mask[i % per]) changed += Number(toByte(out[i]) !== toByte(init[i]));
        else kept += Number(out[i] === init[i]);
      }
      assert.equal(
        kept,
        out.length / 2,
        `${sampler}, resample ${resample}: every known pixel kept`,
      );
      assert.ok(
        changed > out.length / 4,
        `${sampler}: the masked half is repainted (${changed} changed)`,
      );
    }
  }
  assert.equal(pool.stats.inUseBytes, before, "bytes in use after the edits");
  pipe.dispose();
});

Deno.test("edit options: one-line errors for what does not fit", async () => {
  const pipe = await loadPipeline("digits");
  const per = 32 * 32;
  const img = byteImages(1, 3);
  const bad: [Record<string, unknown>, RegExp][] = [
    [{ mask: new Float32Array(per) }, /^mask needs a start image \(initImage, --init-image\)$/],
    [{ strength: 0.5 }, /^strength needs a start image/],
    [
      { initImage: new Float32Array(10) },
      /^initImage has 10 values: give \[1, 32, 32\] \(1024\) for every sample or \[2, 1, 32, 32\] \(2048\), the model's size$/,
    ],
    [{ initImage: img, mask: new Float32Array(7) }, /^mask has 7 values: give \[32, 32\]/],
    [{ initImage: img, resample: 2 }, /^resample and jump are RePaint's: they need a mask$/],
    [{ initImage: img, strength: -0.1 }, /^strength must be in \[0, 1\], got -0.1$/],
    [{ initImage: img.map((v, i) => (i ? v : NaN)) }, /^initImage has values that are not finite$/],
    [
      { initImage: img, mask: new Float32Array(per), resample: 1.5 },
      /^resample must be an integer ≥ 1, got 1.5$/,
    ],
    [
      { initImage: img, mask: new Float32Array(per), resample: 2, jump: 1000 },
      /^jump 1000 must be below the \d+ sampler steps that run: lower it, or raise the strength or the steps$/,
    ],
    [
      { initImage: img, mask: new Float32Array(per), jump: 2 },
      /^jump is how far resample goes back: give resample 2 or more$/,
    ],
    [
      { initImage: img, mask: new Float32Array(per), resample: 2, strength: 0.01 },
      /^resample 2 needs at least 2 sampler steps to run, and 0 run: raise the strength or the steps, or set resample 1$/,
    ],
  ];
  for (const [o, re] of bad) {
    assert.throws(
      () => pipe.generate(["seven", "3"], o),
      (e: Error) => re.test(e.message),
      JSON.stringify(Object.keys(o)),
    );
  }
  pipe.dispose();
});

Deno.test("the default jump: RePaint's 10 of 250 steps, shorter than the steps that run", () => {
  assert.equal(defaultJump(250), 10);
  assert.equal(defaultJump(20), 1);
  assert.equal(defaultJump(100, 3), 2); // 4 of 100, but 3 run: going back 2 still resamples
  assert.equal(defaultJump(250, 5), 4);
  assert.equal(defaultJump(20, 1), 1); // nothing to go back over: the caller refuses resampling
});
