// `deno task eval --colours` on a text model of the emoji folder (eval/colour_eval.ts): K samples
// of each "<colour> <shape>" caption the folder has and of "<colour> <object>" captions it has not,
// read for the colour they show; the real images' score beside them, colours.json and a grid.

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadSource } from "../io/data.ts";
import { EMOJI_STYLES, type EmojiStyle } from "../io/emoji_set.ts";
import { imageOf as pixelsOf, prepareImages } from "../io/image_set.ts";
import { writeImageGrid } from "../io/png.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import { generate } from "../diffusion/generate.ts";
import type { PixArt } from "../model/pixart.ts";
import {
  type Colour,
  COLOURS,
  type ColourScore,
  colourStyleOf,
  drawingColour,
  heartCaption,
  novelColourCaptions,
  scoreColours,
  seenColourCaptions,
} from "../eval/colour_eval.ts";
import { progressBar, type SamplingRun } from "./cli.ts";
import { markdown, pct } from "./table.ts";

export interface ColourEvalRun {
  model: PixArt;
  schedule: Schedule;
  describe: string;
  source: string;
  perCaption: number;
  run: SamplingRun;
  /** --guidance-interval: guide only at timesteps lo … hi */
  interval: [number, number] | null;
  seed: number;
  outDir: string;
  /** the training config's data.skip_bad_images */
  skipBadImages?: boolean;
}

export async function runColourEval(r: ColourEvalRun): Promise<void> {
  const c = r.model.config;
  if (c.in_channels !== 3) throw new Error("--colours needs a colour (RGB) model");
  const S = c.image_size;
  const set = prepareImages(
    await loadSource(r.source, { size: S, channels: 3, skipBadImages: r.skipBadImages }),
    S,
  );
  if (!set.captions) {
    throw new Error(`--colours needs an image folder with captions; '${r.source}' is not`);
  }
  const per = 3 * S * S;
  const imageOf = new Map<string, Float32Array>();
  set.captions.forEach((cap, i) => {
    if (!imageOf.has(cap)) imageOf.set(cap, pixelsOf(set, i));
  });
  // the prototypes: the folder's own "<colour> heart", in the style its captions carry
  const style = colourStyleOf(new Set(imageOf.keys()));
  if (!style) {
    // name what is missing in the style the folder comes nearest to
    const found = (s: EmojiStyle) => COLOURS.filter((c) => imageOf.has(heartCaption(c, s))).length;
    const nearest = EMOJI_STYLES.reduce((a, s) => found(s) > found(a) ? s : a);
    const missing = COLOURS.find((c) => !imageOf.has(heartCaption(c, nearest)))!;
    throw new Error(
      `--colours: '${r.source}' has no image captioned '${heartCaption(missing, nearest)}' (the ` +
        `colour prototypes are the folder's eight "<colour> heart" images): pass --data a folder ` +
        `written by deno task data:emoji`,
    );
  }
  const prototypes = COLOURS.map((col) => drawingColour(imageOf.get(heartCaption(col, style))!, S));
  const seen = seenColourCaptions(style).filter((e) => imageOf.has(e.caption));
  const novel = novelColourCaptions(new Set(set.captions), style);
  // the instrument on real images: the seen shapes other than the prototypes themselves
  const realSet = seen.filter((e) => e.shape !== "heart");
  const real = scoreColours(
    Float32Array.from(realSet.flatMap((e) => [...imageOf.get(e.caption)!])),
    S,
    realSet.map((e) => e.colour),
    1,
    prototypes,
  );
  console.error(
    `${r.describe}; colour words in the ${style} style: ${seen.length} captions the folder ` +
      `has, ${novel.length} it has not, ${r.perCaption} samples each; the folder's own circles ` +
      `and squares read ` +
      `${pct(real.accuracy)} right`,
  );
  mkdirSync(r.outDir, { recursive: true });
  const t0 = performance.now();
  const results: Record<string, ColourScore & { captions: string[] }> = {};
  for (const [name, list] of [["seen", seen], ["novel", novel]] as const) {
    const prompts = list.flatMap((e) => Array(r.perCaption).fill(e.caption));
    const images = await generate(r.model, r.schedule, prompts, [], {
      ...r.run,
      guidanceInterval: r.interval,
      seed: r.seed,
      batch: 64,
      onProgress: (done, all) => progressBar(done, all, `colour words, ${name}`, t0),
    });
    results[name] = {
      ...scoreColours(images, S, list.map((e) => e.colour as Colour), r.perCaption, prototypes),
      captions: list.map((e) => e.caption),
    };
    const cols = Math.min(r.perCaption, 8);
    const shown = new Float32Array(list.length * cols * per);
    list.forEach((_, i) => {
      for (let k = 0; k < cols; k++) {
        shown.set(
          images.subarray((i * r.perCaption + k) * per, (i * r.perCaption + k + 1) * per),
          (i * cols + k) * per,
        );
      }
    });
    writeImageGrid(join(r.outDir, `colours-${name}.png`), shown, list.length * cols, 3, S, S, cols);
    writeFileSync(
      join(r.outDir, `colours-${name}.txt`),
      list.map((e) => e.caption).join("\n") + "\n",
    );
  }
  const report = {
    ...r.run,
    guidance_interval: r.interval,
    seed: r.seed,
    per_caption: r.perCaption,
    style,
    colours: COLOURS,
    real,
    ...results,
    seconds: (performance.now() - t0) / 1000,
  };
  writeFileSync(join(r.outDir, "colours.json"), JSON.stringify(report, null, 2) + "\n");
  console.log(markdown(
    ["captions", "count", "colour read right", "chance"],
    [
      ["the folder's own (seen)", String(seen.length), pct(results.seen.accuracy), pct(1 / 8)],
      [
        "colours the folder never shows on the object (novel)",
        String(novel.length),
        pct(results.novel.accuracy),
        pct(1 / 8),
      ],
      ["real images (circles, squares)", String(realSet.length), pct(real.accuracy), pct(1 / 8)],
    ],
  ));
  console.error(`wrote ${join(r.outDir, "colours.json")} and the grids colours-seen/novel.png`);
}
