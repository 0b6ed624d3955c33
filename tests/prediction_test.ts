// Prediction types (diffusion/ddpm.ts): a model that outputs the exact target of its type has zero
// loss and gives the sampler the exact ε; the min-SNR weights of the three types are the same
// weight in ε-space; a masked step's loss is the mean over the kept pixels.

import assert from "node:assert/strict";
import { Generator, noGrad, tensor } from "../kernels/mod.ts";
import {
  diffusionLoss,
  epsFromOutput,
  lossWeight,
  minSnrWeight,
  predictionTarget,
  qSample,
} from "../diffusion/ddpm.ts";
import { configSchedule, type Prediction, type Schedule } from "../diffusion/schedule.ts";
import { rand, ready } from "./helpers.ts";

await ready;

const PREDICTIONS: Prediction[] = ["epsilon", "sample", "v_prediction"];
const B = 4, SHAPE = [B, 3, 4, 4];
const N = SHAPE.reduce((a, b) => a * b, 1);

/**
 * The target written out on the host, apart from the code under test: ε, x0 or
 * v = √ᾱ·ε − √(1 − ᾱ)·x0 (Salimans & Ho 2022), per sample's t; under detail_prediction the low band
 * (the first quarter of the channels) predicts s.prediction and the rest s.detailPrediction.
 */
function writtenTarget(
  s: Schedule,
  shape: number[],
  x0: Float32Array,
  eps: Float32Array,
  t: number[],
): Float32Array {
  const C = shape[1], plane = shape.slice(2).reduce((a, b) => a * b, 1);
  return x0.map((x, i) => {
    const b = Math.floor(i / (C * plane)), c = Math.floor(i / plane) % C;
    const kind = s.detailPrediction && c >= C / 4 ? s.detailPrediction : s.prediction;
    const ac = s.alphasCumprod[t[b]];
    return kind === "epsilon"
      ? eps[i]
      : kind === "sample"
      ? x
      : Math.sqrt(ac) * eps[i] - Math.sqrt(1 - ac) * x;
  });
}

/**
 * An oracle model's output, the written-out target: its loss is zero (to rounding), the code's own
 * target agrees, and the ε̂ it gives the sampler at each sample's t is the ε that was added.
 */
async function checkOracle(s: Schedule, shape: number[], label: string) {
  const n = shape.reduce((a, b) => a * b, 1), B = shape[0], per = n / B;
  const t = [0, 17, 500, 999];
  const x0h = rand(n, 3);
  const epsT = new Generator(5).normal(shape);
  const eps = await epsT.read();
  const want = writtenTarget(s, shape, x0h, eps, t);
  const r = noGrad(() => {
    const x0 = tensor(x0h, shape), out = tensor(want, shape);
    const xt = qSample(s, x0, t, epsT);
    return {
      loss: diffusionLoss(s, () => out, { x0, t, eps: epsT }, 5),
      target: predictionTarget(s, x0, t, epsT),
      epsHat: t.map((tb) => epsFromOutput(s, xt, out, tb)),
    };
  });
  assert.ok((await r.loss.read())[0] < 1e-10, `${label}: loss ${(await r.loss.read())[0]}`);
  const got = await r.target.read();
  for (let i = 0; i < n; i++) {
    assert.ok(Math.abs(got[i] - want[i]) < 1e-5 * (1 + Math.abs(want[i])), `${label} target ${i}`);
  }
  // ε̂ from the output at each sample's own t: row b of epsHat[b]
  for (const [b, hat] of (await Promise.all(r.epsHat.map((x) => x.read()))).entries()) {
    for (let i = b * per; i < (b + 1) * per; i++) {
      assert.ok(
        Math.abs(hat[i] - eps[i]) < 2e-3 * (1 + Math.abs(eps[i])),
        `${label} t ${t[b]}: ε̂ ${hat[i]} vs ε ${eps[i]}`,
      );
    }
  }
}

Deno.test("each prediction type: the exact target has zero loss and converts to the exact ε", async () => {
  for (const prediction of PREDICTIONS) {
    await checkOracle(configSchedule({ prediction, snr_shift: 4 }), SHAPE, prediction);
  }
});

Deno.test("min-SNR weights of ε, x0 and v are one weight in ε-space", () => {
  for (const gamma of [0, 1, 5]) {
    for (const t of [0, 10, 300, 700, 999]) {
      const e = configSchedule({ prediction: "epsilon" });
      const snr = e.alphasCumprod[t] / (1 - e.alphasCumprod[t]);
      const wEps = lossWeight(e, t, gamma);
      assert.equal(wEps, gamma > 0 ? minSnrWeight(e, t, gamma) : 1);
      if (gamma === 0) continue;
      // |ε̂ − ε|² = SNR·|x̂0 − x0|² = SNR/(SNR + 1)·|v̂ − v|²
      const wX = lossWeight({ ...e, prediction: "sample" }, t, gamma);
      const wV = lossWeight({ ...e, prediction: "v_prediction" }, t, gamma);
      assert.ok(Math.abs(wX - wEps * snr) <= 1e-12 * Math.max(1, wX));
      assert.ok(Math.abs(wV - wEps * snr / (snr + 1)) <= 1e-12 * Math.max(1, wV));
    }
  }
});

Deno.test("a masked step's loss is the mean over its kept pixels", async () => {
  const s = configSchedule({});
  const t = [100, 200, 300, 400];
  const keep = Uint8Array.from({ length: N }, (_, i) => (i * 7) % 3 === 0 ? 1 : 0);
  const r = noGrad(() => {
    const x0 = tensor(rand(N, 3), SHAPE), eps = new Generator(5).normal(SHAPE);
    const out = tensor(rand(N, 8), SHAPE);
    // an ε model whose output is `out` whatever its input
    return { loss: diffusionLoss(s, () => out, { x0, t, eps }, 0, keep), out, eps };
  });
  const o = await r.out.read(), e = await r.eps.read();
  let sum = 0, n = 0;
  for (let i = 0; i < N; i++) {
    if (keep[i]) {
      sum += (o[i] - e[i]) ** 2;
      n++;
    }
  }
  const masked = (await r.loss.read())[0], full = sum / n;
  assert.ok(Math.abs(masked - full) < 1e-5 * full, `${masked} vs ${full}`);
});

// a model of Haar bands: 3 low-band channels, then 9 of detail (model/wavelet.ts)
const BANDS = [B, 12, 2, 2], NB = BANDS.reduce((a, b) => a * b, 1);

Deno.test("detail_prediction: each band's exact target has zero loss and converts to the exact ε", async () => {
  for (const prediction of PREDICTIONS) {
    for (const detail of PREDICTIONS.filter((p) => p !== prediction)) {
      const s = configSchedule({ prediction, detail_prediction: detail });
      assert.equal(s.detailPrediction, detail);
      await checkOracle(s, BANDS, `${prediction}/${detail}`);
    }
  }
});

Deno.test("detail_prediction: any output's loss is the min-SNR ε loss of the ε̂ it gives, masked or not", async () => {
  const s = configSchedule({ prediction: "epsilon", detail_prediction: "sample" });
  const t = [3, 150, 500, 990], gamma = 5;
  const keep = Uint8Array.from({ length: NB }, (_, i) => (i * 5) % 3 === 0 ? 1 : 0);
  for (const k of [undefined, keep]) {
    const r = noGrad(() => {
      const x0 = tensor(rand(NB, 3), BANDS), eps = new Generator(5).normal(BANDS);
      const out = tensor(rand(NB, 9), BANDS), xt = qSample(s, x0, t, eps);
      return {
        loss: diffusionLoss(s, () => out, { x0, t, eps }, gamma, k),
        eps,
        epsHat: t.map((tb) => epsFromOutput(s, xt, out, tb)),
      };
    });
    const e = await r.eps.read(), per = NB / B;
    const hats = await Promise.all(r.epsHat.map((x) => x.read()));
    let sum = 0, n = 0;
    for (let i = 0; i < NB; i++) {
      if (k && !k[i]) continue;
      const b = Math.floor(i / per);
      sum += minSnrWeight(s, t[b], gamma) * (hats[b][i] - e[i]) ** 2;
      n++;
    }
    const got = (await r.loss.read())[0], want = sum / n;
    assert.ok(Math.abs(got - want) < 1e-3 * want, `${k ? "masked" : "whole"}: ${got} vs ${want}`);
  }
});

Deno.test("diffusion.detail_prediction needs a model of Haar bands", async () => {
  const { parseConfigObject } = await import("../io/config_schema.ts");
  assert.throws(
    () => parseConfigObject({ diffusion: { detail_prediction: "sample" } }, "test"),
    /'diffusion\.detail_prediction' is for a model of Haar bands: set 'model\.wavelet' to haar/,
  );
});
