// The training objective: q(x_t | x0), the ε-MSE and its min-SNR-γ weighting, against plain
// TypeScript.

import assert from "node:assert";
import { backward, mul, tensor } from "../kernels/mod.ts";
import { epsLoss, minSnrWeight, qSample } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { maxAbs, rand, ready } from "./helpers.ts";

await ready;
const S = linearSchedule(1000);

Deno.test("qSample and the (min-SNR weighted) ε loss match a TypeScript reference", async () => {
  const B = 3, per = 8;
  const x0 = rand(B * per, 1), eps = rand(B * per, 2), w = rand(per, 3);
  const t = [5, 400, 950];
  const xt = await qSample(S, tensor(x0, [B, 2, 2, 2]), t, tensor(eps, [B, 2, 2, 2])).read();
  const want = x0.map((v, i) => {
    const a = S.alphasCumprod[t[Math.floor(i / per)]];
    return Math.sqrt(a) * v + Math.sqrt(1 - a) * eps[i];
  });
  assert(maxAbs(xt, want) < 1e-6);
  // "model": x_t scaled per pixel by a learnable weight, so the loss has a gradient to check
  for (const gamma of [0, 5]) {
    const wt = tensor(w, [2, 2, 2]);
    wt.requiresGrad = true;
    const loss = epsLoss(
      S,
      (x) => mul(x, wt),
      tensor(x0, [B, 2, 2, 2]),
      t,
      tensor(eps, [B, 2, 2, 2]),
      gamma,
    );
    let ref = 0;
    const gref = new Float64Array(per);
    for (let b = 0; b < B; b++) {
      const wb = gamma > 0 ? minSnrWeight(S, t[b], gamma) : 1;
      for (let j = 0; j < per; j++) {
        const d = want[b * per + j] * w[j] - eps[b * per + j];
        ref += wb * d * d / (B * per);
        gref[j] += 2 * wb * d * want[b * per + j] / (B * per);
      }
    }
    const got = (await loss.read())[0];
    assert(Math.abs(got - ref) < 1e-5 * Math.max(1, ref), `γ=${gamma}: ${got} vs ${ref}`);
    backward(loss);
    assert(maxAbs(await wt.grad!.read(), gref) < 1e-5, `γ=${gamma}: gradient`);
  }
  // the weight is 1 where SNR ≤ γ and γ/SNR where it is larger
  assert.equal(minSnrWeight(S, 950, 5), 1);
  const snr5 = S.alphasCumprod[5] / (1 - S.alphasCumprod[5]);
  assert(Math.abs(minSnrWeight(S, 5, 5) - 5 / snr5) < 1e-12 && snr5 > 5);
});
