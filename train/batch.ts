// One training step's batch and its loss, shared by the trainer, its dry run and the benchmark:
// everything random about a step — images, timesteps, dropped captions, drop-path and masked
// tokens — is drawn from the run seed and the step alone, so a resumed run draws what an
// uninterrupted one would (docs/spec.md §5).

import { Generator, type Tensor, tensor } from "../kernels/mod.ts";
import type { Config } from "../io/config_schema.ts";
import { gatherBatch } from "../io/image_set.ts";
import { mixSeed, mulberry32 } from "../kernels/host_random.ts";
import { type ModelConfig, modelSpace, numTokens } from "../model/config.ts";
import { toModelSpace } from "../model/wavelet.ts";
import type { Condition, PixArt, TokenMask } from "../model/pixart.ts";
import { diffusionLoss } from "../diffusion/ddpm.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import type { TrainingData } from "./data.ts";

/** What one step trains on. */
export interface StepBatch {
  /** images [B, C, S, S] in [-1, 1] */
  images: Float32Array;
  /** the timestep of each image */
  t: Int32Array;
  cond: Condition;
  /** drop-path multipliers, per block and branch (self-attention 0, MLP 1), or null */
  dropKeep: Float32Array[] | null;
  /** the tokens that run through the early blocks (masked training), or null for all */
  mask: TokenMask | null;
  /** seed of the Philox noise ε */
  noiseSeed: number;
}

/**
 * The batch of the step after `step` done steps: data-set indices `idx` (the batcher's), and the
 * settings in force at that step (`cfg` with its phases applied: configAt).
 */
export function drawBatch(
  cfg: Config,
  mc: ModelConfig,
  model: PixArt,
  data: TrainingData,
  schedule: Schedule,
  idx: Int32Array,
  step: number,
): StepBatch {
  const { images, labels } = gatherBatch(data.set, idx);
  const caption = (b: number, rng: () => number) =>
    data.captionOf(idx[b], rng, cfg.data.numeral_fraction);
  return drawStep(cfg, mc, model, schedule, step, { images, labels, caption });
}

/** The images a step trains on [B, C, S, S], their class labels, and how to caption image b. */
export interface StepImages {
  images: Float32Array;
  labels: Int32Array;
  /** the caption of image b (stage 2), drawn with the step's `rng` where it is drawn at all */
  caption: (b: number, rng: () => number) => string;
}

/**
 * Everything random about step `step` on the images `x` (a batch of the data set, or the
 * benchmark's random images): timesteps, dropped conditions, captions, drop-path multipliers,
 * masked tokens and the noise seed, drawn from the run seed and the step alone.
 */
export function drawStep(
  cfg: Config,
  mc: ModelConfig,
  model: PixArt,
  schedule: Schedule,
  step: number,
  x: StepImages,
): StepBatch {
  const B = x.labels.length;
  const rng = mulberry32(mixSeed(cfg.train.seed, step, 0x5eed));
  const t = Int32Array.from({ length: B }, () => Math.floor(rng() * schedule.T));
  const drop = Uint8Array.from({ length: B }, () => (rng() < cfg.diffusion.p_uncond ? 1 : 0));
  let cond: Condition;
  if (mc.stage === 1) {
    cond = {
      kind: "class",
      labels: Int32Array.from(x.labels, (l, b) => (drop[b] ? mc.num_classes : l)),
    };
  } else {
    const prompts = Array.from({ length: B }, (_, b) => x.caption(b, rng));
    cond = { kind: "text", ...model.tokenize(prompts), drop };
  }
  const keepP = 1 - cfg.model.drop_path;
  const dropKeep = cfg.model.drop_path > 0
    ? Array.from(
      { length: mc.depth * 2 },
      () => Float32Array.from({ length: B }, () => (rng() < keepP ? 1 / keepP : 0)),
    )
    : null;
  const mask = cfg.train.mask_ratio > 0
    ? drawTokenMask(
      mc,
      B,
      cfg.train.mask_ratio,
      cfg.train.mask_decoder_blocks,
      mixSeed(cfg.train.seed, step, 0x3a5c),
    )
    : null;
  return {
    images: x.images,
    t,
    cond,
    dropKeep,
    mask,
    noiseSeed: mixSeed(cfg.train.seed, step, 0xe95),
  };
}

/**
 * A random subset of round((1 − ratio)·N) tokens per image, in increasing order (MaskDiT draws
 * a fresh mask per image and step), run through all but the last `decoderBlocks` blocks.
 */
export function drawTokenMask(
  mc: ModelConfig,
  B: number,
  ratio: number,
  decoderBlocks: number,
  seed: number,
): TokenMask {
  const N = numTokens(mc);
  const K = Math.max(1, Math.round((1 - ratio) * N));
  if (decoderBlocks >= mc.depth) {
    throw new Error(
      `train.mask_decoder_blocks (${decoderBlocks}) must be below model.depth (${mc.depth}) ` +
        `for masked training`,
    );
  }
  const rng = mulberry32(seed);
  const keep = new Int32Array(B * K);
  const order = Int32Array.from({ length: N }, (_, i) => i);
  for (let b = 0; b < B; b++) {
    // a partial Fisher–Yates shuffle: the first K of a random permutation
    for (let i = 0; i < K; i++) {
      const j = i + Math.floor(rng() * (N - i));
      [order[i], order[j]] = [order[j], order[i]];
    }
    keep.set(order.slice(0, K).sort(), b * K);
    order.sort();
  }
  return { keep, perImage: K, blocks: mc.depth - decoderBlocks };
}

/**
 * Which pixels of [B, C, S, S] the kept tokens cover (1) and which they do not (0): the loss of a
 * masked step counts the kept tokens only.
 */
export function keptPixels(mc: ModelConfig, mask: TokenMask, B: number): Uint8Array {
  const { channels: C, size: S } = modelSpace(mc), p = mc.patch_size, g = S / p;
  const out = new Uint8Array(B * C * S * S);
  for (let b = 0; b < B; b++) {
    for (let k = 0; k < mask.perImage; k++) {
      const tok = mask.keep[b * mask.perImage + k];
      const y0 = Math.floor(tok / g) * p, x0 = (tok % g) * p;
      for (let c = 0; c < C; c++) {
        for (let y = y0; y < y0 + p; y++) {
          out.fill(1, ((b * C + c) * S + y) * S + x0, ((b * C + c) * S + y) * S + x0 + p);
        }
      }
    }
  }
  return out;
}

/** The loss closure of one step (recorded on the tape when called inside trainStep). */
export function batchLoss(
  cfg: Config,
  mc: ModelConfig,
  model: PixArt,
  schedule: Schedule,
  b: StepBatch,
): () => Tensor {
  const B = b.t.length, { channels: C, size: S } = modelSpace(mc);
  const x0 = toModelSpace(mc, b.images, B);
  const keep = b.mask ? keptPixels(mc, b.mask, B) : undefined;
  return () =>
    diffusionLoss(
      schedule,
      (xt, tt) =>
        model.forward(xt, tt, b.cond, {
          dropPathKeep: b.dropKeep ? (i, br) => tensor(b.dropKeep![i * 2 + br], [B]) : undefined,
          mask: b.mask ?? undefined,
          checkpointBlocks: cfg.train.checkpoint_blocks,
        }),
      {
        x0: tensor(x0, [B, C, S, S]),
        t: b.t,
        eps: new Generator(b.noiseSeed).normal([B, C, S, S]),
      },
      cfg.diffusion.min_snr_gamma,
      keep,
    );
}
