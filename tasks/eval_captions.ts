// `deno task eval` on a text-conditioned model of a captioned image folder (eval/caption_eval.ts):
// K samples for each of N seeded training captions, scored by the folder's classifier — class
// and category accuracy, caption recall@1 and @5, FID beside its floor — at one guidance scale
// or a sweep; eval.json, one grid per scale and its captions beside it.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deviceInfo, pool } from "../kernels/mod.ts";
import { writeImageGrid } from "../io/png.ts";
import { loadSource } from "../io/data.ts";
import { gatherBatch, prepareImages } from "../io/image_set.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import type { PixArt } from "../model/pixart.ts";
import { halfWeightCount } from "../model/half_weights.ts";
import {
  type CaptionEval,
  type CaptionEvalResult,
  evaluateCaptions,
  prepareCaptionEval,
} from "../eval/caption_eval.ts";
import { type CaptionGap, captionGap } from "../eval/caption_gap.ts";
import { gridName, progressBar, samplerText, type SamplingRun } from "./cli.ts";
import { markdown, pct } from "./table.ts";

export interface CaptionEvalRun {
  model: PixArt;
  schedule: Schedule;
  /** the checkpoint as eval.json records it */
  checkpoint: { path: string; step: number; weights: string };
  /** the first words of the summary line ("PATH: stage 2, step N, EMA weights") */
  describe: string;
  source: string;
  holdout: number;
  splitSeed: number;
  /** --label-field; absent: the evaluation's default */
  labelField?: string;
  /** the training config's data.label_field and data.skip_bad_images */
  configLabelField?: string;
  skipBadImages?: boolean;
  /** the run's data.truncate_captions: long captions are cut to the model's text limit */
  truncateCaptions?: boolean;
  captions: number;
  /** spread each category's captions evenly over its classes */
  evenClasses: boolean;
  perCaption: number;
  /** each sampler, steps and guidance scale to evaluate at */
  runs: SamplingRun[];
  seed: number;
  interval: [number, number] | null;
  /** timesteps to measure the caption gap at, on the evaluation captions' own images */
  gapTimesteps: number[];
  outDir: string;
}

/** Prepares, evaluates each run, writes eval.json and the grids, prints the tables. */
export async function runCaptionEval(r: CaptionEvalRun): Promise<void> {
  const c = r.model.config;
  const ref = await prepareCaptionEval(r.source, {
    channels: c.in_channels,
    holdout: r.holdout,
    splitSeed: r.splitSeed,
    labelField: r.labelField,
    configLabelField: r.configLabelField,
    skipBadImages: r.skipBadImages,
    ...(r.truncateCaptions && { truncateCaptionsTo: c.text_len }),
    captions: r.captions,
    evenClasses: r.evenClasses,
    perCaption: r.perCaption,
    log: (s) => console.error(s),
  });
  try {
    const total = ref.captions.length * r.perCaption;
    console.error(
      `${r.describe}; ${total} samples per setting (${r.perCaption} for each of ` +
        `${ref.captions.length} captions), ${[...new Set(r.runs.map(samplerText))].join(", ")}, ` +
        `on ${deviceInfo().adapter}`,
    );
    console.error(
      `classifier ${ref.classifierPath}: ${ref.labelNames.length} '${ref.labelField}' ` +
        `classes, held-out accuracy ${pct(ref.heldOutAccuracy)}; FID reference: ${ref.real.n} ` +
        `held-out images, the floor beside it: ${ref.real.n} training images; the captions' ` +
        `own images moved by a pixel reach class accuracy ` +
        `${pct(ref.realHit.reduce((s, h) => s + h, 0) / ref.realHit.length)}, recall@1 ` +
        `${pct(ref.realRecall[0])}, @5 ${pct(ref.realRecall[1])}`,
    );
    mkdirSync(r.outDir, { recursive: true });
    const t0 = performance.now();
    const gaps = await captionGaps(r, ref);
    const results: CaptionEvalResult[] = [];
    const bySampler = new Set(r.runs.map(samplerText)).size > 1;
    for (const run of r.runs) {
      const w = run.guidance;
      const label = bySampler ? `${samplerText(run)}, guidance ${w}` : `guidance ${w}`;
      const { result, images, prompts } = await evaluateCaptions(r.model, r.schedule, ref, {
        ...run,
        guidanceInterval: r.interval,
        seed: r.seed,
        onProgress: (done, all) => progressBar(done, all, label, t0),
      });
      results.push(result);
      writeGrid(r.outDir, gridName(run, r.runs), images, prompts, r.perCaption, r.model);
      console.error(`\n${scaleTable([result])}`);
    }
    const report = {
      checkpoint: r.checkpoint.path,
      step: r.checkpoint.step,
      weights: r.checkpoint.weights,
      // the linear weights sampling read as f16 (--precision): 0 for f32 throughout
      f16_weights: halfWeightCount(r.model),
      data: r.source,
      classifier: {
        path: ref.classifierPath,
        label_field: ref.labelField,
        classes: ref.labelNames.length,
        held_out_accuracy: ref.heldOutAccuracy,
      },
      category_field: ref.categoryField,
      per_caption: r.perCaption,
      captions_spread: r.evenClasses ? "even over classes" : "in proportion to images",
      captions: ref.captions.map((e) => e.caption),
      seconds: (performance.now() - t0) / 1000,
      peak_gpu_mb: pool.stats.peakInUseBytes / 2 ** 20,
      ...(gaps.length ? { caption_gap: gaps } : {}),
      results,
    };
    writeFileSync(join(r.outDir, "eval.json"), JSON.stringify(report, null, 2) + "\n");
    console.log(results.length > 1 ? scaleTable(results) : categoryTable(results[0]));
    console.error(
      `wrote ${join(r.outDir, "eval.json")} and ${results.length} grid(s) in ${r.outDir}; ` +
        `${report.seconds.toFixed(0)} s, peak GPU memory ${report.peak_gpu_mb.toFixed(0)} MB`,
    );
  } finally {
    ref.dispose();
  }
}

/**
 * The caption gap at each of r.gapTimesteps, on the evaluation captions' own images read at the
 * model's size, printed as they come. Across image sizes compare it at equal SNR per pixel count,
 * not at equal t (eval/caption_gap.ts).
 */
async function captionGaps(r: CaptionEvalRun, ref: CaptionEval): Promise<CaptionGap[]> {
  if (!r.gapTimesteps.length) return [];
  const c = r.model.config;
  const set = await loadSource(r.source, {
    size: c.image_size,
    channels: c.in_channels,
    labelField: r.configLabelField,
    skipBadImages: r.skipBadImages,
    log: (s) => console.error(s),
  });
  const { images } = gatherBatch(
    prepareImages(set, c.image_size),
    ref.captions.map((e) => e.image),
  );
  const captions = ref.captions.map((e) => e.caption);
  const gaps: CaptionGap[] = [];
  for (const t of r.gapTimesteps) {
    const g = await captionGap(r.model, r.schedule, images, captions, { t, seed: r.seed });
    console.error(
      `caption gap at t = ${t}: ${pct(g.gap)} (ε-MSE with the own caption ${g.own.toFixed(5)}, ` +
        `another's ${g.other.toFixed(5)}, none ${g.none.toFixed(5)}; ${g.n} images)`,
    );
    gaps.push(g);
  }
  return gaps;
}

/** One row per caption, at most 16 of its samples; the captions, one a line, in NAME.txt. */
function writeGrid(
  dir: string,
  name: string,
  images: Float32Array,
  captions: string[],
  perCaption: number,
  model: PixArt,
): void {
  const c = model.config;
  const cols = Math.min(perCaption, 16);
  const per = c.in_channels * c.image_size * c.image_size;
  const shown = new Float32Array(captions.length * cols * per);
  for (let p = 0; p < captions.length; p++) {
    for (let k = 0; k < cols; k++) {
      const src = (p * perCaption + k) * per;
      shown.set(images.subarray(src, src + per), (p * cols + k) * per);
    }
  }
  const size = c.image_size;
  writeImageGrid(
    join(dir, `${name}.png`),
    shown,
    captions.length * cols,
    c.in_channels,
    size,
    size,
    cols,
  );
  writeFileSync(join(dir, `${name}.txt`), captions.join("\n") + "\n");
}

const num = (x: number | null) => (x === null ? "-" : pct(x));

/** One row per guidance scale (and the sampler when the rows vary it). */
function scaleTable(rs: CaptionEvalResult[]): string {
  const bySampler = new Set(rs.map((r) => `${r.sampler} ${r.steps}`)).size > 1;
  const head = [
    ...(bySampler ? ["sampler", "steps"] : []),
    "guidance",
    "class acc.",
    "top-5",
    "category acc.",
    "recall@1",
    "recall@5",
    "FID",
    "floor",
  ];
  const rows = rs.map((r) => [
    ...(bySampler ? [r.sampler, String(r.steps)] : []),
    r.guidance_interval ? `${r.guidance} in [${r.guidance_interval}]` : String(r.guidance),
    pct(r.accuracy),
    pct(r.top5_accuracy),
    num(r.category_accuracy),
    pct(r.recall_at_1),
    pct(r.recall_at_5),
    r.fid.toFixed(2),
    r.fid_floor.toFixed(2),
  ]);
  return markdown(head, rows);
}

/** One row per category and the totals, then the other scores and the references. */
function categoryTable(r: CaptionEvalResult): string {
  const row = (name: string, captions: number, s: CaptionEvalResult["per_category"][0]) => [
    name,
    String(captions),
    pct(s.accuracy),
    pct(s.accuracy_real),
    num(s.category_accuracy),
    pct(s.recall_at_1),
    pct(s.recall_at_5),
  ];
  const rows = r.per_category.map((k) => row(k.name, k.captions, k));
  rows.push(row("all", r.captions, { ...r, name: "all", captions: r.captions }));
  return markdown(
    ["category", "captions", "class acc.", "(real)", "category acc.", "recall@1", "recall@5"],
    rows,
  ) +
    `\ntop-5 class accuracy ${pct(r.top5_accuracy)}, confidence ${r.confidence.toFixed(3)}; ` +
    `recall of the captions' own images moved by a pixel ${pct(r.recall_at_1_real)} @1, ` +
    `${pct(r.recall_at_5_real)} @5; ` +
    `FID ${r.fid.toFixed(2)} (real-vs-real floor ${
      r.fid_floor.toFixed(2)
    }, ${r.fid_samples} images)`;
}
