// The web page in a real browser: `deno task serve` serves it, headless Chromium draws with the
// project's kernels, model and sampler on WebGPU (its SwiftShader adapter when there is no GPU),
// and the evaluation classifier, here in Deno, reads the canvases back. Without a browser the test
// fails: install chromium (as .ci/run does) or set PIXART_CHROMIUM to a Chrome or Chromium binary.
// It applies a LoRA adapter (at scale 0 the drawing is the model's own, bit for bit; an adapter of
// another model is refused beside its field), then switches to the emoji model and checks that it
// draws in colour.
// With PIXART_SCREENSHOT=1 it also saves the page after its first drawing as docs/web_page.png.
//
// A second test trains in the page's Train view with the project's trainer: the tiny config on a
// small image folder chosen as a user chooses one (nothing uploaded), until its loss has fallen
// and its samples have changed; the downloaded checkpoint loads and samples here in Deno. A bad
// folder gets the command line's one-line message; a checkpoint of `deno task train` goes on in
// the page, held by Pause, stopped by Stop, kept across a reload; and a GPU process that crashes
// mid-run is one sentence, with the last checkpoint still downloadable. (The README's picture of
// the view mid-run is bench/browser_training.ts's, from a longer run on the digits.)
//
// A third test runs the matmul's subgroup variant where it exists: Chromium's adapter (SwiftShader
// too) has the `subgroups` feature that Deno's lavapipe lacks. A page of its own
// (tests/browser_matmul_page.ts, bundled here) checks it against the scalar variant and the
// reference, and times every variant on one product.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { Browser, Page } from "puppeteer-core";
import { launchChromium, startServer } from "../bench/browser.ts";
import { Classifier } from "../eval/classifier.ts";
import { loadImageFolder } from "../io/image_folder.ts";
import { decodePng, writePng } from "../io/png.ts";
import { readCheckpoint } from "../model/checkpoint.ts";
import { bundledModel } from "../model/bundled.ts";
import { Lora, peftName, weightsSha256 } from "../model/lora.ts";
import { saveLora } from "../model/lora_file.ts";
import { tensor } from "../kernels/mod.ts";
import { bundledModelPath } from "../diffusion/load_pipeline.ts";
import { rand } from "./helpers.ts";
import { pngHeader } from "./png_fixtures.ts";
import { DEFAULT_GUIDANCE, DEFAULT_STEPS } from "../diffusion/generate.ts";
import { loadMnistNpm } from "../io/data.ts";
import { prepareImages, splitHoldout } from "../io/image_set.ts";
import { toByte } from "../io/pixels.ts";
import { assertOk, sample, TINY, tinyImageFolder, train } from "./cli_harness.ts";
import { ready } from "./helpers.ts";
import type { MatmulReport } from "./browser_matmul_page.ts";

await ready;

// Functions given to page.evaluate and $eval run in the page; Deno's types have no DOM, so the
// page's objects are loosely typed in them.
declare const document: any;

const ROOT = new URL("../", import.meta.url);
/**
 * The page draws with the default sampler, UniPC, and its default steps, 4; on this model 4 UniPC
 * steps score as 20 DPM-Solver++(2M) steps (docs/RESULTS.md). Each step costs seconds here.
 */
const STEPS = DEFAULT_STEPS;
const SLOW = 600_000;

/** Opens the page and waits until it has settled: ready, or it cannot run here. */
async function open(browser: Browser, url: string, problems: string[]): Promise<Page> {
  const page = await browser.newPage();
  page.on("pageerror", (e) => problems.push(`page error: ${e}`));
  page.on("console", (m) => {
    if (m.type() === "error") problems.push(`console error: ${m.text()}`);
  });
  await page.setViewport({ width: 900, height: 700 });
  await page.goto(url);
  await page.waitForFunction(
    () => !["starting", "loading"].includes(document.getElementById("app")!.dataset.state!),
    { timeout: SLOW },
  );
  return page;
}

const state = (page: Page) =>
  page.$eval(
    "#app",
    (e: any) => ({ ...e.dataset, status: e.querySelector("#status")!.textContent! }),
  );

async function setInput(page: Page, id: string, value: string | number): Promise<void> {
  await page.$eval(`#${id}`, (e: any, v) => {
    e.value = v;
    e.dispatchEvent(new Event("input"));
  }, String(value));
}

/**
 * A LoRA adapter file for a bundled model, with B not zero (a trained one changes the drawing); or
 * one that claims to be of that model's config but of another's weights (`baseOf`).
 */
async function adapterFile(model: string, baseOf = model): Promise<string> {
  const ck = readCheckpoint(bundledModelPath(model)!);
  const other = readCheckpoint(bundledModelPath(baseOf)!);
  const lora = Lora.init({ rank: 2, alpha: 2, targets: ["blocks.*.attn", "blocks.*.mlp"] }, 0, {
    sha256: await weightsSha256(other.model, other.ema ?? other.params),
    name: bundledModel(baseOf)!.file,
    weights: "ema",
    config: ck.model,
  });
  for (const l of lora.layers) {
    lora.params.set(peftName(l.path, "B"), tensor(rand(l.out * 2, l.out, 0.3), [l.out, 2]));
  }
  const path = `${await Deno.makeTempDir()}/${model}-${baseOf}.safetensors`;
  await saveLora(path, lora, { step: 1 });
  lora.dispose();
  return path;
}

/** Fills the form, presses Draw and waits for request `nth` to finish. */
async function draw(
  page: Page,
  nth: number,
  o: {
    prompt: string;
    num: number;
    seed: number;
    negative?: string;
    guidance?: number;
    loraScale?: number;
  },
): Promise<void> {
  await setInput(page, "prompt", o.prompt);
  await setInput(page, "negative", o.negative ?? "");
  await setInput(page, "num", o.num);
  await setInput(page, "seed", o.seed);
  await setInput(page, "steps", STEPS);
  await setInput(page, "guidance", o.guidance ?? DEFAULT_GUIDANCE);
  await setInput(page, "lora-scale", o.loraScale ?? 1);
  await page.click("#draw");
  await page.waitForFunction(
    (n) => {
      const d = document.getElementById("app")!.dataset;
      return d.state === "error" || (d.draws === String(n) && d.state === "ready");
    },
    { timeout: SLOW },
    nth,
  );
  const s = await state(page);
  assert.equal(s.state, "ready", `request ${nth} failed: ${s.status}`);
}

/** A held-out 3 at the digit model's size with its lower half black, as a PNG file. */
async function halfThree(): Promise<string> {
  const raw = prepareImages(await loadMnistNpm(), 32);
  const i = [...splitHoldout(raw.n, 0.1, 0).holdout].find((i) => raw.labels[i] === 3)!;
  const px = Uint8Array.from(raw.images.subarray(i * 1024, (i + 1) * 1024), toByte);
  px.fill(0, 16 * 32);
  const dir = await Deno.makeTempDir({ prefix: "pixart-browser-" });
  globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  writePng(`${dir}/half-three.png`, 32, 32, 1, px);
  return `${dir}/half-three.png`;
}

/** The grid's images as [n, 1, S, S] values in [-1, 1] (the red channel of grey pixels). */
async function canvasImages(page: Page): Promise<{ images: Float32Array; n: number }> {
  const rows = await page.$$eval("#grid canvas", (cs) =>
    cs.map((c: any) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      return Array.from({ length: d.length / 4 }, (_, i) => d[4 * i]);
    }));
  const images = Float32Array.from(rows.flat(), (b) => (b / 255) * 2 - 1);
  return { images, n: rows.length };
}

Deno.test({
  name:
    "web page in Chromium: draws sevens, again without leaking, explains bad prompts, takes a negative prompt, edits an image, applies a LoRA adapter, draws emoji",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const server = await startServer();
    let browser: Browser | null = null;
    const problems: string[] = [];
    try {
      browser = await launchChromium();
      const page = await open(browser, server.url, problems);
      const start = await state(page);
      assert.equal(start.state, "ready", start.status);
      const bytes = start.poolBytes;
      /** request 5's drawing: "seven", seed 2, guidance by default */
      let sevens2: Float32Array | null = null;
      assert.ok(Number(bytes) > 0, "the model's weights are in the pool");

      await t.step("'seven' ×8: the classifier recognises at least 7 of 8", async () => {
        await draw(page, 1, { prompt: "seven", num: 8, seed: 0 });
        if (Deno.env.get("PIXART_SCREENSHOT") === "1") {
          await page.screenshot({
            path: new URL("docs/web_page.png", ROOT).pathname,
            fullPage: true,
          });
        }
        assert.equal((await state(page)).stepsShown, String(STEPS), "every step was shown");
        const { images, n } = await canvasImages(page);
        assert.equal(n, 8);
        const clf = Classifier.load(
          new URL("checkpoints/classifier-mnist.safetensors", ROOT).pathname,
        );
        const { probs } = await clf.predict(images, n);
        clf.dispose();
        const K = 10;
        let sevens = 0;
        for (let i = 0; i < n; i++) {
          const row = probs.subarray(i * K, (i + 1) * K);
          if (row.indexOf(Math.max(...row)) === 7) sevens++;
        }
        assert.ok(sevens >= 7, `${sevens} of 8 drawn sevens recognised`);
        assert.equal((await state(page)).poolBytes, bytes, "GPU memory in use after request 1");
      });

      await t.step(
        "a second request: two prompts, captions in order, memory unchanged",
        async () => {
          // 8 images again: the same shapes, so no kernels to compile
          await draw(page, 2, { prompt: "3 | seven", num: 4, seed: 1 });
          const captions = await page.$$eval(
            "#grid figcaption",
            (fs) => fs.map((f) => f.textContent),
          );
          assert.deepEqual(captions, ["3", "3", "3", "3", "seven", "seven", "seven", "seven"]);
          const { images } = await canvasImages(page);
          assert.ok(
            images.some((v) => v > 0) && images.some((v) => v < 0),
            "the canvases are drawn",
          );
          assert.equal((await state(page)).poolBytes, bytes, "GPU memory in use after request 2");
        },
      );

      await t.step(
        "a too-long or empty prompt is a message beside the box; nothing is drawn",
        async () => {
          for (
            const [prompt, says] of [["a prompt far too long", "max_length 16"], [
              "seven |",
              "empty",
            ]]
          ) {
            await setInput(page, "prompt", prompt);
            const msg = await page.$eval("#prompt-msg", (e) => e.textContent!);
            assert.match(msg, new RegExp(says), `message for ${JSON.stringify(prompt)}`);
            assert.equal(
              await page.$eval("#prompt", (e) => e.getAttribute("aria-invalid")),
              "true",
            );
            await page.click("#draw");
            const s = await state(page);
            assert.equal(s.state, "ready");
            assert.equal(s.draws, "2", "no request was started");
          }
          await setInput(page, "prompt", "seven");
          assert.equal(await page.$eval("#prompt-msg", (e) => e.textContent), "");
        },
      );

      await t.step(
        "a negative prompt: the prompt as its own negative draws what guidance 1 draws",
        async () => {
          await setInput(page, "negative", "a prompt far too long");
          assert.match(await page.$eval("#negative-msg", (e) => e.textContent!), /max_length 16/);
          await page.click("#draw");
          const refused = await state(page);
          assert.equal(refused.draws, "2", "no request was started");
          assert.equal(refused.state, "ready", "nor one that failed");
          // ε_n + w·(ε_c − ε_n) with n = c is ε_c: guidance without effect
          await draw(page, 3, { prompt: "seven", num: 8, seed: 2, negative: "seven" });
          assert.match((await state(page)).status, /negative "seven"/);
          const self = (await canvasImages(page)).images;
          await draw(page, 4, { prompt: "seven", num: 8, seed: 2, guidance: 1 });
          const unguided = (await canvasImages(page)).images;
          let most = 0;
          for (let i = 0; i < self.length; i++) {
            most = Math.max(most, Math.abs(self[i] - unguided[i]) * 127.5);
          }
          assert.ok(most <= 2, `the two drawings differ by up to ${most} levels`);
          await draw(page, 5, { prompt: "seven", num: 8, seed: 2 });
          const guided = (await canvasImages(page)).images;
          sevens2 = guided;
          assert.ok(
            guided.some((v, i) => Math.abs(v - unguided[i]) * 127.5 > 50),
            "guidance 2.5 without the negative draws differently",
          );
          assert.equal((await state(page)).poolBytes, bytes, "GPU memory in use after request 5");
        },
      );
      await t.step(
        "a start image: strength 0 draws it back; a painted mask keeps the rest, completes a 3",
        async () => {
          const file = await halfThree();
          const px = decodePng(Deno.readFileSync(file)).pixels;
          // a header that declares a decompression bomb is refused before the browser decodes it
          const bomb = join(dirname(file), "bomb.png");
          Deno.writeFileSync(bomb, pngHeader(20000, 20000));
          await (await page.$("#init-image"))!.uploadFile(bomb);
          await page.waitForFunction(() => document.getElementById("init-msg")!.textContent !== "");
          assert.match(
            await page.$eval("#init-msg", (e) => e.textContent!),
            /^cannot read image 'bomb\.png': png: 20000×20000 is 400,000,000 pixels, over the/,
          );
          await (await page.$("#init-image"))!.uploadFile(file);
          await page.waitForFunction(() => !document.getElementById("edit").hidden);
          assert.equal(await page.$eval("#init-msg", (e) => e.textContent), "");
          await setInput(page, "strength", 0);
          await draw(page, 6, { prompt: "three", num: 2, seed: 0 });
          assert.match((await state(page)).status, /, from half-three\.png at strength 0,/);
          const back = await canvasImages(page);
          for (let k = 0; k < back.n; k++) {
            const got = Uint8Array.from(back.images.subarray(k * 1024, (k + 1) * 1024), toByte);
            assert.deepEqual(got, px, `sample ${k} is the start image`);
          }

          // paint the lower half with a brush of radius 40 of the mask's 256 pixels
          const box = (await (await page.$("#mask-paint"))!.boundingBox())!;
          await setInput(page, "brush", 40);
          for (const y of [0.62, 0.8, 0.97]) {
            await page.mouse.move(box.x + 0.02 * box.width, box.y + y * box.height);
            await page.mouse.down();
            await page.mouse.move(box.x + 0.98 * box.width, box.y + y * box.height, { steps: 8 });
            await page.mouse.up();
          }
          await setInput(page, "strength", 1);
          await draw(page, 7, { prompt: "three", num: 4, seed: 0 });
          assert.match((await state(page)).status, /, inpainting half-three\.png at strength 1,/);
          const { images, n } = await canvasImages(page);
          let changed = 0;
          for (let k = 0; k < n; k++) {
            const got = Uint8Array.from(images.subarray(k * 1024, (k + 1) * 1024), toByte);
            // rows 0-13 lie above every stroke; rows 16-31 are covered
            assert.deepEqual(got.subarray(0, 14 * 32), px.subarray(0, 14 * 32), `sample ${k}`);
            for (let i = 16 * 32; i < 1024; i++) changed += Number(got[i] !== px[i]);
          }
          assert.ok(changed > 4 * 100, `${changed} pixels of the painted half changed`);
          const clf = Classifier.load(
            new URL("checkpoints/classifier-mnist.safetensors", ROOT).pathname,
          );
          const { probs } = await clf.predict(images, n);
          clf.dispose();
          let threes = 0;
          for (let i = 0; i < n; i++) {
            const row = probs.subarray(i * 10, (i + 1) * 10);
            if (row.indexOf(Math.max(...row)) === 3) threes++;
          }
          assert.ok(threes >= 3, `${threes} of ${n} completed digits read as 3`);
          await page.click("#remove-image");
          assert.ok(await page.$eval("#edit", (e) => e.hidden), "the image is removed");
          await setInput(page, "prompt", "seven"); // the example, as the next step expects
          assert.equal((await state(page)).poolBytes, bytes, "GPU memory in use after request 7");
        },
      );
      await t.step(
        "a LoRA adapter: at scale 0 the model's own drawing, at 1 another; another model's refused",
        async () => {
          const good = await adapterFile("digits");
          const other = await adapterFile("digits", "emoji");
          let reads = 0;
          const choose = async (path: string) => {
            await (await page.$("#lora"))!.uploadFile(path);
            await page.waitForFunction(
              (n) => {
                const app = document.getElementById("app")!;
                return app.dataset.loraReads === String(n) && app.dataset.state === "ready";
              },
              { timeout: SLOW },
              ++reads,
            );
          };
          await choose(good);
          assert.equal((await state(page)).lora, good.split("/").at(-1));
          await draw(page, 8, { prompt: "seven", num: 8, seed: 2, loraScale: 0 });
          assert.deepEqual((await canvasImages(page)).images, sevens2, "scale 0");
          await draw(page, 9, { prompt: "seven", num: 8, seed: 2, loraScale: 1 });
          assert.match((await state(page)).status, /LoRA digits-digits\.safetensors × 1/);
          const adapted = (await canvasImages(page)).images;
          assert.ok(
            adapted.some((v, i) => Math.abs(v - sevens2![i]) * 127.5 > 50),
            "the adapter at scale 1 changes the drawing",
          );
          await choose(other);
          assert.match(
            await page.$eval("#lora-msg", (e) => e.textContent!),
            /was trained on other weights than those of 'checkpoints\/pixart_mnist\.safetensors'.*pixart_emoji/,
          );
          assert.equal((await state(page)).lora, "");
          await choose(bundledModelPath("digits")!);
          assert.match(
            await page.$eval("#lora-msg", (e) => e.textContent!),
            /^LoRA adapter 'pixart_mnist\.safetensors': not an adapter of this project/,
          );
          assert.equal((await state(page)).lora, "");
          assert.equal(
            (await state(page)).poolBytes,
            bytes,
            "the refused adapter's memory is freed",
          );
          await draw(page, 10, { prompt: "seven", num: 8, seed: 2 });
          assert.deepEqual(
            (await canvasImages(page)).images,
            sevens2,
            "no adapter after a refusal",
          );
        },
      );
      await t.step(
        "the emoji model: its example prompt replaces the digits' one, drawn in colour",
        async () => {
          const emoji = bundledModel("emoji");
          assert.ok(emoji, "no bundled emoji model");
          await page.select("#model", "emoji");
          await page.waitForFunction(
            (file) => {
              const app = document.getElementById("app")!;
              return app.dataset.state === "error" ||
                (app.dataset.state === "ready" && app.textContent.includes(file));
            },
            { timeout: SLOW },
            emoji.file,
          );
          const s = await state(page);
          assert.equal(s.state, "ready", s.status);
          // the digit model's weights and draws went back to the GPU, not to the pool's free lists
          assert.equal(s.poolAllocated, s.poolBytes, "only the emoji model's buffers are held");
          assert.equal(await page.$eval("#prompt", (e) => e.value), emoji.prompt);
          await draw(page, 11, { prompt: emoji.prompt, num: 2, seed: 0 });
          const rgb = await page.$$eval(
            "#grid canvas",
            (cs) =>
              cs.map((c: any) =>
                Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data)
              ),
          );
          assert.equal(rgb.length, 2);
          // grey pixels have r = g = b; an emoji has colours
          let coloured = 0;
          for (const d of rgb as number[][]) {
            for (let i = 0; i < d.length; i += 4) {
              if (Math.max(d[i], d[i + 1], d[i + 2]) - Math.min(d[i], d[i + 1], d[i + 2]) > 40) {
                coloured++;
              }
            }
          }
          assert.ok(coloured >= 50, `${coloured} coloured pixels in two emoji`);
        },
      );
      assert.deepEqual(problems, [], "no errors in the page or its console");
      await browser.close();

      await t.step("no WebGPU adapter: the page says so and how to get one", async () => {
        browser = await launchChromium(["--no-sandbox", "--disable-gpu"]);
        const page = await open(browser, server.url, problems);
        const s = await state(page);
        assert.equal(s.state, "no-webgpu", s.status);
        assert.match(s.status, /no adapter.*enable-unsafe-webgpu/);
      });
    } finally {
      await browser?.close();
      await server.stop();
    }
  },
});

// ---------------------------------------------------------------------------------------------
// the Train view

const trainState = (page: Page) =>
  page.$eval("#train", (e: any) => ({
    ...e.dataset,
    status: e.querySelector("#train-status")!.textContent!,
    messages: e.querySelector("#train-messages")!.textContent!,
  }));

/** Sets a form field of the Train view as a user does (input and change). */
async function setField(page: Page, id: string, value: string | number): Promise<void> {
  await page.$eval(`#${id}`, (e: any, v) => {
    e.value = v;
    e.dispatchEvent(new Event("input"));
    e.dispatchEvent(new Event("change"));
  }, String(value));
}

/** Waits until the Train view's state is one of `states` (or an error), and returns it. */
async function trainUntil(page: Page, states: string[]) {
  await page.waitForFunction(
    (want: string[]) => {
      const s = document.getElementById("train")!.dataset.state!;
      return want.includes(s) || s === "error";
    },
    { timeout: SLOW, polling: 200 },
    states,
  );
  const s = await trainState(page);
  assert.ok(states.includes(s.state!), `${s.state}: ${s.status}\n${s.messages}`);
  return s;
}

/** Each sample strip's canvases as bytes, newest strip first. */
function strips(page: Page): Promise<number[][]> {
  return page.$$eval(
    ".strip",
    (rows) =>
      rows.map((r: any) =>
        [...r.querySelectorAll("canvas")].flatMap((c: any) =>
          Array.from(c.getContext("2d").getImageData(0, 0, c.width, c.height).data as number[])
        )
      ),
  );
}

/** Presses Download and waits for the file Chromium saves into `dir`. */
async function downloadCheckpoint(page: Page, dir: string, name: string): Promise<string> {
  await page.click("#train-download");
  const path = join(dir, name);
  const t0 = Date.now();
  while (!existsSync(path) || statSync(path).size === 0) {
    if (Date.now() - t0 > 60_000) throw new Error(`no ${name} downloaded into ${dir}`);
    await new Promise((r) => setTimeout(r, 200));
  }
  return path;
}

Deno.test({
  name:
    "Train view in Chromium: a bad folder's message, tiny on an image folder (loss falls, samples change), its checkpoint in Deno, a CLI checkpoint goes on, Pause and Stop, a reload, a lost GPU",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    const tmp = Deno.makeTempDirSync({ prefix: "browser_train_" });
    const downloads = join(tmp, "downloads");
    mkdirSync(downloads);
    const server = await startServer();
    let browser: Browser | null = null;
    const problems: string[] = [];
    try {
      browser = await launchChromium();
      const page = await open(browser, server.url, problems);
      const cdp = await page.createCDPSession();
      await cdp.send("Browser.setDownloadBehavior", { behavior: "allow", downloadPath: downloads });
      await page.click("#tab-train");
      await page.waitForFunction(
        () => /^Choose/.test(document.getElementById("train-status")!.textContent!),
        { timeout: SLOW },
      );
      const folderInput = (await page.$("#train-folder"))!;

      await t.step("a bad folder: the command line's one-line message, in the page", async () => {
        const bad = join(tmp, "uncaptioned");
        for (const k of [0, 1]) writePng(join(bad, `${k}.png`), 4, 4, 1, new Uint8Array(16));
        let cli = "";
        try {
          loadImageFolder(bad, { size: 16, channels: 1, cacheDir: null, log: () => {} });
        } catch (e) {
          cli = (e as Error).message;
        }
        await setField(page, "train-data", "folder");
        await folderInput.uploadFile(bad);
        await page.waitForFunction(
          () => document.getElementById("train-data-msg")!.textContent !== "",
          { timeout: SLOW },
        );
        const msg = await page.$eval("#train-data-msg", (e: any) => e.textContent);
        assert.equal(msg, cli.replaceAll(bad, "uncaptioned"));
        assert.match(msg, /2 images but no metadata\.jsonl: caption them in/);
        // Train refuses to start without a folder it can read
        await page.click("#train-start");
        const s = await trainUntil(page, ["error"]);
        assert.match(s.status, /^choose a folder of images first/, "no run started");
        assert.equal((await strips(page)).length, 0, "no samples drawn");
      });

      let samples: number[][] = [];
      await t.step(
        "tiny on a folder of 12 images: the loss falls, the samples change",
        async () => {
          const folder = tinyImageFolder(join(tmp, "squares"));
          await folderInput.uploadFile(folder);
          await page.waitForFunction(
            () =>
              /Folder squares: 12 images/.test(
                document.getElementById("train-status")!.textContent!,
              ),
            { timeout: SLOW },
          );
          await setField(page, "train-size", "tiny");
          await setField(page, "train-stage", "1");
          await setField(page, "train-steps", 60);
          await setField(page, "train-every", 30);
          await page.click("#train-start");
          const s = await trainUntil(page, ["done"]);
          assert.equal(s.step, "60");
          assert.equal(s.strips, "2");
          assert.equal(s.saved, "checkpoint-60.safetensors");
          const first = Number(s.firstLoss), last = Number(s.loss);
          assert.ok(last < 0.8 * first, `the loss fell from ${first} to ${last}`);
          assert.match(s.messages, /stage 1: [\d,]+ parameters, 11 training images/);
          samples = await strips(page);
          assert.equal(samples.length, 2);
          let moved = 0;
          for (let i = 0; i < samples[0].length; i++) {
            if (Math.abs(samples[0][i] - samples[1][i]) > 8) moved++;
          }
          assert.ok(moved > samples[0].length / 10, `${moved} of the strip's bytes changed`);
          // the data preview: the folder's images as the model sees them, captioned by class
          const captions = await page.$$eval(
            "#train-preview figcaption",
            (fs) => fs.map((f: any) => f.textContent),
          );
          assert.ok(captions.includes("red") && captions.includes("blue"), captions.join());
        },
      );

      await t.step("the downloaded checkpoint loads and samples in Deno", async () => {
        const file = await downloadCheckpoint(page, downloads, "checkpoint-60.safetensors");
        const ck = readCheckpoint(file);
        assert.equal(ck.step, 60);
        assert.equal(ck.metadata.train_stage, "1");
        assert.deepEqual(JSON.parse(ck.metadata.classes), ["blue", "green", "red"]);
        assert.ok(ck.ema && ck.optim.size > 0, "EMA weights and Adam's moments");
        const png = join(tmp, "from-page.png");
        assertOk(
          await sample([
            "--checkpoint",
            file,
            "--prompt",
            "red",
            "--num",
            "3",
            "--steps",
            "4",
            "--out",
            png,
          ]),
        );
        const g = decodePng(Deno.readFileSync(png));
        assert.deepEqual([g.width, g.height], [3 * 16 + 4 * 2, 16 + 2 * 2]);
      });

      await t.step(
        "a checkpoint of deno task train goes on in the page; Pause holds it, Stop saves",
        async () => {
          const out = join(tmp, "cli-run");
          assertOk(
            await train(["--stage", "1", "--config", TINY, "--out", out, "--steps", "2"]),
          );
          await setField(page, "train-data", "digits");
          const resumeInput = (await page.$("#train-resume-file"))!;
          const continuing = () =>
            page.waitForFunction(
              () => /^Continuing/.test(document.getElementById("train-setup-msg")!.textContent!),
              { timeout: SLOW },
            );
          await resumeInput.uploadFile(join(out, "checkpoint-2.safetensors"));
          await continuing();
          // the choice can be undone: a fresh run's form again
          await page.click("#train-new-run");
          await page.waitForFunction(
            () => document.getElementById("train-setup-msg")!.textContent === "",
            { timeout: SLOW },
          );
          const fresh = await page.evaluate(() => ({
            size:
              (document.getElementById("train-size") as unknown as { disabled: boolean }).disabled,
            hidden:
              (document.getElementById("train-new-run") as unknown as { hidden: boolean }).hidden,
          }));
          assert.deepEqual([fresh.size, fresh.hidden], [false, true]);
          await resumeInput.uploadFile(join(out, "checkpoint-2.safetensors"));
          await continuing();
          await setField(page, "train-steps", 400);
          await setField(page, "train-every", 10);
          // on other data than it trained on, Train asks first (the folder chosen before)
          await setField(page, "train-data", "folder");
          await page.click("#train-start");
          await page.waitForFunction(
            () =>
              /trained on 'digits', and the data chosen is 'squares': choose its data, or click Train again/
                .test(document.getElementById("train-setup-msg")!.textContent!),
            { timeout: SLOW },
          );
          assert.equal(await page.$eval("#train", (e: any) => e.dataset.state), "done");
          await setField(page, "train-data", "digits");
          await page.click("#train-start");
          await page.waitForFunction(
            () => Number(document.getElementById("train")!.dataset.step) >= 12,
            { timeout: SLOW, polling: 100 },
          );
          await page.click("#train-pause");
          await trainUntil(page, ["paused"]);
          const held = Number((await trainState(page)).step);
          await new Promise((r) => setTimeout(r, 3000));
          assert.ok(
            Number((await trainState(page)).step) <= held + 2,
            "no step is taken while paused (beyond the one in flight)",
          );
          await page.click("#train-pause"); // Resume
          await page.waitForFunction(
            (h: number) => Number(document.getElementById("train")!.dataset.step) > h + 2,
            { timeout: SLOW, polling: 100 },
            held,
          );
          await page.click("#train-stop");
          const s = await trainUntil(page, ["stopped"]);
          assert.match(s.messages, /resuming 'checkpoint-2\.safetensors' at step 2/);
          assert.match(s.messages, /interrupted \(stop\) at step (\d+): saving a checkpoint/);
          const at = Number(/interrupted \(stop\) at step (\d+)/.exec(s.messages)![1]);
          assert.ok(at > 12 && at < 400, `stopped at step ${at}`);
          assert.equal(s.saved, `checkpoint-${at}.safetensors`);
          // the form is a fresh run's again, without a reload: its size and stage free to change
          const form = await page.evaluate(() => ({
            size:
              (document.getElementById("train-size") as unknown as { disabled: boolean }).disabled,
            stage:
              (document.getElementById("train-stage") as unknown as { disabled: boolean }).disabled,
            msg: document.getElementById("train-setup-msg")!.textContent,
          }));
          assert.deepEqual([form.size, form.stage], [false, false]);
          assert.doesNotMatch(form.msg ?? "", /^Continuing/);
          // kept in the browser: after a reload it is listed, and it downloads
          await page.reload();
          await page.click("#tab-train");
          await page.waitForFunction(
            (n: string) => document.getElementById("train-saved")!.textContent!.includes(n),
            { timeout: SLOW },
            `step ${at},`,
          );
        },
      );

      await t.step(
        "a GPU lost mid-run: one sentence, and the last checkpoint downloads",
        async () => {
          await page.waitForFunction(
            () => /^Choose/.test(document.getElementById("train-status")!.textContent!),
            { timeout: SLOW },
          );
          await setField(page, "train-data", "digits");
          await setField(page, "train-size", "tiny");
          await setField(page, "train-stage", "1");
          await setField(page, "train-steps", 1000);
          await setField(page, "train-every", 5);
          await page.click("#train-start");
          await page.waitForFunction(
            () => document.getElementById("train")!.dataset.saved === "checkpoint-5.safetensors",
            { timeout: SLOW, polling: 100 },
          );
          const gpu = await browser!.target().createCDPSession();
          await gpu.send("Browser.crashGpuProcess" as any);
          const s = await trainUntil(page, ["device-lost"]);
          assert.match(
            s.status,
            /^The GPU stopped working at step \d+ \(.*\); checkpoint-\d+\.safetensors is kept in this browser: download it, and reload the page to go on\.$/,
          );
          const name = /(checkpoint-\d+\.safetensors)/.exec(s.status)![1];
          const ck = readCheckpoint(await downloadCheckpoint(page, downloads, name));
          assert.equal(`checkpoint-${ck.step}.safetensors`, name);
          // the Draw view says so too, and takes no drawing
          const drawView = await state(page);
          assert.equal(drawView.state, "error");
          assert.match(drawView.status, /^The GPU stopped working \(.*\): reload the page\.$/);
        },
      );
      assert.deepEqual(
        problems.filter((p) => !/Instance reference no longer exists|GPU|lost/i.test(p)),
        [],
        "no errors in the page or its console",
      );
    } finally {
      await browser?.close();
      await server.stop();
    }
  },
});

/** Bundles tests/browser_matmul_page.ts for the browser and serves it in a blank page. */
async function serveMatmulPage(): Promise<{ url: string; stop: () => Promise<void> }> {
  const dir = await Deno.makeTempDir();
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "bundle",
      "--platform",
      "browser",
      "--format",
      "esm",
      "-o",
      `${dir}/page.js`,
      "tests/browser_matmul_page.ts",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`deno bundle failed: ${new TextDecoder().decode(out.stderr)}`);
  const js = await Deno.readFile(`${dir}/page.js`);
  await Deno.remove(dir, { recursive: true });
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => {
    switch (new URL(req.url).pathname) {
      case "/":
        return new Response(
          '<!doctype html><link rel="icon" href="data:,"><script type="module" src="/page.js"></script>',
          {
            headers: { "content-type": "text/html; charset=utf-8" },
          },
        );
      case "/page.js":
        return new Response(js, { headers: { "content-type": "text/javascript; charset=utf-8" } });
      default:
        return new Response("not found\n", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}/`, stop: () => server.shutdown() };
}

Deno.test({
  name: "matmul in Chromium: the subgroup variant, every layout and epilogue, the scalar's bits",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const server = await serveMatmulPage();
    let browser: Browser | null = null;
    const problems: string[] = [];
    try {
      browser = await launchChromium();
      const page = await browser.newPage();
      page.on("pageerror", (e) => problems.push(`page error: ${e}`));
      page.on("console", (m) => {
        if (m.type() === "error") problems.push(`console error: ${m.text()}`);
      });
      await page.goto(server.url);
      await page.waitForFunction(() => typeof (globalThis as any).runMatmulChecks === "function");
      const r: MatmulReport = await page.evaluate(() => (globalThis as any).runMatmulChecks());
      console.log(
        `${r.adapter}, subgroup size ${r.subgroupSize}: ms per ${r.timed} product ` +
          JSON.stringify(r.ms),
      );
      assert.ok(
        r.subgroups,
        `the adapter '${r.adapter}' lacks the subgroups feature, so the subgroup variant cannot ` +
          "be tested here (Chromium's SwiftShader has it)",
      );
      assert.deepEqual(r.ran, { scalar: ["scalar"], subgroup: ["subgroup"] }, "what ran");
      assert.deepEqual(r.partial, [3, 6], "workgroups that leave subgroups partly empty");
      assert.ok(r.ms.subgroup > 0, "the subgroup variant was timed");
      assert.deepEqual(problems, [], "no errors in the page or its console");
    } finally {
      await browser?.close();
      await server.stop();
    }
  },
});
