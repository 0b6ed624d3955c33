// Does a text model read its caption at all? Long before samples follow their prompts, the
// ε-prediction error tells: at one timestep, with the same images and noise, the error with each
// image's own caption, with another image's caption, and with the null caption. A model that
// ignores the caption gives three equal errors; the gap (other − own)/other is the share of the
// error that the right caption removes. It is cheap (three forward passes per image, no sampling),
// so the trainer logs it with every evaluation. On the digit model the conditional and the
// unconditional error at t = 500 drew apart from 3% to 8% in the 1,000 steps before its prompt
// accuracy started to rise; an emoji model whose caption embedding had collapsed stayed under 1%
// (docs/RESULTS.md). The gap at one t is not comparable across image sizes: at 64×64 a timestep
// leaves more of an image recoverable from neighbouring pixels than at 32×32, so the caption has
// less error left to remove (the 32×32 emoji model's 15.0% at t = 500 is 5.8% at 64×64 before any
// stage-3 step, 9.9% at the matched t). Compare sizes at the signal-to-noise ratio divided by the
// side's growth squared, SNR/4 when the side doubles (Hoogeboom et al. 2023, "simple diffusion";
// Chen 2023, "On the importance of noise scheduling"): on the linear schedule t = 617 at 64×64
// for t = 500 at 32×32 (docs/RESULTS.md used 618, a step off). A model trained with
// diffusion.snr_shift 4 has that division in its schedule already: compare it at the same t.

import { Generator, mseLoss, noGrad, tensor, tidy } from "../kernels/mod.ts";
import { epsFromOutput, qSample } from "../diffusion/ddpm.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import type { Condition, PixArt } from "../model/pixart.ts";
import { modelSpace } from "../model/config.ts";
import { toModelSpace } from "../model/wavelet.ts";

export interface CaptionGap {
  /** the timestep measured */
  t: number;
  /** images measured */
  n: number;
  /** mean ε-MSE with each image's own caption, another image's caption, the null caption */
  own: number;
  other: number;
  none: number;
  /** (other − own) / other: the share of the error the right caption removes */
  gap: number;
}

export interface CaptionGapOptions {
  /** timestep (default the schedule's middle, 500 of 1,000: noisy enough that the caption
   * decides what is drawn) */
  t?: number;
  /** seed of the noise (default 0) */
  seed?: number;
  /** images per forward pass (default 32) */
  batch?: number;
}

/**
 * The caption gap of a stage-2 `model` on `images` [n, C, S, S] (values in [-1, 1]) with their
 * `captions`; image i's "other" caption is image (i + ⌊n/2⌋ mod n)'s.
 */
export async function captionGap(
  model: PixArt,
  schedule: Schedule,
  images: Float32Array,
  captions: readonly string[],
  o: CaptionGapOptions = {},
): Promise<CaptionGap> {
  const mc = model.config;
  if (mc.stage !== 2) throw new Error("captionGap: the model has no caption (a stage-1 model)");
  const n = captions.length, { channels: C, size: S } = modelSpace(mc), D = C * S * S;
  const S0 = mc.image_size, C0 = mc.in_channels;
  if (n < 2 || images.length !== n * C0 * S0 * S0) {
    throw new Error(
      `captionGap: ${images.length} values for ${n} captions of [${C0}, ${S0}, ${S0}]`,
    );
  }
  // the error in the space the model draws in: a model of Haar bands over all four bands, three
  // of them detail that a caption barely decides, so its gap is not comparable with a pixel model's
  const drawn = toModelSpace(mc, images, n);
  const t = o.t ?? Math.round(schedule.T / 2), B = o.batch ?? 32;
  if (!Number.isInteger(t) || t < 0 || t >= schedule.T) {
    throw new Error(`captionGap: t ${t} is not a timestep of a ${schedule.T}-step schedule`);
  }
  const others = captions.map((_, i) => captions[(i + Math.floor(n / 2)) % n]);
  const noise = new Generator(o.seed ?? 0);
  const sums = { own: 0, other: 0, none: 0 };
  for (let b0 = 0; b0 < n; b0 += B) {
    const b = Math.min(B, n - b0);
    const text = (cs: readonly string[]): Condition => {
      const { tokens, mask } = model.tokenize(cs.slice(b0, b0 + b));
      return { kind: "text", tokens, mask, drop: new Uint8Array(b) };
    };
    const conds = { own: text(captions), other: text(others), none: model.nullCondition(b) };
    const errors = noGrad(() =>
      tidy(() => {
        const x0 = tensor(drawn.subarray(b0 * D, (b0 + b) * D), [b, C, S, S]);
        const eps = noise.normal([b, C, S, S]);
        const ts = new Array(b).fill(t);
        const xt = qSample(schedule, x0, ts, eps);
        // the ε error, whatever the model predicts: at one t the errors of ε, x0 and v differ by
        // a constant factor, so the gap is the same in each (diffusion/ddpm.ts)
        return (["own", "other", "none"] as const).map((k) =>
          mseLoss(epsFromOutput(schedule, xt, model.forward(xt, ts, conds[k]), t), eps)
        );
      })
    );
    const values = await Promise.all(errors.map((e) => e.read()));
    errors.forEach((e) => e.dispose());
    sums.own += values[0][0] * b;
    sums.other += values[1][0] * b;
    sums.none += values[2][0] * b;
  }
  const own = sums.own / n, other = sums.other / n, none = sums.none / n;
  return { t, n, own, other, none, gap: (other - own) / other };
}
