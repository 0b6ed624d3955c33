// How fast the page's Train view trains in Chromium (on SwiftShader, its CPU adapter, where no GPU
// is enabled) against `deno task train` on Deno's adapter (lavapipe on a machine without a GPU):
// the same trainer and config (configs/tiny.yaml on the digits, batch 8, a log record every 30
// steps), run in alternation, Deno then Chromium, --rounds times. A run's speed is taken from its
// log records between step 60 and step 270, after the first steps' kernel compiles; the last line
// is the ratio of the medians. With --screenshot FILE it then trains the same model for longer,
// with a strip of samples every 100 steps, and saves the view mid-run (the README's picture).
// Not part of the product; the machine should be otherwise quiet.
//
//   deno run -A bench/browser_training.ts [--rounds 2] [--screenshot docs/train_view.png]

import type { Browser, Page } from "puppeteer-core";
import { launchChromium, startServer } from "./browser.ts";
import { parseArgs } from "node:util";

// Functions given to page.evaluate and $eval run in the page; Deno's types have no DOM.
declare const document: any;

const ROOT = new URL("../", import.meta.url);
const STEPS = 300;
const LOG_EVERY = 30;
const FROM = 60, TO = 270;

const { values: a } = parseArgs({
  args: Deno.args,
  options: { rounds: { type: "string", default: "2" }, screenshot: { type: "string" } },
});
const rounds = Number(a.rounds);

/** Steps per second between the records at FROM and TO of a log's (step, seconds) pairs. */
function speed(records: { step: number; time: number }[]): number {
  const at = (s: number) => {
    const r = records.find((r) => r.step === s);
    if (!r) throw new Error(`no log record at step ${s}`);
    return r.time;
  };
  return (TO - FROM) / (at(TO) - at(FROM));
}

async function denoRun(): Promise<number> {
  const out = await Deno.makeTempDir({ prefix: "bench-train-" });
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "task",
      "train:stage1",
      "--config",
      "configs/tiny.yaml",
      "--out",
      out,
      "--steps",
      String(STEPS),
      "--no-grid",
      ...["log_every=" + LOG_EVERY, "save_every=0", "sample_every=0", "eval_every=0"]
        .flatMap((s) => ["--set", "train." + s]),
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  const log = (await Deno.readTextFile(`${out}/train-log.jsonl`)).trim().split("\n")
    .map((l) => JSON.parse(l)).filter((r) => typeof r.time === "number");
  await Deno.remove(out, { recursive: true });
  return speed(log);
}

async function setField(page: Page, id: string, value: string | number): Promise<void> {
  await page.$eval(`#${id}`, (e: any, v) => {
    e.value = v;
    e.dispatchEvent(new Event("input"));
    e.dispatchEvent(new Event("change"));
  }, String(value));
}

/** Opens the Train view and starts tiny, stage 1, on the bundled digits. */
async function startPageRun(
  browser: Browser,
  url: string,
  steps: number,
  every: number,
): Promise<Page> {
  const page = await browser.newPage();
  await page.setViewport({ width: 900, height: 700 });
  await page.goto(url);
  await page.click("#tab-train");
  await page.waitForFunction(
    () => /^Choose/.test(document.getElementById("train-status")!.textContent!),
    { timeout: 300_000 },
  );
  await setField(page, "train-data", "digits");
  await setField(page, "train-size", "tiny");
  await setField(page, "train-stage", "1");
  await setField(page, "train-steps", steps);
  await setField(page, "train-batch", 8);
  await setField(page, "train-every", every);
  await page.click("#train-start");
  return page;
}

/** The view's (step, seconds) once its step has reached `step`. */
async function pageRecord(page: Page, step: number): Promise<{ step: number; time: number }> {
  await page.waitForFunction(
    (s: number) => {
      const d = document.getElementById("train")!.dataset;
      if (d.state === "error") throw new Error(document.getElementById("train-status").textContent);
      return Number(d.step) >= s;
    },
    { timeout: 600_000, polling: 20 },
    step,
  );
  return await page.$eval("#train", (e: any) => ({
    step: Number(e.dataset.step),
    time: Number(e.dataset.elapsed),
  }));
}

async function pageRun(browser: Browser, url: string): Promise<{ sps: number; adapter: string }> {
  // every = STEPS: one log record each STEPS/10 = LOG_EVERY steps, samples at the end only
  const page = await startPageRun(browser, url, STEPS, STEPS);
  // the records come every LOG_EVERY steps; a record's step and seconds are set together
  const [r0, r1] = [await pageRecord(page, FROM), await pageRecord(page, TO)];
  const adapter = await page.$eval("#train-status", (e: any) => e.textContent as string);
  await page.close();
  return { sps: (r1.step - r0.step) / (r1.time - r0.time), adapter };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

const server = await startServer();
const browser = await launchChromium();
try {
  const deno: number[] = [], chromium: number[] = [];
  for (let r = 0; r < rounds; r++) {
    deno.push(await denoRun());
    console.log(JSON.stringify({ round: r, where: "deno", steps_per_s: deno.at(-1) }));
    const p = await pageRun(browser, server.url);
    chromium.push(p.sps);
    console.log(
      JSON.stringify({ round: r, where: "chromium", steps_per_s: p.sps, status: p.adapter }),
    );
  }
  console.log(JSON.stringify({
    deno_steps_per_s: deno,
    chromium_steps_per_s: chromium,
    deno_over_chromium: median(deno) / median(chromium),
  }));
  if (a.screenshot) {
    const page = await startPageRun(browser, server.url, 1000, 100);
    await page.waitForFunction(
      () => Number(document.getElementById("train")!.dataset.strips) >= 4,
      { timeout: 600_000, polling: 200 },
    );
    await page.screenshot({ path: a.screenshot, fullPage: true });
    console.log(`saved ${a.screenshot}`);
  }
} finally {
  await browser.close();
  await server.stop();
}
