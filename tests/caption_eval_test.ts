// Caption evaluation on a small coloured image folder written here: squares and bars in three
// colours, each with its own caption, a subcategory (colour and shape) and a category (colour).
// The classifier trains on it in seconds; the bookkeeping (allocation, the seeded caption draw,
// the category map, cosine neighbours and recall) is checked against written-out answers; a
// random model runs through evaluateCaptions and, as a checkpoint, through `deno task eval`.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { classifierName, dataDigest, loadOrTrainClassifier } from "../eval/classifier_cache.ts";
import {
  allocate,
  type CaptionEval,
  captionRanks,
  categoryOfLabels,
  drawEvalCaptions,
  evaluateCaptions,
  movedByOnePixel,
  nearestByCosine,
  prepareCaptionEval,
  scoreCaptionSamples,
} from "../eval/caption_eval.ts";
import { DEFAULT_CONFIG } from "../io/config.ts";
import { loadSource } from "../io/data.ts";
import { gatherBatch, prepareImages, splitHoldout } from "../io/image_set.ts";
import { encodePng } from "../io/png.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { type CaptionGap, captionGap } from "../eval/caption_gap.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { ready } from "./helpers.ts";

await ready;

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const HOLDOUT = 0.25;
const NETWORK = { widths: [8, 16, 16, 16], hidden: 32 };
const RECIPE = { epochs: 20, batchSize: 16, lr: 5e-3 };
/** subcategory → [category, rgb, shape]; unequal counts, so the caption draw has to apportion */
const KINDS: Record<string, [string, [number, number, number], "square" | "bar", number]> = {
  "red-square": ["red", [220, 30, 30], "square", 12],
  "red-bar": ["red", [220, 30, 30], "bar", 12],
  "blue-square": ["blue", [30, 60, 220], "square", 10],
  "blue-bar": ["blue", [30, 60, 220], "bar", 10],
  "green-square": ["green", [30, 170, 40], "square", 6],
};

/**
 * A 32×32 icon on white, as emoji are drawn: a filled 16×16 square or a 24×6 bar, centred and
 * then moved by (dx, dy) ∈ [−2, 2]² — a different move for each k < 25, so no two images of a
 * kind are the same.
 */
function icon(rgb: [number, number, number], shape: "square" | "bar", k: number): Uint8Array {
  const S = 32;
  const px = new Uint8Array(S * S * 3).fill(255);
  const [w, h] = shape === "square" ? [16, 16] : [24, 6];
  const x0 = (S - w) / 2 + (k % 5) - 2, y0 = (S - h) / 2 + (Math.floor(k / 5) % 5) - 2;
  for (let y = y0; y < y0 + h; y++) for (let x = x0; x < x0 + w; x++) px.set(rgb, (y * S + x) * 3);
  return encodePng(S, S, 3, px);
}

interface Fixture {
  root: string;
  folder: string;
  cacheDir: string;
  imageCacheDir: string;
}

/**
 * The folder (metadata.jsonl with text, category, subcategory, label) in a temporary root: each
 * picture under the captions `texts` gives it (one, or several sharing the file).
 */
function writeFolder(
  name = "shapes",
  texts = (category: string, shape: string, k: number) => [`${category} ${shape} ${k}`],
): Fixture {
  const root = Deno.makeTempDirSync({ prefix: "caption_eval_" });
  const folder = join(root, name);
  Deno.mkdirSync(join(folder, "img"), { recursive: true });
  const lines: string[] = [];
  for (const [sub, [category, rgb, shape, count]] of Object.entries(KINDS)) {
    for (let k = 0; k < count; k++) {
      const file = `img/${sub}-${k}.png`;
      Deno.writeFileSync(join(folder, file), icon(rgb, shape, k));
      for (const text of texts(category, shape, k)) {
        lines.push(
          JSON.stringify({ file_name: file, text, category, subcategory: sub, label: sub }),
        );
      }
    }
  }
  Deno.writeTextFileSync(join(folder, "metadata.jsonl"), lines.join("\n") + "\n");
  return {
    root,
    folder,
    // where a classifier trained for the user's data goes: the cache folder's classifiers/
    cacheDir: join(root, "cache", "classifiers"),
    imageCacheDir: join(root, "cache"),
  };
}

let fixture: Promise<{ f: Fixture; heldOutAccuracy: number; path: string }> | null = null;

/** The folder and its trained subcategory classifier, made once for every test here. */
function shapes() {
  fixture ??= (async () => {
    const f = writeFolder();
    const r = await loadOrTrainClassifier(f.folder, {
      cacheDir: f.cacheDir,
      holdout: HOLDOUT,
      data: { channels: 3, labelField: "subcategory", cacheDir: f.imageCacheDir },
      network: NETWORK,
      train: RECIPE,
    });
    r.classifier.dispose();
    return { f, heldOutAccuracy: r.heldOutAccuracy, path: r.path };
  })();
  return fixture;
}

function prepare(
  f: Fixture,
  extra: { captions?: number; perCaption?: number; truncateCaptionsTo?: number } = {},
) {
  return prepareCaptionEval(f.folder, {
    channels: 3,
    holdout: HOLDOUT,
    imageCacheDir: f.imageCacheDir,
    classifier: { cacheDir: f.cacheDir },
    captions: 6,
    perCaption: 2,
    ...extra,
  });
}

Deno.test("the folder's classifier: trained on its subcategories, high held-out accuracy, named by column and channels", async () => {
  const { f, heldOutAccuracy, path } = await shapes();
  // named by folder, column, contents and the split (HOLDOUT, not the default 0.1)
  assert.match(path, /classifier-shapes-subcategory-[0-9a-f]{12}-h0\.25-s0\.safetensors$/);
  assert.ok(path.startsWith(join(f.cacheDir, "classifier-shapes-subcategory-")));
  assert.ok(heldOutAccuracy >= 0.9, `held-out accuracy ${heldOutAccuracy}`);
  assert.equal(
    classifierName(f.folder, { labelField: "category", channels: 1 }),
    "shapes-category-grey",
  );
  const again = await loadOrTrainClassifier(f.folder, {
    cacheDir: f.cacheDir,
    holdout: HOLDOUT,
    data: { channels: 3, labelField: "subcategory", cacheDir: f.imageCacheDir },
  });
  const m = again.classifier.metadata;
  assert.equal(m.label_field, "subcategory");
  assert.deepEqual(JSON.parse(m.classes), Object.keys(KINDS).sort());
  assert.equal(
    JSON.parse(m.train_options).edge,
    true,
    "icons on white are shifted with their edge",
  );
  assert.equal(again.heldOutAccuracy, heldOutAccuracy);
  again.classifier.dispose();
  // a file that says it classifies another column is not taken for this one
  const label = dataDigest(f.folder, { labelField: "label", channels: 3 })!.slice(0, 12);
  const labelFile = `classifier-shapes-label-${label}-h${HOLDOUT}-s0.safetensors`;
  Deno.copyFileSync(path, join(f.cacheDir, labelFile));
  await assert.rejects(
    () =>
      loadOrTrainClassifier(f.folder, {
        cacheDir: f.cacheDir,
        holdout: HOLDOUT,
        data: { channels: 3, labelField: "label", cacheDir: f.imageCacheDir },
      }),
    /classifies column 'subcategory' of 3-channel images, not 'label' of 3: delete it/,
  );
});

Deno.test("a folder that repeats files: the classifier and the captions keep the trainer's split by picture", async () => {
  // every picture under two captions, as the two styles of a name or two phrasings
  const f = writeFolder(
    "twice",
    (c, shape, k) => [`${c} ${shape} ${k}`, `a ${shape} in ${c}, ${k}`],
  );
  const { folder, imageCacheDir: cache, cacheDir: classifiers } = f;
  const set = await loadSource(folder, {
    size: 32,
    channels: 3,
    labelField: "subcategory",
    cacheDir: cache,
  });
  assert.ok(set.rows, "the folder shares pictures between entries");
  const trainer = splitHoldout(set.n, HOLDOUT, 0, set.rows);
  const heldPictures = new Set([...trainer.holdout].map((k) => set.rows![k]));
  const ref = await prepareCaptionEval(folder, {
    channels: 3,
    holdout: HOLDOUT,
    imageCacheDir: cache,
    classifier: { cacheDir: classifiers, network: NETWORK, train: RECIPE },
    captions: 20,
    perCaption: 1,
  });
  try {
    const m = ref.classifier.metadata;
    assert.equal(m.split, "pictures");
    assert.equal(Number(m.held_out_n), trainer.holdout.length);
    for (const e of ref.captions) {
      assert.ok(!heldPictures.has(set.rows![e.image]), `'${e.caption}' shows a held-out picture`);
    }
    // the search holds each training picture once, with both its captions
    const trainPictures = new Set([...trainer.train].map((k) => set.rows![k]));
    assert.equal(ref.trainCaptions.length, trainPictures.size);
    assert.ok(ref.trainCaptions.every((cs) => cs.length === 2), "each picture's two captions");

    // so a caption's own picture is its nearest, whichever of the two captions asked for it
    const own = gatherBatch(prepareImages(set, 32), ref.captions.map((e) => e.image)).images;
    const r = await scoreCaptionSamples(ref, own, 1, 32);
    assert.equal(r.recall_at_1, 1);
  } finally {
    ref.dispose();
  }
  // a classifier cached before the split was by picture is not used on such a folder
  const stored = readSafetensors(ref.classifierPath);
  const { split: _, ...older } = stored.metadata;
  writeSafetensors(
    ref.classifierPath,
    Object.fromEntries(stored.tensors) as Record<string, TensorInput>,
    older,
  );
  await assert.rejects(
    () =>
      prepareCaptionEval(folder, {
        channels: 3,
        holdout: HOLDOUT,
        imageCacheDir: cache,
        classifier: { cacheDir: classifiers },
        captions: 20,
        perCaption: 1,
      }),
    /was trained on an earlier split of a folder that repeats files .*: delete it to retrain/,
  );
  // without categories, spreading a category's captions over its classes would change nothing
  await assert.rejects(
    () =>
      prepareCaptionEval(folder, {
        channels: 3,
        categoryField: null,
        evenClasses: true,
        classifier: { cacheDir: classifiers },
      }),
    /^Error: --even-classes spreads each category's captions over its classes, and data folder .* has no category column besides 'subcategory': leave the flag out$/,
  );
  Deno.removeSync(f.root, { recursive: true });
});

Deno.test("allocate: one per group, the rest by share, never more than a group has", () => {
  // shares of 10 over 50, 5, 1, 0: 8.9, 0.9, 0.2, 0 → the big group takes the rest
  assert.deepEqual(allocate([50, 5, 1, 0], 10), [8, 1, 1, 0]);
  // 12 of 20, 20, 10: shares 4.8, 4.8, 2.4 → 5, 5, 2 (the tie at 4.8 goes to the first)
  assert.deepEqual(allocate([20, 20, 10], 12), [5, 5, 2]);
  assert.deepEqual(allocate([3, 2], 4), [2, 2], "the second group holds only 2");
  assert.deepEqual(allocate([3, 2], 9), [3, 2], "asking for more gives all there is");
  assert.throws(() => allocate([5, 5, 5], 2), /2 evaluation captions cannot cover 3 categories/);
});

Deno.test("evaluation captions: seeded, from the training split, distinct, every category", async () => {
  const { f } = await shapes();
  const set = await loadSource(f.folder, {
    size: 32,
    channels: 3,
    labelField: "subcategory",
    cacheDir: f.imageCacheDir,
  });
  const { train } = splitHoldout(set.n, HOLDOUT, 0);
  const cats = new Int32Array(set.n).map((_, i) =>
    ["blue", "green", "red"].indexOf(
      String(set.columns![i].category),
    )
  );
  const draw = (count: number, seed: number) =>
    drawEvalCaptions(set.captions!, set.labels, cats, 3, train, count, seed);
  const a = draw(8, 0);
  assert.deepEqual(draw(8, 0), a, "the same seed draws the same captions");
  assert.notDeepEqual(draw(8, 1).map((e) => e.caption), a.map((e) => e.caption));
  assert.equal(a.length, 8);
  assert.equal(new Set(a.map((e) => e.caption)).size, 8, "distinct captions");
  const inTrain = new Set(train);
  for (const e of a) {
    assert.ok(inTrain.has(e.image), `'${e.caption}' is a training image's caption`);
    assert.equal(set.captions![e.image], e.caption);
    assert.equal(e.label, set.labels[e.image]);
    assert.equal(e.category, cats[e.image]);
  }
  // grouped by category, each one present; the small green group still gets its caption
  assert.deepEqual([...new Set(a.map((e) => e.category))], [0, 1, 2]);
  const perCat = [0, 1, 2].map((g) => a.filter((e) => e.category === g).length);
  const avail = [0, 1, 2].map((g) => [...train].filter((i) => cats[i] === g).length);
  assert.deepEqual(perCat, allocate(avail, 8));
  // more than there are: every training caption once
  assert.equal(draw(1000, 0).length, train.length);
});

Deno.test("evaluation captions spread evenly: each category's captions go round its classes", () => {
  // one category of 12 images: class 0 has 9, class 1 two, class 2 one
  const labels = Int32Array.from([0, 0, 0, 1, 0, 0, 2, 0, 1, 0, 0, 0]);
  const caps = Array.from(labels, (_, i) => `emoji ${i}`);
  const train = Int32Array.from(labels.keys());
  const groups = new Int32Array(12);
  const draw = (even: boolean) =>
    drawEvalCaptions(caps, labels, groups, 1, train, 4, 0, even).map((e) => e.label);
  // in proportion, a draw of 4 is mostly class 0; evenly, every class comes before any repeats
  assert.deepEqual(draw(true).slice(0, 3).sort(), [0, 1, 2]);
  assert.equal(draw(true).length, 4);
  const plain = drawEvalCaptions(caps, labels, groups, 1, train, 12, 0).map((e) => e.image);
  const even = drawEvalCaptions(caps, labels, groups, 1, train, 12, 0, true).map((e) => e.image);
  assert.deepEqual([...even].sort((a, b) => a - b), [...plain].sort((a, b) => a - b));
  // within a class, the draw order is kept
  const zeros = (l: number[]) => l.filter((i) => labels[i] === 0);
  assert.deepEqual(zeros(even), zeros(plain));
});

Deno.test("categoryOfLabels maps each class to its category; a class in two is an error", () => {
  const names = ["blue-bar", "blue-square", "red-bar"];
  const cats = ["blue", "red"];
  assert.deepEqual(
    [...categoryOfLabels([2, 0, 1, 0, 2], [1, 0, 0, 0, 1], names, cats)],
    [0, 0, 1],
  );
  assert.throws(
    () => categoryOfLabels([0, 0], [0, 1], names, cats),
    /class 'blue-bar' lies in categories 'blue' and 'red'/,
  );
});

Deno.test("nearest neighbours by cosine and caption recall, against a written-out computation", () => {
  // keys in 2-D: directions 0°, 45°, 90°, 180°; key 4 is key 0 ten times longer, key 5 is zero
  const keys = Float32Array.from([1, 0, 1, 1, 0, 1, -1, 0, 10, 0, 0, 0]);
  // each key a picture, with its captions: the long twin also goes by "far"
  const keyCaptions = [["east"], ["north-east"], ["north"], ["west"], ["far east", "far"], []];
  // queries: 10° (nearest: 0° and its long twin, tied → lower index first, then 45°), 80°, 170°
  const deg = (d: number) => [Math.cos((d * Math.PI) / 180), Math.sin((d * Math.PI) / 180)];
  const queries = Float32Array.from([...deg(10), ...deg(80), ...deg(170)]);
  const nb = nearestByCosine(queries, 3, keys, 6, 2, 3);
  // 170°: west, then north (cos 80°), then the zero key (0) before north-east (cos 125° < 0)
  assert.deepEqual([...nb], [0, 4, 1, 2, 1, 0, 3, 2, 5]);
  // by Euclidean distance the long twin would be far from every query; cosine ignores length
  // recall: the sample asked for "far east" finds it second; "north" and "west" first
  const ranks = captionRanks(nb, 3, ["far east", "north", "west"], keyCaptions);
  assert.deepEqual([...ranks], [1, 0, 0]);
  const wrong = captionRanks(nb, 3, ["west", "west", "north-east"], keyCaptions);
  assert.deepEqual([...wrong], [-1, -1, -1]);
  // a picture's second caption finds it as its first does
  assert.deepEqual([...captionRanks(nb, 3, ["far", "far", "far"], keyCaptions)], [1, -1, -1]);
  assert.throws(() => nearestByCosine(queries, 3, keys, 6, 2, 7), /7 nearest neighbours/);
});

/** A random stage-2 model drawing 16×16 RGB. */
function tinyModel(): PixArt {
  const mc: ModelConfig = {
    ...DEFAULT_MODEL,
    stage: 2,
    image_size: 16,
    in_channels: 3,
    patch_size: 4,
    hidden_size: 32,
    depth: 1,
    num_heads: 2,
    text_len: 16,
    text_width: 16,
    text_depth: 1,
    text_heads: 2,
  };
  return PixArt.init(mc, 3);
}

/** Every number of a score in range, and its JSON what it is. */
function checkScores(r: Awaited<ReturnType<typeof scoreCaptionSamples>>, ref: CaptionEval) {
  assert.deepEqual(JSON.parse(JSON.stringify(r)), r, "plain JSON");
  assert.equal(r.samples, r.captions * r.samples_per_caption);
  for (
    const k of ["accuracy", "accuracy_real", "top5_accuracy", "recall_at_1", "recall_at_5"] as const
  ) {
    assert.ok(r[k] >= 0 && r[k] <= 1, `${k} ${r[k]}`);
  }
  assert.ok(r.category_accuracy! >= r.accuracy, "a right class is a right category");
  assert.ok(r.top5_accuracy >= r.accuracy && r.recall_at_5 >= r.recall_at_1);
  assert.ok(Number.isFinite(r.fid) && r.fid >= 0 && r.fid_floor >= 0);
  assert.ok(r.recall_at_1_real >= 0 && r.recall_at_5_real <= 1);
  assert.ok(r.recall_at_5_real >= r.recall_at_1_real);
  assert.deepEqual([r.recall_at_1_real, r.recall_at_5_real], ref.realRecall);
  assert.equal(r.fid_samples, Math.min(r.samples, ref.real.n));
  assert.deepEqual(r.per_category.map((c) => c.name), ["blue", "green", "red"]);
  assert.equal(r.per_category.reduce((s, c) => s + c.samples, 0), r.samples);
  assert.equal(r.per_caption.length, r.captions);
  const weighted = r.per_category.reduce((s, c) => s + c.accuracy * c.samples, 0) / r.samples;
  assert.ok(Math.abs(weighted - r.accuracy) < 1e-12);
}

Deno.test("scoring the captions' own training images: recall@1 is 1, the classifier is right", async () => {
  const { f } = await shapes();
  const ref = await prepare(f, { captions: 9, perCaption: 1 });
  try {
    assert.equal(ref.labelField, "subcategory", "subcategory is preferred when present");
    assert.equal(ref.categoryField, "category");
    const set = prepareImages(
      await loadSource(f.folder, { size: 32, channels: 3, cacheDir: f.imageCacheDir }),
      32,
    );
    const own = gatherBatch(set, ref.captions.map((e) => e.image)).images;
    const r = await scoreCaptionSamples(ref, own, 1, 32);
    checkScores(r, ref);
    assert.equal(r.recall_at_1, 1, "each image's nearest training image is itself");
    assert.ok(r.accuracy >= 0.9, `accuracy on training images ${r.accuracy}`);
    // the same images under other captions' names: recall falls, since the image is another's
    const next = ref.captions.map((_, j) => ref.captions[(j + 1) % ref.captions.length].image);
    const other = gatherBatch(set, next).images;
    const wrong = await scoreCaptionSamples(ref, other, 1, 32);
    assert.equal(wrong.recall_at_1, 0);
    // the reference recall is the score of the captions' own images moved by a pixel
    const idx = ref.captions.map((e) => e.image);
    const moved = movedByOnePixel(set, idx);
    const m = await scoreCaptionSamples(ref, moved, 1, 32);
    assert.deepEqual([m.recall_at_1, m.recall_at_5], ref.realRecall);
    // and the reference accuracy, per category and per caption too, is their class accuracy
    assert.equal(m.accuracy_real, m.accuracy);
    for (const c of m.per_category) assert.equal(c.accuracy_real, c.accuracy, c.name);
    m.per_caption.forEach((c, j) => assert.equal(c.accuracy_real, ref.realHit[j], c.caption));
    assert.equal(r.accuracy_real, m.accuracy, "the reference does not depend on the samples");
    // right, down, left, up in turn; the edge repeats into the uncovered border
    const per = 3 * 32 * 32;
    const at = (img: Float32Array, j: number, c: number, y: number, x: number) =>
      img[j * per + (c * 32 + y) * 32 + x];
    const src = gatherBatch(set, idx).images;
    for (const [j, dx, dy] of [[0, 1, 0], [1, 0, 1], [2, -1, 0], [3, 0, -1]]) {
      for (const [y, x] of [[5, 7], [16, 16], [0, 0], [31, 31]]) {
        const sy = Math.min(31, Math.max(0, y - dy)), sx = Math.min(31, Math.max(0, x - dx));
        assert.equal(at(moved, j, 1, y, x), at(src, j, 1, sy, sx), `image ${j} (${y}, ${x})`);
      }
    }
  } finally {
    ref.dispose();
  }
});

Deno.test("evaluateCaptions end to end with a random model: numbers in range, JSON shape", async () => {
  const { f } = await shapes();
  const ref = await prepare(f);
  const model = tinyModel();
  try {
    const { result, images, prompts } = await evaluateCaptions(
      model,
      linearSchedule(1000),
      ref,
      { sampler: "ddim", steps: 2, guidance: 2, seed: 0 },
    );
    assert.equal(prompts.length, 6);
    assert.deepEqual(prompts, ref.captions.map((e) => e.caption));
    assert.equal(images.length, 12 * 3 * 16 * 16);
    assert.equal(result.samples, 12);
    assert.equal(result.guidance, 2);
    assert.equal(result.steps, 2);
    checkScores(result, ref);
    assert.equal(result.per_caption[0].caption, prompts[0]);
    await assert.rejects(
      () =>
        evaluateCaptions(model, linearSchedule(1000), { ...ref, channels: 1 }, {
          sampler: "ddim",
          steps: 1,
          guidance: 1,
          seed: 0,
        }),
      /the model draws 3 channel\(s\), the caption evaluation was prepared for 1/,
    );
  } finally {
    model.dispose();
    ref.dispose();
  }
});

Deno.test("deno task eval on a checkpoint of an image folder scores its captions", async () => {
  const { f, path } = await shapes();
  const model = tinyModel();
  const ck = join(f.root, "checkpoint-0.safetensors");
  const cfg = structuredClone(DEFAULT_CONFIG) as Record<string, any>;
  cfg.model = { ...model.config };
  cfg.data = { ...cfg.data, source: f.folder, holdout: HOLDOUT, label_field: "label" };
  await saveCheckpoint(ck, model, {
    step: 0,
    metadata: {
      train_config: JSON.stringify(cfg),
      classes: JSON.stringify(Object.keys(KINDS).sort()),
    },
  });
  model.dispose();
  // run with the test's cache folder, where its classifier is (cache/classifiers/)
  const run = async (args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        `--config=${join(ROOT, "deno.json")}`,
        "-P=eval",
        "-q",
        join(ROOT, "tasks/eval.ts"),
        "--checkpoint",
        ck,
        ...args,
      ],
      cwd: f.root,
      env: { XDG_RUNTIME_DIR: "/tmp", PIXART_CACHE_DIR: f.imageCacheDir, NO_COLOR: "1" },
      stdin: "null",
    }).output();
    const dec = new TextDecoder();
    return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  };
  const out = join(f.root, "eval");
  const r = await run([
    "--captions",
    "5",
    "--per-prompt",
    "2",
    "--sampler",
    "ddim",
    "--steps",
    "2",
    "--guidance",
    "3",
    "--caption-gap",
    "100,500",
    "--out",
    out,
  ]);
  assert.equal(r.code, 0, r.stderr);
  const rep = JSON.parse(readFileSync(join(out, "eval.json"), "utf8"));
  assert.equal(rep.classifier.label_field, "subcategory");
  assert.equal(rep.classifier.path, join("cache", "classifiers", basename(path)));
  assert.equal(rep.category_field, "category");
  assert.equal(rep.captions.length, 5);
  assert.equal(rep.results.length, 1);
  assert.equal(rep.results[0].samples, 10);
  assert.equal(rep.results[0].guidance, 3);
  assert.ok(existsSync(join(out, "samples-w3.png")));
  assert.deepEqual(
    readFileSync(join(out, "samples-w3.txt"), "utf8").trim().split("\n"),
    rep.captions,
  );
  assert.match(
    r.stdout,
    /\| category +\| captions \| class acc\. \| \(real\) +\| category acc\. \| recall@1 \| recall@5 \|/,
  );
  assert.match(r.stdout, /\| all +\| 5 +\|/);
  assert.match(r.stdout, /FID [0-9.]+ \(real-vs-real floor [0-9.]+, 10 images\)/);
  assert.match(r.stdout, /moved by a pixel [0-9.]+% @1, [0-9.]+% @5/);
  // the caption gap on the evaluation captions' own images: what captionGap gives on them
  assert.deepEqual(rep.caption_gap.map((g: CaptionGap) => g.t), [100, 500]);
  const set = await loadSource(f.folder, { size: 16, channels: 3, cacheDir: f.imageCacheDir });
  const idx = rep.captions.map((c: string) => set.captions!.indexOf(c));
  const again = tinyModel();
  try {
    for (const g of rep.caption_gap as CaptionGap[]) {
      const want = await captionGap(
        again,
        linearSchedule(),
        gatherBatch(prepareImages(set, 16), idx).images,
        rep.captions,
        { t: g.t, seed: 0 },
      );
      assert.equal(g.n, 5);
      for (const k of ["own", "other", "none", "gap"] as const) {
        assert.ok(Math.abs(g[k] - want[k]) <= 1e-5 * Math.abs(want[k]) + 1e-9, `${k} at t ${g.t}`);
      }
      assert.match(r.stderr, new RegExp(`caption gap at t = ${g.t}: -?[0-9.]+%`));
    }
  } finally {
    again.dispose();
  }
  const badT = await run(["--caption-gap", "100,1000", "--out", out]);
  assert.equal(badT.code, 1);
  assert.match(
    badT.stderr.trim(),
    /^error: --caption-gap takes timesteps 0 … 999 separated by commas, got '100,1000'$/m,
  );
  // too few captions to cover the categories: one line
  const bad = await run(["--captions", "2", "--out", out]);
  assert.equal(bad.code, 1);
  assert.match(
    bad.stderr.trim(),
    /^error: 2 evaluation captions cannot cover 3 categories: ask for at least 3$/m,
  );
});

Deno.test("a byte model trained on cut captions is asked for them cut, as the trainer cut them", async () => {
  const { f } = await shapes();
  const whole = await prepare(f);
  const cut = await prepare(f, { truncateCaptionsTo: 8 });
  try {
    assert.ok(whole.captions.some((e) => new TextEncoder().encode(e.caption).length > 8));
    for (const e of cut.captions) {
      assert.ok(new TextEncoder().encode(e.caption).length <= 8, `'${e.caption}' is cut`);
    }
    assert.ok(cut.captions.length > 0); // fewer, where cut captions fall together
  } finally {
    whole.dispose();
    cut.dispose();
  }
});
