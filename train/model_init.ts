// Where a run's weights come from (docs/spec.md §5 and §7): fresh from their initialisation, from
// the run's own newest checkpoint (--resume), or from the checkpoint of the stage before — stage
// 2 from stage 1 (shared names load, the class table is dropped, the text path starts fresh),
// stage 3 from stage 2 (every weight loads unchanged at a higher resolution; only the fixed
// position table is recomputed, interpolated by model.pe_interpolation). Checkpoints arrive here
// read (a file, or bytes in the web page): finding and reading them is the caller's.

import { tensor } from "../kernels/mod.ts";
import {
  type CheckpointContents,
  checkWordTable,
  firstNonFinite,
  modelFromCheckpoint,
  trainStageOf,
} from "../model/checkpoint_bytes.ts";
import { type ModelConfig, modelSpace, TEXT_MODEL_KEYS } from "../model/config.ts";
import type { WordTable } from "../io/word_table.ts";
import type { DiffusionSection } from "../io/config_schema.ts";
import { checkpointDiffusion, SCHEDULE_KEYS } from "../diffusion/schedule.ts";
import { namePattern } from "../model/params.ts";
import { type PixArt, pixartSpecs } from "../model/pixart.ts";

/** The model architecture a training stage uses. */
export function modelStageOf(stage: 1 | 2 | 3): 1 | 2 {
  return stage === 1 ? 1 : 2;
}

/** A checkpoint read from its file or bytes, and what names it in messages (its path). */
export interface NamedCheckpoint {
  ck: CheckpointContents;
  name: string;
}

/**
 * The newest checkpoint of a run, `from`, checked against the stage, the model config and the
 * noise schedule: continuing on another schedule would train each t toward another noise level.
 */
export function resumeFrom(
  from: NamedCheckpoint,
  stage: 1 | 2 | 3,
  mc: ModelConfig,
  diffusion: DiffusionSection,
  words: WordTable | null = null,
): { ck: CheckpointContents; model: PixArt } {
  const { ck, name: path } = from;
  if (ck.metadata.exported_from !== undefined) {
    // Adam's moments and the data order are gone: continuing would silently restart both
    throw new Error(
      `--resume: '${path}' is an export (weights for sampling, no optimiser state), not a ` +
        `training checkpoint: move it out of '${folderOf(path)}' to resume from the run's own ` +
        `checkpoints`,
    );
  }
  if (trainStageOf(ck) !== stage) {
    throw new Error(
      `--resume: '${path}' is a stage-${trainStageOf(ck)} checkpoint: continue it with ` +
        `train:stage${trainStageOf(ck)}, or give this stage another --out`,
    );
  }
  for (const k of Object.keys(ck.model) as (keyof ModelConfig)[]) {
    if (k !== "drop_path" && ck.model[k] !== mc[k]) {
      throw new Error(
        `'${path}' has model.${k} = ${ck.model[k]}, the config says ${mc[k]}: ` +
          `use the same config to resume`,
      );
    }
  }
  const trained = checkpointDiffusion(ck.metadata, `checkpoint '${path}'`);
  for (const k of SCHEDULE_KEYS) {
    if (trained[k] !== diffusion[k]) {
      throw new Error(
        `'${path}' was trained with diffusion.${k} = ${trained[k]}, the config says ` +
          `${diffusion[k]}: use the same config to resume`,
      );
    }
  }
  const model = modelFromCheckpoint(ck, path, false, words);
  model.params.requireGrad(true);
  return { ck, model };
}

/** The folder part of a checkpoint's name ("." when it has none). */
function folderOf(path: string): string {
  const cut = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return cut > 0 ? path.slice(0, cut) : cut === 0 ? "/" : ".";
}

/**
 * Loads the earlier stage's trained weights (as PixArt-α does; the EMA copy is for sampling), or
 * its EMA weights with `ema`, into `model`, a fresh model of the next stage, and says what
 * happened in `log`.
 */
export function initFromEarlierStage(
  model: PixArt,
  from: NamedCheckpoint,
  stage: 2 | 3,
  log: (line: string) => void,
  keepFresh: readonly string[] = [],
  ema = false,
): void {
  const specs = pixartSpecs(model.config);
  const patterns = keepFresh.map(namePattern);
  const isFresh = (name: string) => patterns.some((re) => re.test(name));
  for (const [k, p] of keepFresh.entries()) {
    if (!specs.some((s) => patterns[k].test(s.name))) {
      throw new Error(
        `train.init_fresh: '${p}' names no parameter of the stage-${stage} model ` +
          `(give a parameter name or a prefix of names, e.g. 'y_embedder.y_proj' or 'blocks.*.cross_attn')`,
      );
    }
  }
  const { ck, name: path } = from;
  const fromStage = trainStageOf(ck);
  if (stage === 3) {
    if (ck.model.stage !== 2) {
      throw new Error(
        `'${path}' is a stage-${fromStage} (class-conditional) checkpoint: stage 3 starts from a ` +
          `stage-2 (text) checkpoint`,
      );
    }
    // a higher resolution of the same model: every size but the image's (and its patch's)
    for (const k of Object.keys(ck.model) as (keyof ModelConfig)[]) {
      if (STAGE3_CHANGES.includes(k)) continue;
      if (ck.model[k] !== model.config[k]) {
        throw new Error(
          `'${path}' has model.${k} = ${ck.model[k]}, the stage-3 config says ` +
            `${model.config[k]}: stage 3 changes only ${STAGE3_CHANGES.join(", ")}`,
        );
      }
    }
    if (ck.model.wavelet !== model.config.wavelet) {
      if (ck.model.wavelet !== "none") {
        throw new Error(
          `'${path}' draws Haar bands (model.wavelet haar): a stage 3 from it keeps model.wavelet ` +
            `haar`,
        );
      }
      if (model.config.patch_size !== ck.model.patch_size) {
        throw new Error(
          `stage 3 adds model.wavelet haar to '${path}' and changes model.patch_size: keep the ` +
            `patch (${ck.model.patch_size}), the bands already halve the side`,
        );
      }
      // the low band is the image at half the side: stage 2's images only at twice its size
      if (model.config.image_size !== 2 * ck.model.image_size) {
        throw new Error(
          `stage 3 adds model.wavelet haar to the ${ck.model.image_size}×${ck.model.image_size} ` +
            `model '${path}': set model.image_size to ${2 * ck.model.image_size}, whose low band ` +
            `is the image that model drew`,
        );
      }
    }
    // the same words as stage 2 read: a table rebuilt since (data:words) has other vectors
    checkWordTable(ck, path, model.wordTable);
    const r = model.config.patch_size / ck.model.patch_size;
    if (!Number.isInteger(r)) {
      throw new Error(
        `stage 3's model.patch_size ${model.config.patch_size} is not a multiple of the ` +
          `stage-2 model's ${ck.model.patch_size}: grow the patch by a whole factor, or keep it`,
      );
    }
  } else {
    // stage 2 keeps the image model: keys that change no shape (heads, depth's missing blocks,
    // the position table's size) would load weights into another model without a word. The text
    // path is new from a stage-1 checkpoint or restarted by train.init_fresh; else it loads and
    // must read captions as it was trained to, through the same word table.
    const textSpecs = specs.filter((s) => s.name.startsWith("text_encoder."));
    const newText = fromStage === 1 || textSpecs.every((s) => isFresh(s.name));
    const k = warmStartChange(ck.model, model.config, newText);
    if (k) {
      const textKeys: readonly string[] = TEXT_MODEL_KEYS;
      throw new Error(
        `'${path}' has model.${k} = ${ck.model[k]}, the stage-2 config says ` +
          `${model.config[k]}: a warm start keeps the model it starts from` +
          (textKeys.includes(k)
            ? ` (another text path needs train.init_fresh: [text_encoder, y_embedder])`
            : ""),
      );
    }
    if (!newText) checkWordTable(ck, path, model.wordTable);
  }
  if (ema && !ck.ema) {
    throw new Error(
      `'${path}' has no EMA weights to start from: set train.init_ema to false (an exported ` +
        `checkpoint's weights are already its EMA ones)`,
    );
  }
  const src = ema ? ck.ema! : ck.params;
  const loaded: string[] = [], fresh: string[] = [], dropped: string[] = [];
  for (const s of specs) {
    if (isFresh(s.name)) {
      fresh.push(s.name);
      continue;
    }
    const data = src.get(s.name);
    if (!data) {
      if (stage === 3) throw new Error(`'${path}' is missing '${s.name}', which stage 3 needs`);
      fresh.push(s.name);
      continue;
    }
    let shape = ck.shapes.get(s.name) ?? [data.length];
    let values = data;
    const grow = stage === 3 ? model.config.patch_size / ck.model.patch_size : 1;
    if (grow > 1 && PATCH_SHAPED.includes(s.name)) {
      ({ shape, values } = grownPatch(
        s.name,
        shape,
        data,
        grow,
        modelSpace(model.config).channels,
      ));
    }
    const bands = stage === 3 && ck.model.wavelet === "none" && model.config.wavelet === "haar";
    if (bands && PATCH_SHAPED.includes(s.name)) {
      ({ shape, values } = lowBandOnly(s.name, shape, values, model.config.in_channels));
    }
    if (shape.length !== s.shape.length || shape.some((d, k) => d !== s.shape[k])) {
      throw new Error(
        `'${path}': '${s.name}' has another shape than the stage-${stage} model's [${s.shape}]`,
      );
    }
    const bad = firstNonFinite(values);
    if (bad >= 0) {
      throw new Error(`'${path}': '${s.name}' holds ${values[bad]}: its weights are not finite`);
    }
    model.params.set(s.name, tensor(values, s.shape));
    loaded.push(s.name);
  }
  for (const name of src.keys()) if (!model.params.has(name)) dropped.push(name);
  const group = (names: string[]) =>
    [...new Set(names.map((n) => n.replace(/\.\d+\./, ".*.").split(".").slice(0, 3).join(".")))]
      .join(", ");
  log(
    `initialised from '${path}' (${ema ? "EMA" : "trained"} weights): ${loaded.length} ` +
      `tensors loaded`,
  );
  log(`  dropped (stage-${fromStage} only): ${dropped.length ? group(dropped) : "none"}`);
  log(`  new, from their init: ${fresh.length ? group(fresh) : "none"}`);
  if (stage === 3) {
    const grid = (c: ModelConfig) => modelSpace(c).size / c.patch_size;
    log(
      `  the position table is recomputed for ${model.config.image_size}×` +
        `${model.config.image_size} (from ${ck.model.image_size}), pe_interpolation ` +
        `${model.config.pe_interpolation}: a ${grid(model.config)}×${grid(model.config)} grid ` +
        `of tokens (from ${grid(ck.model)}×${grid(ck.model)})`,
    );
    // positions the blocks never saw: PixArt-α keeps grid / pe_interpolation fixed (§7)
    const span = (c: ModelConfig) => grid(c) / c.pe_interpolation;
    if (span(model.config) !== span(ck.model)) {
      log(
        `  note: the positions span ${span(model.config)} (grid / pe_interpolation), stage 2's ` +
          `spanned ${span(ck.model)}: pe_interpolation ` +
          `${grid(model.config) / span(ck.model)} keeps them`,
      );
    }
    if (model.config.wavelet !== ck.model.wavelet) {
      log(
        `  Haar bands: the patch embedding reads the low band as stage 2 read the image and the ` +
          `detail bands through zeros, and the output layer draws the low band as stage 2 drew ` +
          `the image and 0 for every detail: the low band starts as the ` +
          `${ck.model.image_size}×${ck.model.image_size} model (predicting the detail's clean ` +
          `values, diffusion.detail_prediction sample, that 0 is flat 2×2 blocks)`,
      );
    }
    if (model.config.patch_size !== ck.model.patch_size) {
      log(
        `  patch ${ck.model.patch_size} → ${model.config.patch_size}: the patch embedding ` +
          `averages each block of pixels and the output layer repeats each output over it, so ` +
          `each token starts seeing its block means (the image at the smaller size, its noise ` +
          `averaged) and each output covers its block`,
      );
    }
  }
}

/** What stage 2 may change of the config of the checkpoint it starts from (the classes go; a
 * pooled caption path starts fresh). */
const STAGE2_CHANGES: readonly (keyof ModelConfig)[] = [
  "stage",
  "num_classes",
  "drop_path",
  "caption_pooling",
];

/**
 * The first key in which a stage-2 model `to` differs from the checkpoint `from` it starts from
 * that a warm start may not change (null: none): the classes and a pooled caption path may, the
 * text path's keys too when it starts afresh (`newText`: from stage 1, or restarted).
 */
export function warmStartChange(
  from: ModelConfig,
  to: ModelConfig,
  newText: boolean,
): keyof ModelConfig | null {
  const textKeys: readonly string[] = TEXT_MODEL_KEYS;
  for (const k of Object.keys(from) as (keyof ModelConfig)[]) {
    if (STAGE2_CHANGES.includes(k) || (newText && textKeys.includes(k))) continue;
    if (from[k] !== to[k]) return k;
  }
  return null;
}

/** What stage 3 may change of the stage-2 model's config. */
const STAGE3_CHANGES: readonly (keyof ModelConfig)[] = [
  "image_size",
  "patch_size",
  "pe_interpolation",
  "wavelet",
  "drop_path",
];

/**
 * A stage-2 parameter for a model of the same patch on Haar bands (model/wavelet.ts), C image
 * channels → 4C band channels, the low band's C first: the patch embedding reads the low band with
 * the weights stage 2 read the image with and the detail bands with zeros, and the output layer
 * (rows and bias ordered (row, column, channel) in the patch) draws the low band as stage 2 drew
 * the image and every detail as 0. The low band at 2S is the image at S under the same noise, so
 * the model starts as stage 2's exactly; the fine-tune learns the detail.
 */
function lowBandOnly(
  name: string,
  shape: readonly number[],
  data: Float32Array,
  C: number,
): { shape: number[]; values: Float32Array } {
  if (name === "x_embedder.proj.weight") {
    const [D, Cw, p] = shape, plane = p * p;
    const out = new Float32Array(D * 4 * Cw * plane);
    for (let d = 0; d < D; d++) {
      out.set(data.subarray(d * Cw * plane, (d + 1) * Cw * plane), d * 4 * Cw * plane);
    }
    return { shape: [D, 4 * Cw, p, p], values: out };
  }
  const rows = shape[0], D = shape.length > 1 ? shape[1] : 1, cells = rows / C;
  const out = new Float32Array(rows * 4 * D);
  for (let k = 0; k < cells; k++) {
    out.set(data.subarray(k * C * D, (k + 1) * C * D), k * 4 * C * D);
  }
  return { shape: shape.length > 1 ? [rows * 4, D] : [rows * 4], values: out };
}

/** The parameters whose shape follows the patch size. */
const PATCH_SHAPED = [
  "x_embedder.proj.weight",
  "final_layer.linear.weight",
  "final_layer.linear.bias",
];

/**
 * A stage-2 parameter resized for a patch r times larger (as FlexiViT resizes a patch embedding,
 * Beyer et al. 2023, here exactly): the new embedding of an r·p patch is the old one of its r×r
 * block means, W'[d, c, i, j] = W[d, c, ⌊i/r⌋, ⌊j/r⌋] / r², and each old output (row, column,
 * channel) is repeated over its r×r block. The block means of x_t are the smaller image under
 * noise whose variance is r² times smaller, so their signal-to-noise ratio is r² times the
 * schedule's: diffusion.snr_shift r² gives each t stage 2's ratio, though not its scale (the means
 * are 0.5–0.9 times stage 2's inputs over t, for r = 2), which the fine-tune learns, as it learns
 * a new target where stage 2 predicted another.
 */
function grownPatch(
  name: string,
  shape: readonly number[],
  data: Float32Array,
  r: number,
  C: number,
): { shape: number[]; values: Float32Array } {
  if (name === "x_embedder.proj.weight") {
    const [D, Cw, p] = shape;
    const q = p * r;
    const out = new Float32Array(D * Cw * q * q);
    for (let d = 0; d < D; d++) {
      for (let c = 0; c < Cw; c++) {
        for (let i = 0; i < q; i++) {
          for (let j = 0; j < q; j++) {
            const from = ((d * Cw + c) * p + Math.floor(i / r)) * p + Math.floor(j / r);
            out[((d * Cw + c) * q + i) * q + j] = data[from] / (r * r);
          }
        }
      }
    }
    return { shape: [D, Cw, q, q], values: out };
  }
  // final_layer.linear: rows (and bias entries) ordered (row, column, channel) in the patch
  const rows = shape[0], D = shape.length > 1 ? shape[1] : 1;
  const p = Math.round(Math.sqrt(rows / C)), q = p * r;
  const out = new Float32Array(q * q * C * D);
  for (let i = 0; i < q; i++) {
    for (let j = 0; j < q; j++) {
      for (let c = 0; c < C; c++) {
        const from = ((Math.floor(i / r) * p + Math.floor(j / r)) * C + c) * D;
        out.set(data.subarray(from, from + D), ((i * q + j) * C + c) * D);
      }
    }
  }
  return { shape: shape.length > 1 ? [q * q * C, D] : [q * q * C], values: out };
}
