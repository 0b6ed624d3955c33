// The web page's script (built into web/dist/app.js by `deno task build:web`): it checks for
// WebGPU, loads the chosen bundled model, and draws the prompts with the project's own kernels,
// model and sampler, showing every sampler step. The page's state is in data- attributes of
// <main>: data-state (starting, no-webgpu, loading, ready, drawing, error), data-draws (requests
// finished), data-steps-shown (sampler steps painted in the last request), data-pool-bytes
// (GPU memory the tensors hold: the same before and after a request), data-lora (the LoRA
// adapter's file name, "" for none), data-lora-reads (adapter files read, applied or refused) and
// data-view (draw or train: the Train view is web/train_view.ts).

import {
  DEFAULT_GUIDANCE,
  DEFAULT_SAMPLER,
  DEFAULT_STEPS,
  DEFAULT_STRENGTH,
  generate,
  MAX_SAMPLES,
} from "../diffusion/generate.ts";
import { SAMPLER_LABELS } from "../diffusion/samplers.ts";
import {
  deviceInfo,
  deviceLost,
  initDevice,
  onDeviceLost,
  pool,
  trimPool,
} from "../kernels/mod.ts";
import { modelConfigFromJson } from "../model/checkpoint_bytes.ts";
import { checkLoraBase, type Lora, loraFromContents, parseLora } from "../model/lora.ts";
import { SampleGrid } from "./grid.ts";
import { trainingNow, trainView } from "./train_view.ts";
import { type LoadedModel, loadModel } from "./loaded_model.ts";
import { decodeUpload, StartImage } from "./start_image.ts";
import { BUNDLED_MODELS } from "./models.ts";
import { toPixels } from "../model/wavelet.ts";
import {
  type DrawRequest,
  negativeError,
  promptError,
  samplePrompts,
  splitPrompts,
} from "./request.ts";

type State = "starting" | "no-webgpu" | "loading" | "ready" | "drawing" | "error";

function element<T extends HTMLElement>(id: string): T {
  const e = document.getElementById(id);
  if (!e) throw new Error(`the page has no #${id}`);
  return e as T;
}

/** Why this page cannot use WebGPU here (one sentence with the way out), or null. */
async function webgpuProblem(): Promise<string | null> {
  if (!globalThis.isSecureContext) {
    return "WebGPU needs a secure page: open it at http://localhost (as `deno task serve` prints) or over https.";
  }
  if (!navigator.gpu) {
    return "This browser has no WebGPU: open the page in a current Chrome or Edge, or turn WebGPU on (Firefox: dom.webgpu.enabled in about:config; Safari: Develop › Feature Flags › WebGPU).";
  }
  if (!(await navigator.gpu.requestAdapter())) {
    return "WebGPU is on but found no adapter: update the graphics driver, or in Chrome enable chrome://flags/#enable-unsafe-webgpu, which also offers a CPU adapter.";
  }
  return null;
}

function main(): void {
  const app = element("app");
  const form = element<HTMLFormElement>("form");
  const controls = element<HTMLFieldSetElement>("controls");
  const promptBox = element<HTMLInputElement>("prompt");
  const promptMsg = element("prompt-msg");
  const negative = element<HTMLInputElement>("negative");
  const negativeMsg = element("negative-msg");
  const num = element<HTMLInputElement>("num");
  const guidance = element<HTMLInputElement>("guidance");
  const steps = element<HTMLInputElement>("steps");
  const seed = element<HTMLInputElement>("seed");
  const select = element<HTMLSelectElement>("model");
  const loraInput = element<HTMLInputElement>("lora");
  const loraScale = element<HTMLInputElement>("lora-scale");
  const loraMsg = element("lora-msg");
  const status = element("status");
  const gridRoot = element("grid");
  const initFile = element<HTMLInputElement>("init-image");
  const initMsg = element("init-msg");
  const editControls = element("edit");
  const strength = element<HTMLInputElement>("strength");
  const strengthValue = element<HTMLOutputElement>("strength-value");
  const brush = element<HTMLInputElement>("brush");
  const resample = element<HTMLInputElement>("resample");
  /** whether the user has set the strength (else painting a mask sets inpainting's default, 1) */
  let strengthSet = false;
  const setStrength = (v: number) => {
    strength.value = String(v);
    strengthValue.value = strength.value;
  };
  setStrength(DEFAULT_STRENGTH);
  const start = new StartImage(
    element("init-view"),
    element("mask-paint"),
    () => brush.valueAsNumber,
    () => {
      if (!strengthSet) setStrength(1);
    },
  );
  /** Back to image-to-image's default strength unless the user set one (painting set it to 1). */
  const resetStrength = () => {
    if (!strengthSet) setStrength(DEFAULT_STRENGTH);
  };
  /** Hides the edit controls, and resets the hidden Resample field: left invalid, the form would
   * refuse every Draw without a message. */
  const hideEdit = () => {
    editControls.hidden = true;
    resample.value = resample.defaultValue;
    resetStrength();
  };
  /** Shows the start image as the loaded model reads it. */
  const showStart = () => {
    if (!loaded || !start.upload) return;
    const c = loaded.model.config;
    start.planes(c.image_size, c.in_channels as 1 | 3);
  };

  let loaded: LoadedModel | null = null;
  /** the LoRA adapter given for the loaded model, on the device */
  let adapter: { name: string; lora: Lora } | null = null;
  let draws = 0;
  let loraReads = 0;
  /** the example prompt the box was last filled with */
  let example = "";

  const setState = (state: State, message: string) => {
    app.dataset.state = state;
    app.dataset.lora = adapter?.name ?? "";
    app.dataset.poolBytes = String(pool.stats.inUseBytes);
    app.dataset.poolAllocated = String(pool.stats.allocatedBytes);
    status.textContent = message;
  };

  /** An error in the status line; once the GPU is lost, that is what it says (every later call
   * fails with it). */
  const failed = (e: Error) => {
    const lost = deviceLost();
    setState("error", lost ? `The GPU stopped working (${lost}): reload the page.` : e.message);
  };

  guidance.value = String(DEFAULT_GUIDANCE);
  steps.value = String(DEFAULT_STEPS);
  for (const m of BUNDLED_MODELS) select.add(new Option(m.label, m.id));

  /** The prompts' problems shown next to their boxes; true when there are none. */
  const checkPrompts = (): boolean => {
    if (!loaded) return false;
    let ok = true;
    for (
      const [box, msg, why] of [
        [promptBox, promptMsg, promptError(loaded, splitPrompts(promptBox.value))],
        [negative, negativeMsg, negativeError(loaded, negative.value)],
      ] as const
    ) {
      msg.textContent = why ?? "";
      box.setAttribute("aria-invalid", String(why !== null));
      ok &&= why === null;
    }
    return ok;
  };

  /** Forgets the adapter (it belongs to the model it was trained on). */
  const dropAdapter = (message = "") => {
    adapter?.lora.dispose();
    adapter = null;
    if (loaded) loaded.model.lora = [];
    loraMsg.textContent = message;
    loraInput.setAttribute("aria-invalid", String(message !== ""));
  };

  /** Reads the adapter file chosen, checks it against the loaded model and puts it on the GPU. */
  const useAdapter = async () => {
    dropAdapter();
    const file = loraInput.files?.[0];
    if (!file || !loaded) return;
    controls.disabled = true;
    setState("loading", `Reading the LoRA adapter ${file.name}…`);
    try {
      // bounded before it is read: a full-rank adapter of every layer, with its EMA and Adam's
      // two moments (a training checkpoint), holds at most 8 f32 numbers per model weight
      const most = 8 * 4 * loaded.model.params.count() + HEADER_BYTES;
      if (file.size > most) {
        throw new Error(
          `'${file.name}' is ${mb(file.size)} MB, more than any LoRA adapter of this model ` +
            `(${mb(most)} MB): choose a file that deno task train:lora or export wrote for it`,
        );
      }
      const contents = parseLora(
        new Uint8Array(await file.arrayBuffer()),
        file.name,
        modelConfigFromJson,
      );
      checkLoraBase(contents, file.name, loaded.sha256, loaded.entry.file);
      adapter = { name: file.name, lora: loraFromContents(contents) };
      setState(
        "ready",
        `LoRA adapter ${file.name} (rank ${contents.rank} on ${contents.layers.length} layers, ` +
          `step ${contents.step}) for ${loaded.entry.file}. Ready to draw.`,
      );
    } catch (e) {
      dropAdapter((e as Error).message);
      if (deviceLost()) failed(e as Error);
      else setState("ready", "The LoRA adapter was not applied. Ready to draw.");
    } finally {
      app.dataset.loraReads = String(++loraReads);
      controls.disabled = !!deviceLost();
    }
  };

  const useModel = async (id: string) => {
    const entry = BUNDLED_MODELS.find((m) => m.id === id)!;
    controls.disabled = true;
    dropAdapter();
    loraInput.value = "";
    loaded?.model.dispose();
    loaded = null;
    setState("loading", `Loading the ${entry.label} model…`);
    try {
      loaded = await loadModel(entry);
      // the pool keeps freed buffers for reuse: the last model's weights and batches, and the
      // load's temporaries, would stay on the GPU for the life of the page. Not while a run
      // trains: waiting for the GPU would take that run's errors as this load's
      if (!trainingNow()) await trimPool();
      steps.max = String(loaded.schedule.T - 1);
      // the previous model's example gives way to this one's; the user's own prompt stays
      if (promptBox.value === "" || promptBox.value === example) promptBox.value = entry.prompt;
      example = entry.prompt;
      checkPrompts();
      showStart();
      const c = loaded.model.config;
      setState(
        "ready",
        `Model ${entry.file} (${
          mb(loaded.bytes)
        } MB, ${c.image_size}×${c.image_size}, stage ${c.stage}) ` +
          `on ${adapterName()}. Ready to draw.`,
      );
    } catch (e) {
      failed(e as Error);
    } finally {
      controls.disabled = !!deviceLost(); // a lost GPU keeps the page's controls off
    }
  };

  const draw = async (m: LoadedModel, r: DrawRequest) => {
    const prompts = samplePrompts(r);
    const c = m.model.config;
    const grid = new SampleGrid(gridRoot, c.in_channels, c.image_size);
    // a row per prompt when it fits, as `deno task sample` lays out its grid
    grid.reset(prompts, Math.min(8, r.num > 1 ? r.num : r.prompts.length));
    setState("drawing", `Drawing ${prompts.length} images…`);
    let shown = 0;
    app.dataset.stepsShown = "0";
    const t0 = performance.now();
    m.model.lora = adapter ? [{ lora: adapter.lora, scale: r.loraScale }] : [];
    const images = await generate(m.model, m.schedule, prompts, m.classNames, {
      sampler: DEFAULT_SAMPLER,
      steps: r.steps,
      guidance: r.guidance,
      negative: r.negative,
      ...(r.edit && {
        initImage: r.edit.initImage,
        strength: r.edit.strength,
        mask: r.edit.mask,
        resample: r.edit.mask ? r.edit.resample : undefined,
      }),
      seed: r.seed,
      batch: 64,
      onStep: (s) => {
        // the step's values arrive when the GPU has done it; generate reports a failure itself
        s.x.read().then((x) => {
          // x_t in the model's space: a Haar model's bands shown as the image they make
          grid.paint(s.first, toPixels(c, x, s.x.shape[0]), s.step);
          app.dataset.stepsShown = String(++shown);
          if (app.dataset.state === "drawing") {
            status.textContent = `Drawing ${prompts.length} images: step ${s.step} of ${s.total}…`;
          }
        }, () => {});
      },
    });
    grid.paint(0, images, Infinity);
    const seconds = (performance.now() - t0) / 1000;
    app.dataset.draws = String(++draws);
    setState(
      "ready",
      `${prompts.length} images, ${SAMPLER_LABELS[DEFAULT_SAMPLER]} ${r.steps} steps, ` +
        `guidance ${r.guidance}` +
        `${r.negative.trim() ? `, negative "${r.negative.trim()}"` : ""}${editText(r)}` +
        `${adapter ? `, LoRA ${adapter.name} × ${r.loraScale}` : ""}, seed ${r.seed}: ` +
        `${seconds.toFixed(1)} s on ${adapterName()}.`,
    );
  };

  promptBox.addEventListener("input", checkPrompts);
  negative.addEventListener("input", checkPrompts);
  strength.addEventListener("input", () => {
    strengthSet = true;
    strengthValue.value = strength.value;
  });
  /** the newest choice of a start image: an earlier one that decodes later is dropped */
  let chosen = 0;
  initFile.addEventListener("change", async () => {
    const file = initFile.files?.[0];
    if (!file) return;
    const mine = ++chosen;
    start.clear();
    hideEdit();
    controls.disabled = true; // no Draw from noise while the image the user chose decodes
    try {
      const upload = await decodeUpload(file);
      if (mine !== chosen) return;
      start.upload = upload;
      initMsg.textContent = "";
      initFile.setAttribute("aria-invalid", "false");
      editControls.hidden = false;
      showStart();
    } catch (e) {
      if (mine !== chosen) return;
      initMsg.textContent = (e as Error).message;
      initFile.setAttribute("aria-invalid", "true");
    } finally {
      if (mine === chosen && loaded && !deviceLost()) controls.disabled = false;
    }
  });
  element("clear-mask").addEventListener("click", () => {
    start.clearMask();
    resetStrength();
  });
  element("remove-image").addEventListener("click", () => {
    start.clear();
    initFile.value = "";
    hideEdit();
  });
  select.addEventListener("change", () => useModel(select.value));
  loraInput.addEventListener("change", () => useAdapter());
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (!loaded) {
      setState("error", "No model is loaded: choose one in Model, or reload the page.");
      return;
    }
    if (!checkPrompts() || !form.reportValidity()) return;
    if (trainingNow()) {
      setState("ready", "A run is training in the Train view: draw when it is done or stopped.");
      return;
    }
    const count = splitPrompts(promptBox.value).length * num.valueAsNumber;
    if (count > MAX_SAMPLES) {
      setState(
        "ready",
        `${count} samples are over the ${MAX_SAMPLES} one drawing may hold: fewer prompts or ` +
          `samples per prompt`,
      );
      return;
    }
    const c = loaded.model.config;
    const r: DrawRequest = {
      prompts: splitPrompts(promptBox.value),
      negative: negative.value,
      num: num.valueAsNumber,
      guidance: guidance.valueAsNumber,
      steps: steps.valueAsNumber,
      seed: seed.valueAsNumber,
      edit: start.upload
        ? {
          name: start.upload.name,
          initImage: start.planes(c.image_size, c.in_channels as 1 | 3),
          strength: strength.valueAsNumber,
          mask: start.maskPlane(c.image_size),
          resample: resample.valueAsNumber,
        }
        : null,
      loraScale: loraScale.valueAsNumber,
    };
    controls.disabled = true;
    try {
      await draw(loaded, r);
    } catch (e) {
      failed(e as Error);
    } finally {
      controls.disabled = !!deviceLost(); // a lost GPU keeps the page's controls off
    }
  });

  for (const [tab, view] of [["tab-draw", "draw"], ["tab-train", "train"]] as const) {
    element(tab).addEventListener("click", () => {
      app.dataset.view = view;
      for (const t of ["tab-draw", "tab-train"]) {
        element(t).setAttribute("aria-selected", String(t === tab));
      }
    });
  }

  (async () => {
    setState("starting", "Looking for WebGPU…");
    const problem = await webgpuProblem();
    if (problem) {
      setState("no-webgpu", problem);
      element("train-status").textContent = problem;
      return;
    }
    await initDevice();
    // a lost GPU ends the page's work: say so once, and keep Draw from failing obscurely
    onDeviceLost(() => {
      controls.disabled = true;
      failed(new Error("the GPU was lost"));
    });
    // a load is GPU work too: a run started during it would take its errors as the run's
    trainView(adapterName, () => {
      const s = app.dataset.state;
      return s === "drawing" ? "drawing" : s === "loading" ? "loading a model or an adapter" : null;
    });
    await useModel(select.value);
  })().catch((e) => setState("error", (e as Error).message));
}

/** ", from NAME at strength S" or ", inpainting NAME at strength S (resampled N×)", or "". */
function editText(r: DrawRequest): string {
  if (!r.edit) return "";
  const { name, strength, mask, resample } = r.edit;
  return `, ${mask ? "inpainting" : "from"} ${name} at strength ${strength}` +
    (mask && resample > 1 ? ` (resampled ${resample}×)` : "");
}

/** Room for an adapter file's header and metadata (its base model's config, PEFT's config). */
const HEADER_BYTES = 1 << 20;

function mb(bytes: number): string {
  return (bytes / 1e6).toFixed(1);
}

function adapterName(): string {
  const info = deviceInfo();
  return `the WebGPU adapter "${info.adapter || "unnamed"}"${
    info.fallback ? " (a CPU fallback)" : ""
  }`;
}

main();
