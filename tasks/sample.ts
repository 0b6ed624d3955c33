// deno task sample --prompt "seven" — draws images from a trained checkpoint, or edits an image
// (--init-image: image-to-image, with --mask: inpainting).

import { wordTablePath } from "../model/checkpoint.ts";
import { existsSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { deviceInfo } from "../kernels/mod.ts";
import { writeImageGrid } from "../io/png.ts";
import { DEFAULT_STRENGTH, generate, MAX_SAMPLES } from "../diffusion/generate.ts";
import { readImageFile } from "../io/image_file.ts";
import { toSigned } from "../io/image_set.ts";
import {
  CHECKPOINT_USAGE,
  DEFAULT_GUIDANCE,
  describeCheckpoint,
  fail,
  guidanceFlag,
  intervalFlag,
  intFlag,
  loadSamplingCheckpoint,
  LORA_USAGE,
  numFlag,
  parseCli,
  PRECISION_HELP,
  precisionFlag,
  prepareOutput,
  progressBar,
  runTask,
  sameFile,
  samplerUsage,
  samplingFlags,
} from "./cli.ts";
import { lessonPrompts, promptsText, readPromptsFile } from "../io/prompts.ts";
import { parseLoraSpec } from "../diffusion/load_pipeline.ts";
import { nearestWords, promptPieces, withoutUnknownWords } from "../model/word_tokenizer.ts";

const USAGE = `
Samples images from a PixArt-α checkpoint and writes them as one PNG grid.

  deno task sample --prompt "seven" [--prompt "3" …] [flags]

  --prompt TEXT        a prompt (repeatable); a stage-1 model takes class names or digits
  --prompts-file PATH  prompts, one per line ("|" separates several on one line)
  --grid               the lesson's 64-prompt grid (configs/lesson_prompts.txt)
${CHECKPOINT_USAGE}
  --num N              samples per prompt (default 8 for one prompt, else 1)
  --guidance W         classifier-free guidance scale (default ${DEFAULT_GUIDANCE}; 1 = none)
  --guidance-interval LO,HI
                       guide only at timesteps LO … HI, the conditional model alone elsewhere
  --negative TEXT      a negative prompt: guidance steers away from it (default: the null caption)
  --skip-unknown-words a words model draws a prompt without the words its table lacks, and names
                       them (by default such a word is an error naming the nearest words it has)
  --init-image PATH    edit this PNG or JPEG instead of drawing from noise (image-to-image,
                       SDEdit); it is read as training images are (on white, scaled, centre-cropped)
  --strength S         how much of the sampler's path runs from the noised image: 0 returns it, 1
                       runs all of it (default ${DEFAULT_STRENGTH}; 1 with --mask)
  --mask PATH          inpainting (RePaint): white is repainted, black keeps --init-image (the
                       same size as it)
  --resample N         RePaint's resampling: sample every segment N times (default 1: once)
  --jump N             that segment, in sampler steps (default 10/250 of the steps, at least 1, below the
                       steps that run)
${samplerUsage()}
  --seed N             start noise seed (default 0)
  --raw                use the raw weights even if the checkpoint has EMA weights
${PRECISION_HELP}
${LORA_USAGE}
  --out PATH           PNG path (default output/samples.png); the prompts go beside it (.txt)
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    prompt: { type: "string", multiple: true },
    "prompts-file": { type: "string" },
    grid: { type: "boolean" },
    checkpoint: { type: "string" },
    model: { type: "string" },
    num: { type: "string" },
    guidance: { type: "string" },
    "guidance-interval": { type: "string" },
    negative: { type: "string" },
    "skip-unknown-words": { type: "boolean" },
    "init-image": { type: "string" },
    strength: { type: "string" },
    mask: { type: "string" },
    resample: { type: "string" },
    jump: { type: "string" },
    sampler: { type: "string" },
    steps: { type: "string" },
    seed: { type: "string" },
    raw: { type: "boolean" },
    precision: { type: "string" },
    lora: { type: "string", multiple: true },
    out: { type: "string" },
  }, USAGE);
  let base: string[] = [...((a.prompt as string[]) ?? [])];
  if (a["prompts-file"]) base.push(...readPromptsFile(a["prompts-file"] as string));
  if (a.grid) base.push(...lessonPrompts());
  if (!base.length) fail("no prompt: pass --prompt TEXT, --prompts-file PATH or --grid");
  const num = intFlag(a.num, "num") ?? (base.length === 1 ? 8 : 1);
  if (num < 1) fail("--num must be at least 1");
  if (base.length * num > MAX_SAMPLES) {
    fail(
      `${base.length} prompt(s) × --num ${num} is ${base.length * num} samples, over the ` +
        `${MAX_SAMPLES} one grid may hold: sample in several runs (--seed apart)`,
    );
  }
  const { sampler, steps, seed } = samplingFlags(a);
  const guidance = guidanceFlag(a.guidance, "guidance") ?? DEFAULT_GUIDANCE;
  const out = (a.out as string) ?? "output/samples.png";
  const txt = out.replace(/\.png$/i, "") + ".txt";
  if (a["prompts-file"]) keepInput(a["prompts-file"] as string, "prompts-file", out, txt);
  const edit = editFlags(a);
  if (edit.initImage) keepInput(edit.initImage, "init-image", out, txt);
  if (edit.mask) keepInput(edit.mask, "mask", out, txt);
  prepareOutput(out);

  const sc = await loadSamplingCheckpoint(
    a.checkpoint as string | undefined,
    !!a.raw,
    a.model as string | undefined,
    precisionFlag(a.precision),
    (a.lora as string[] | undefined) ?? [],
  );
  // the model files read are inputs too: a grid written over one would destroy it
  keepInput(sc.name, "checkpoint", out, txt);
  const tableFile = wordTablePath(sc.model.config);
  if (tableFile) keepInput(tableFile, "checkpoint's word table", out, txt);
  for (const l of (a.lora as string[] | undefined) ?? []) {
    keepInput(parseLoraSpec(l).file, "lora", out, txt);
  }
  const { model, classNames, schedule } = sc;
  const interval = intervalFlag(a["guidance-interval"], "guidance-interval", schedule.T);
  const c = model.config;
  let negative = (a.negative as string | undefined)?.trim() || null;
  if (a["skip-unknown-words"]) {
    const table = model.wordTable;
    if (!table) {
      fail("--skip-unknown-words is for a model that reads words (model.text_encoder: words)");
    }
    const skip = (p: string, what: string) => {
      const { prompt, removed } = withoutUnknownWords(p, table);
      for (const w of removed) {
        const near = w.length > 40
          ? ""
          : `; nearest: ${nearestWords(w, table).map((n) => `'${n}'`).join(", ")}`;
        console.error(
          `note: '${w.slice(0, 40)}' is not in the model's vocabulary: left out of "${
            p.slice(0, 60)
          }"${near}`,
        );
      }
      // no word left (nothing, or punctuation alone) is not the prompt the user asked for: say
      // so rather than draw the null caption or a comma
      if (!promptPieces(prompt, (w) => table.index.has(w)).some((piece) => piece.word)) {
        fail(
          `${what} "${p.slice(0, 60)}" has no word in the model's vocabulary: reword it ` +
            `(the notes above name the nearest known words)`,
        );
      }
      return prompt;
    };
    base = base.map((p, i) => skip(p, base.length > 1 ? `prompt ${i + 1}` : "the prompt"));
    if (negative) negative = skip(negative, "--negative");
  }
  const prompts = base.flatMap((p) => Array(num).fill(p));
  // fail early on a prompt it cannot encode, counted among the prompts given (not the samples)
  if (c.stage === 2) model.tokenize(base);
  const start = edit.initImage
    ? readImageFile(edit.initImage, c.image_size, c.in_channels as 1 | 3)
    : null;
  const mask = edit.mask ? readImageFile(edit.mask, c.image_size, 1) : null;
  if (start && mask && (mask.width !== start.width || mask.height !== start.height)) {
    fail(
      `--mask '${edit.mask}' is ${mask.width}×${mask.height}, --init-image '${edit.initImage}' ` +
        `${start.width}×${start.height}: paint the mask at the image's size`,
    );
  }
  console.error(
    `${describeCheckpoint(sc)}; ` +
      `${prompts.length} samples, ${sampler}${sampler === "ancestral" ? "" : ` ${steps} steps`}, ` +
      `guidance ${guidance}${interval ? ` for t in [${interval}]` : ""}${
        negative ? `, negative '${negative}'` : ""
      }${
        start
          ? `, from ${edit.initImage}${mask ? `, mask ${edit.mask}` : ""}, strength ${
            edit.strength ?? (mask ? 1 : DEFAULT_STRENGTH)
          }${edit.resample ? `, resampled ${edit.resample}×` : ""}`
          : ""
      }, on ${deviceInfo().adapter}`,
  );
  const t0 = performance.now();
  const images = await generate(model, schedule, prompts, classNames, {
    sampler,
    steps,
    guidance,
    guidanceInterval: interval,
    negative,
    initImage: start && toSigned(start.data),
    strength: edit.strength,
    mask: mask?.data,
    resample: edit.resample,
    jump: edit.jump,
    seed,
    batch: 64,
    onProgress: (done, total) => progressBar(done, total, "sampling", t0),
    onWarmUp: (p) =>
      p.total &&
      progressBar(p.done, p.total, `${p.phase === "tune" ? "timing" : "compiling"} kernels`, t0),
  });
  const cols = base.length === 1 ? Math.min(8, num) : num > 1 ? num : 8;
  writeImageGrid(out, images, prompts.length, c.in_channels, c.image_size, c.image_size, cols);
  writeFileSync(txt, promptsText(prompts));
  console.error(`wrote ${out} and ${txt} (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  sc.dispose();
});

/** Neither the grid nor the prompts written beside it may land on a file being read. */
function keepInput(input: string, flag: string, png: string, txt: string): void {
  for (const [path, what] of [[txt, "its prompts go to"], [png, "the grid is"]] as const) {
    if (existsSync(path) && sameFile(path, input)) {
      const instead = join(dirname(png), `${basename(input).replace(/\.[^.]*$/, "")}-samples.png`);
      fail(
        `--out '${png}' would write over the --${flag} '${input}' (${what} ` +
          `'${path}'): pass another --out, e.g. ${instead}`,
      );
    }
  }
}

/** --init-image, --strength, --mask, --resample and --jump, checked against each other. */
function editFlags(a: Record<string, unknown>) {
  const initImage = a["init-image"] as string | undefined;
  const mask = a.mask as string | undefined;
  const strength = numFlag(a.strength, "strength");
  if (strength !== undefined && !(strength >= 0 && strength <= 1)) {
    fail(`--strength must be in [0, 1], got '${a.strength}'`);
  }
  const resample = intFlag(a.resample, "resample");
  const jump = intFlag(a.jump, "jump");
  for (const [v, name] of [[resample, "resample"], [jump, "jump"]] as const) {
    if (v === 0) fail(`--${name} must be at least 1`);
  }
  if (!initImage) {
    for (const name of ["strength", "mask", "resample", "jump"]) {
      if (a[name] !== undefined) fail(`--${name} needs --init-image PATH, the image to edit`);
    }
  } else if (!mask && (resample !== undefined || jump !== undefined)) {
    fail(`--${resample !== undefined ? "resample" : "jump"} is RePaint's: it needs --mask PATH`);
  } else if (jump !== undefined && (resample ?? 1) < 2) {
    fail("--jump is how far --resample goes back: give --resample 2 or more");
  }
  return { initImage, mask, strength, resample, jump };
}
