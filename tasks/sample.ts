// deno task sample --prompt "seven" — draws images from a trained checkpoint.

import { existsSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { deviceInfo } from "../kernels/mod.ts";
import { writeImageGrid } from "../io/png.ts";
import { generate } from "../diffusion/generate.ts";
import {
  CHECKPOINT_USAGE,
  DEFAULT_GUIDANCE,
  describeCheckpoint,
  fail,
  intervalFlag,
  intFlag,
  loadSamplingCheckpoint,
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
${samplerUsage()}
  --seed N             start noise seed (default 0)
  --raw                use the raw weights even if the checkpoint has EMA weights
${PRECISION_HELP}
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
    sampler: { type: "string" },
    steps: { type: "string" },
    seed: { type: "string" },
    raw: { type: "boolean" },
    precision: { type: "string" },
    out: { type: "string" },
  }, USAGE);
  const base: string[] = [...((a.prompt as string[]) ?? [])];
  if (a["prompts-file"]) base.push(...readPromptsFile(a["prompts-file"] as string));
  if (a.grid) base.push(...lessonPrompts());
  if (!base.length) fail("no prompt: pass --prompt TEXT, --prompts-file PATH or --grid");
  const num = intFlag(a.num, "num") ?? (base.length === 1 ? 8 : 1);
  if (num < 1) fail("--num must be at least 1");
  const prompts = base.flatMap((p) => Array(num).fill(p));
  const { sampler, steps, seed } = samplingFlags(a);
  const guidance = numFlag(a.guidance, "guidance") ?? DEFAULT_GUIDANCE;
  const out = (a.out as string) ?? "output/samples.png";
  const txt = out.replace(/\.png$/i, "") + ".txt";
  if (a["prompts-file"]) keepPromptsFile(a["prompts-file"] as string, out, txt);
  prepareOutput(out);

  const sc = await loadSamplingCheckpoint(
    a.checkpoint as string | undefined,
    !!a.raw,
    a.model as string | undefined,
    precisionFlag(a.precision),
  );
  const { model, classNames, schedule } = sc;
  const interval = intervalFlag(a["guidance-interval"], "guidance-interval", schedule.T);
  const c = model.config;
  const negative = (a.negative as string | undefined)?.trim() || null;
  if (c.stage === 2) model.tokenize(prompts); // fail early on a prompt it cannot encode
  console.error(
    `${describeCheckpoint(sc)}; ` +
      `${prompts.length} samples, ${sampler}${sampler === "ancestral" ? "" : ` ${steps} steps`}, ` +
      `guidance ${guidance}${interval ? ` for t in [${interval}]` : ""}${
        negative ? `, negative '${negative}'` : ""
      }, on ${deviceInfo().adapter}`,
  );
  const t0 = performance.now();
  const images = await generate(model, schedule, prompts, classNames, {
    sampler,
    steps,
    guidance,
    guidanceInterval: interval,
    negative,
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
  model.dispose();
});

/** Neither the grid nor the prompts written beside it may land on the prompts file being read. */
function keepPromptsFile(promptsFile: string, png: string, txt: string): void {
  for (const [path, what] of [[txt, "its prompts go to"], [png, "the grid is"]] as const) {
    if (existsSync(path) && sameFile(path, promptsFile)) {
      const instead = join(
        dirname(png),
        `${basename(promptsFile).replace(/\.[^.]*$/, "")}-samples.png`,
      );
      fail(
        `--out '${png}' would write over the --prompts-file '${promptsFile}' (${what} ` +
          `'${path}'): pass another --out, e.g. ${instead}`,
      );
    }
  }
}
