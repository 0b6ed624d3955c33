// The web page's training path, in Deno: a folder chosen as the page gets it (File objects named
// by their path) is listed by the command line's code and reads as the command line reads it from
// disk; a bad folder gets the same one-line message; and train/trainer.ts, writing to the page's
// store (web/browser_run_store.ts) and reading the page's sources (web/page_sources.ts), trains
// exactly as `deno task train` does into a folder: the same weights, bit for bit, and a
// checkpoint the command line resumes and samples from. (The page's own decoder is the browser's;
// tests/browser_test.ts runs it in Chromium.)

import assert from "node:assert/strict";
import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";
import { loadConfig, parseConfig } from "../io/config.ts";
import { readWordTable } from "../io/word_table_file.ts";
import type { WordTable } from "../io/word_table.ts";
import { loadImageFolder } from "../io/image_folder.ts";
import { decodePng, writePng } from "../io/png.ts";
import { checkpointContents, readCheckpoint } from "../model/checkpoint.ts";
import { trainInFolder } from "../train/folder_run.ts";
import { train as trainLoop, type TrainResult } from "../train/trainer.ts";
import type { RunStore } from "../train/run_store.ts";
import { BrowserRunStore } from "../web/browser_run_store.ts";
import { chooseFolder, type ImageDecoder, readChosenFolder } from "../web/folder_images.ts";
import { MAX_IMAGE_FILE_BYTES } from "../io/image_header.ts";
import { pageSources } from "../web/page_sources.ts";
import { assertOk, sample, TINY, tinyImageFolder, train } from "./cli_harness.ts";
import { ready } from "./helpers.ts";
import { pool } from "../kernels/mod.ts";
import { encodeSafetensors, parseSafetensors } from "../io/safetensors.ts";

await ready;

const tmp = Deno.makeTempDirSync({ prefix: "page_training_" });
// the run folder's image cache, in this test's own folder
Deno.env.set("PIXART_CACHE_DIR", join(tmp, "cache"));

/** The files under `dir` as an <input webkitdirectory> hands them over: "<folder>/<path>". */
function chosenFiles(dir: string): File[] {
  const top = dir.split("/").at(-1)!;
  const out: File[] = [];
  const walk = (d: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      if (statSync(p).isDirectory()) walk(p);
      else out.push(new File([readFileSync(p)], `${top}/${relative(dir, p)}`));
    }
  };
  walk(dir);
  return out;
}

/** A decoder that is not the command line's: pngjs's 8-bit RGBA, as a canvas gives it. */
const rgbaDecoder: ImageDecoder = (bytes) => {
  const img = decodePng(bytes);
  const rgba = new Uint8Array(img.width * img.height * 4);
  for (let i = 0; i < img.width * img.height; i++) {
    const px = img.pixels.subarray(i * img.channels, (i + 1) * img.channels);
    const grey = img.channels <= 2;
    rgba.set(
      [
        px[0],
        grey ? px[0] : px[1],
        grey ? px[0] : px[2],
        img.channels % 2 === 0 ? px.at(-1)! : 255,
      ],
      4 * i,
    );
  }
  return Promise.resolve({ width: img.width, height: img.height, rgba });
};

const options = { size: 8, channels: 3, labelField: "label", skipBadImages: false };

Deno.test("a folder chosen in the page reads as the command line reads it from disk", async () => {
  const dir = tinyImageFolder(join(tmp, "squares"));
  const chosen = await chooseFolder(chosenFiles(dir));
  assert.equal(chosen.name, "squares");
  const page = await readChosenFolder(chosen, options, () => {}, rgbaDecoder);
  const disk = loadImageFolder(dir, { ...options, cacheDir: null, log: () => {} });
  assert.deepEqual(page.captions, disk.captions);
  assert.deepEqual(page.classNames, disk.classNames);
  assert.deepEqual(page.files, disk.files);
  assert.deepEqual(Array.from(page.labels), Array.from(disk.labels));
  assert.deepEqual(Array.from(page.images), Array.from(disk.images));
  // grey, and one subfolder per class
  const byClass = join(tmp, "by-class");
  for (const [c, v] of [["dark", 30], ["light", 220]] as const) {
    for (let k = 0; k < 2; k++) {
      writePng(join(byClass, c, `${k}.png`), 3, 2, 1, new Uint8Array(6).fill(v + k));
    }
  }
  const grey = { ...options, channels: 1 };
  const pageGrey = await readChosenFolder(
    await chooseFolder(chosenFiles(byClass)),
    grey,
    () => {},
    rgbaDecoder,
  );
  const diskGrey = loadImageFolder(byClass, { ...grey, cacheDir: null, log: () => {} });
  assert.deepEqual(pageGrey.classNames, ["dark", "light"]);
  assert.deepEqual(Array.from(pageGrey.images), Array.from(diskGrey.images));
});

Deno.test("an image in a chosen folder over the size limit is refused unread", async () => {
  const dir = tinyImageFolder(join(tmp, "squares-big"));
  const files = chosenFiles(dir);
  const k = files.findIndex((f) => f.name.endsWith(".png"));
  const big = files[k];
  Object.defineProperty(big, "size", { value: MAX_IMAGE_FILE_BYTES + 1 });
  big.arrayBuffer = () => Promise.reject(new Error("read"));
  await assert.rejects(
    async () => readChosenFolder(await chooseFolder(files), options, () => {}, rgbaDecoder),
    /over the 256 MiB limit/,
  );
});

Deno.test("a bad folder chosen in the page gets the command line's one-line message", async () => {
  const cases: [string, (dir: string) => void][] = [
    ["uncaptioned", (d) => {
      for (const k of [0, 1]) writePng(join(d, `${k}.png`), 2, 2, 1, new Uint8Array(4));
    }],
    ["missing file", (d) => {
      writePng(join(d, "a.png"), 2, 2, 1, new Uint8Array(4));
      writeFileSync(
        join(d, "metadata.jsonl"),
        '{"file_name": "a.png", "text": "a"}\n{"file_name": "b.png", "text": "b"}\n',
      );
    }],
    ["bad JSON", (d) => {
      writePng(join(d, "a.png"), 2, 2, 1, new Uint8Array(4));
      writeFileSync(join(d, "metadata.jsonl"), '{"file_name": "a.png", "text": "a"\n');
    }],
    ["empty class", (d) => {
      writePng(join(d, "cat", "a.png"), 2, 2, 1, new Uint8Array(4));
      mkdirSync(join(d, "dog", "notes"), { recursive: true });
      writeFileSync(join(d, "dog", "notes", "x.txt"), "not an image");
    }],
  ];
  for (const [name, make] of cases) {
    const dir = join(tmp, "bad", name.replace(" ", "-"));
    mkdirSync(dir, { recursive: true });
    make(dir);
    let disk = "";
    try {
      loadImageFolder(dir, { ...options, cacheDir: null, log: () => {} });
    } catch (e) {
      disk = (e as Error).message;
    }
    assert.ok(disk, `${name}: the command line refuses it`);
    let page = "";
    try {
      await chooseFolder(chosenFiles(dir));
    } catch (e) {
      page = (e as Error).message;
    }
    // the page names the folder as the browser does: by its own name
    const top = dir.split("/").at(-1)!;
    assert.equal(page, disk.replaceAll(dir, top), name);
    assert.ok(!page.includes("\n"), `${name}: one line`);
  }
  // an image the decoder refuses names the file, as on the command line
  const dir = join(tmp, "bad", "undecodable");
  writePng(join(dir, "cat", "a.png"), 2, 2, 1, new Uint8Array(4));
  writeFileSync(join(dir, "cat", "b.png"), "not a png");
  const chosen = await chooseFolder(chosenFiles(dir));
  await assert.rejects(
    () => readChosenFolder(chosen, options, () => {}, rgbaDecoder),
    /^Error: data folder undecodable: cannot read image 'cat\/b\.png': .*set data\.skip_bad_images/,
  );
});

Deno.test({
  name: "the trainer with the page's store and sources trains as deno task train does",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = tinyImageFolder(join(tmp, "train-squares"));
    const cfg = loadConfig(TINY, [
      "model.in_channels=3",
      "train.steps=3",
      "train.save_every=0",
      "train.sample_every=0",
      "train.log_every=1",
    ]);
    const quiet = { report: () => {}, stop: { received: null }, keep: 0, grid: false } as const;
    // the command line's way, in this process
    const out = join(tmp, "cli-run");
    const folderRun = await trainInFolder({ ...cfg, data: { ...cfg.data, source: dir } }, {
      ...quiet,
      stage: 1,
      out,
      resume: false,
      fresh: false,
    });
    assert.equal(folderRun.step, 3);
    // the page's way: its store (no IndexedDB here: the checkpoint stays in memory, and says so)
    const chosen = await chooseFolder(chosenFiles(dir));
    const notKept: string[] = [];
    const logged: number[] = [];
    const store = new BrowserRunStore("test", "tiny, stage 1", {
      notKept: (name) => notKept.push(name),
      log: (r) => typeof r.loss === "number" && logged.push(r.loss),
    });
    const sources = pageSources({
      data: { kind: "folder", folder: chosen },
      lessonPrompts: [],
      earlier: null,
      log: () => {},
      // the browser decodes with its own decoder; here pngjs stands in for it
      decode: rgbaDecoder,
      wordTable: readWordTable,
    });
    const pageCfg = { ...cfg, data: { ...cfg.data, source: chosen.name } };
    const pageRun: TrainResult = await trainLoop(pageCfg, {
      ...quiet,
      stage: 1,
      store,
      sources,
      resume: false,
    });
    assert.equal(pageRun.step, 3);
    assert.deepEqual(store.checkpoints(), ["checkpoint-3.safetensors"]);
    assert.deepEqual(notKept, ["checkpoint-3.safetensors"]);
    assert.equal(logged.length, 3, "a log record a step");
    const mine = checkpointIn(store, "checkpoint-3.safetensors");
    const theirs = readCheckpoint(join(out, "checkpoint-3.safetensors"));
    assert.deepEqual([...mine.params.keys()], [...theirs.params.keys()]);
    for (const [name, w] of theirs.params) {
      assert.deepEqual(Array.from(mine.params.get(name)!), Array.from(w), name);
    }
    for (const [name, m] of theirs.optim) {
      assert.deepEqual(Array.from(mine.optim.get(name)!), Array.from(m), `optim ${name}`);
    }
    // the page's checkpoint is the command line's file: it samples, and a run resumes from it
    const run = join(tmp, "from-page");
    mkdirSync(run);
    writeFileSync(join(run, "checkpoint-3.safetensors"), store.bytes("checkpoint-3.safetensors"));
    const png = join(tmp, "from-page.png");
    assertOk(
      await sample([
        "--checkpoint",
        join(run, "checkpoint-3.safetensors"),
        "--prompt",
        "red",
        "--num",
        "2",
        "--steps",
        "2",
        "--out",
        png,
      ]),
    );
    assert.equal(decodePng(readFileSync(png)).width, 2 * 16 + 3 * 2, "two 16×16 samples");
    const resumed = await train([
      "--stage",
      "1",
      "--config",
      TINY,
      "--set",
      "model.in_channels=3",
      "--data",
      dir,
      "--out",
      run,
      "--resume",
      "--steps",
      "4",
      "--no-grid",
    ]);
    assertOk(resumed);
    assert.match(resumed.stderr, /resuming '.*checkpoint-3\.safetensors' at step 3/);
    // stage 2 from the page's stage-1 checkpoint: the command line's --init-from, and the page's
    // own (the Train view hands the trainer the stage-1 checkpoint it chose) give the same weights
    const stage1 = join(run, "checkpoint-3.safetensors");
    const cli2 = join(tmp, "stage2-cli");
    const initFrom = await train([
      "--stage",
      "2",
      "--config",
      TINY,
      "--set",
      "model.in_channels=3",
      "--set",
      "data.truncate_captions=true",
      "--data",
      dir,
      "--out",
      cli2,
      "--init-from",
      stage1,
      "--steps",
      "1",
      "--no-grid",
    ]);
    assertOk(initFrom);
    assert.match(initFrom.stderr, /initialised from '.*checkpoint-3\.safetensors'/);
    const store2 = new BrowserRunStore("test-stage2", "tiny, stage 2", {});
    const cfg2 = {
      ...pageCfg,
      data: { ...pageCfg.data, truncate_captions: true },
      train: { ...pageCfg.train, steps: 1 },
    };
    const page2 = await trainLoop(cfg2, {
      ...quiet,
      stage: 2,
      store: store2,
      sources: pageSources({
        data: { kind: "folder", folder: chosen },
        lessonPrompts: [],
        earlier: { ck: checkpointIn(store, "checkpoint-3.safetensors"), name: "checkpoint-3" },
        log: () => {},
        decode: rgbaDecoder,
        wordTable: readWordTable,
      }),
      resume: false,
    });
    assert.equal(page2.step, 1);
    const mine2 = checkpointIn(store2, "checkpoint-1.safetensors");
    const theirs2 = readCheckpoint(join(cli2, "checkpoint-1.safetensors"));
    assert.equal(mine2.metadata.train_stage, "2");
    assert.deepEqual([...mine2.params.keys()], [...theirs2.params.keys()]);
    for (const [name, w] of theirs2.params) {
      assert.deepEqual(Array.from(mine2.params.get(name)!), Array.from(w), `stage 2 ${name}`);
    }
    // and a command-line checkpoint goes on in the page's store
    const goOn = new BrowserRunStore("test-2", "tiny, stage 1", {}, {
      name: "checkpoint-4.safetensors",
      bytes: readFileSync(join(run, "checkpoint-4.safetensors")),
    });
    const more = await trainLoop({ ...pageCfg, train: { ...pageCfg.train, steps: 5 } }, {
      ...quiet,
      stage: 1,
      store: goOn,
      sources,
      resume: true,
    });
    assert.equal(more.step, 5);
    assert.deepEqual(goOn.checkpoints(), ["checkpoint-4.safetensors", "checkpoint-5.safetensors"]);
    // a run whose start fails after its weights are on the GPU frees them (a page tries again)
    const full = parseSafetensors(goOn.bytes("checkpoint-5.safetensors"));
    const noMoments = encodeSafetensors(
      new Map([...full.tensors].filter(([k]) => !k.startsWith("optim."))),
      full.metadata,
    );
    const before = pool.stats.inUseBytes;
    for (let attempt = 0; attempt < 2; attempt++) {
      const stripped = new BrowserRunStore("test-3", "tiny, stage 1", {}, {
        name: "checkpoint-5.safetensors",
        bytes: noMoments,
      });
      await assert.rejects(
        trainLoop({ ...pageCfg, train: { ...pageCfg.train, steps: 6 } }, {
          ...quiet,
          stage: 1,
          store: stripped,
          sources,
          resume: true,
        }),
        /no optimiser state/,
      );
      assert.equal(pool.stats.inUseBytes, before, `GPU bytes in use after failed start ${attempt}`);
    }
  },
});

Deno.test({
  name: "a words model trains in the page as deno task train trains it, its table from the page",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = tinyImageFolder(join(tmp, "words-squares"));
    const cfg = parseConfig(`
model: {image_size: 8, in_channels: 3, patch_size: 2, hidden_size: 32, depth: 2, num_heads: 2,
  text_len: 8, text_width: 16, text_depth: 1, text_heads: 2, text_encoder: words}
train: {steps: 2, batch_size: 4, save_every: 0, sample_every: 0, log_every: 1, from_scratch: true}
data: {source: squares, label_field: subcategory}
`);
    const quiet = { report: () => {}, stop: { received: null }, keep: 0, grid: false } as const;
    const out = join(tmp, "words-cli");
    await trainInFolder({ ...cfg, data: { ...cfg.data, source: dir } }, {
      ...quiet,
      stage: 2,
      out,
      resume: false,
      fresh: false,
    });
    const chosen = await chooseFolder(chosenFiles(dir));
    const pageCfg = { ...cfg, data: { ...cfg.data, source: chosen.name } };
    const asked: string[] = [];
    const sources = (wordTable: (path: string) => Promise<WordTable>) =>
      pageSources({
        data: { kind: "folder", folder: chosen },
        lessonPrompts: [],
        earlier: null,
        log: () => {},
        decode: rgbaDecoder,
        wordTable,
      });
    const store = new BrowserRunStore("test-words", "words, stage 2", {});
    const run = await trainLoop(pageCfg, {
      ...quiet,
      stage: 2,
      store,
      sources: sources((path) => {
        asked.push(path);
        return readWordTable(path);
      }),
      resume: false,
    });
    assert.equal(run.step, 2);
    assert.deepEqual(asked, [cfg.model.word_table], "the table the config names, asked once");
    const mine = checkpointIn(store, "checkpoint-2.safetensors");
    const theirs = readCheckpoint(join(out, "checkpoint-2.safetensors"));
    assert.equal(mine.metadata.tokenizer, theirs.metadata.tokenizer, "the same table, by hash");
    assert.deepEqual([...mine.params.keys()], [...theirs.params.keys()]);
    for (const [name, w] of theirs.params) {
      assert.deepEqual(Array.from(mine.params.get(name)!), Array.from(w), name);
    }
    // a table the page cannot fetch stops the run before its first step, with the fetch's line
    const failed = new BrowserRunStore("test-words-2", "words, stage 2", {});
    await assert.rejects(
      () =>
        trainLoop(pageCfg, {
          ...quiet,
          stage: 2,
          store: failed,
          sources: sources((path) =>
            Promise.reject(new Error(`could not download ${path}: HTTP 404`))
          ),
          resume: false,
        }),
      new Error(`could not download ${cfg.model.word_table}: HTTP 404`),
    );
    assert.deepEqual(failed.checkpoints(), []);
  },
});

/** One of a store's checkpoints, parsed as the trainer parses it. */
function checkpointIn(store: RunStore, name: string) {
  return checkpointContents(store.readCheckpointFile(name), name);
}
