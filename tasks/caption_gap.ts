// deno task caption-gap — does a text model read its captions? The caption gap (eval/caption_gap.ts)
// of a checkpoint on images of a captioned folder, at a few timesteps, without sampling: three
// forward passes an image, so it takes seconds where the caption evaluation takes many minutes.

import { captionGap } from "../eval/caption_gap.ts";
import { prepareImages } from "../io/image_set.ts";
import { loadSource } from "../io/data.ts";
import {
  describeCheckpoint,
  fail,
  intFlag,
  loadSamplingCheckpoint,
  parseCli,
  requireSource,
  runTask,
  timestepsFlag,
} from "./cli.ts";

const USAGE = `
Measures how much a text model's ε error falls with each image's own caption instead of another
image's (the caption gap; 0% when the captions are ignored), at each timestep given, on images
spread evenly over a captioned image folder, with the images' own captions. One JSON line a
timestep.

  deno task caption-gap --checkpoint PATH --data FOLDER [--t 300,500,700] [--images N]

  --checkpoint PATH   a checkpoint, or a run's folder (its newest); or --model NAME (bundled)
  --data FOLDER       an image folder with captions (default: the checkpoint's data.source)
  --t LIST            timesteps, separated by commas (default 0.3, 0.5 and 0.7 of the schedule:
                      300,500,700 of 1,000)
  --images N          images, spread evenly over the folder (default 96; at least 2)
  --seed N            seed of the noise (default 0)
  --raw               the raw weights instead of the EMA ones
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    checkpoint: { type: "string" },
    model: { type: "string" },
    data: { type: "string" },
    t: { type: "string" },
    images: { type: "string" },
    seed: { type: "string" },
    raw: { type: "boolean" },
  }, USAGE);
  const pipe = await loadSamplingCheckpoint(
    a.checkpoint as string | undefined,
    !!a.raw,
    a.model as string | undefined,
    "none",
  );
  try {
    const { model, schedule, trainConfig } = pipe;
    const c = model.config;
    if (c.stage !== 2) fail("the caption gap needs a text model (stage 2 or 3)");
    const source = (a.data as string) ?? trainConfig?.data?.source;
    if (!source) fail("pass --data FOLDER: the checkpoint does not name its data");
    requireSource(source, a.data !== undefined);
    // by default 0.3, 0.5 and 0.7 of the way: 300, 500 and 700 of 1,000 steps
    const ts = a.t === undefined
      ? [0.3, 0.5, 0.7].map((f) => Math.round(f * schedule.T))
      : timestepsFlag(a.t, "t", schedule.T);
    const want = intFlag(a.images, "images") ?? 96;
    if (want < 2) fail("--images must be at least 2");
    const set = prepareImages(
      await loadSource(source, {
        size: c.image_size,
        channels: c.in_channels as 1 | 3,
        labelField: trainConfig?.data?.label_field,
        skipBadImages: trainConfig?.data?.skip_bad_images,
      }),
      c.image_size,
    );
    if (!set.captions) fail(`'${source}' has no captions: give a folder with metadata.jsonl`);
    const n = Math.min(want, set.n), D = c.in_channels * c.image_size * c.image_size;
    const images = new Float32Array(n * D), captions: string[] = [];
    for (let k = 0; k < n; k++) {
      const i = Math.floor((k * set.n) / n), row = set.rows ? set.rows[i] : i;
      images.set(set.images.subarray(row * D, (row + 1) * D), k * D);
      captions.push(set.captions[i]);
    }
    console.error(`${describeCheckpoint(pipe)}; ${n} images of ${source}`);
    for (const t of ts) {
      const g = await captionGap(model, schedule, images, captions, {
        t,
        seed: intFlag(a.seed, "seed") ?? 0,
      });
      console.log(JSON.stringify({ ...g, gap_percent: Number((100 * g.gap).toFixed(2)) }));
    }
  } finally {
    pipe.dispose();
  }
});
