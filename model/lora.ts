// Low-rank adapters (LoRA, Hu et al. 2021): a frozen model's Linear layers gain
// scale·B(A x) with A [r, in] and B [out, r] (eq. 3), scale = alpha / r times the user's multiplier,
// as PEFT's `LoraConfig(r, lora_alpha, target_modules)` computes it. A starts Kaiming-uniform and
// B at zero (PEFT's default), so training starts from the base model exactly. Only A and B train.
//
// An adapter is its own safetensors file: its tensors under PEFT's names
// (`base_model.model.<layer>.lora_A.weight`, `….lora_B.weight`), PEFT's adapter_config in its
// metadata, and the SHA-256 of the base model's weights, so that an adapter is applied only to the
// model it was trained on (docs/interop.md). No file access here: the web page applies an adapter
// it was given as bytes; model/lora_file.ts reads and writes files.

import { tensor } from "../kernels/mod.ts";
import { Rng } from "../kernels/host_random.ts";
import {
  parseSafetensors,
  type SafetensorsFile,
  type TensorInput,
} from "../io/safetensors_bytes.ts";
import { sha256Hex } from "../io/word_table.ts";
import type { ModelConfig } from "./config.ts";
import { adaptableLayers } from "./layers.ts";
import { namePattern, Params } from "./params.ts";
import { pixartLayers, pixartSpecs } from "./pixart.ts";
import { type LoraWeights, peftName } from "./lora_terms.ts";

export {
  type AppliedLora,
  loraTensorsUnder,
  loraTerms,
  PEFT_PREFIX,
  peftName,
} from "./lora_terms.ts";

/** The `format` metadata of an adapter file. */
export const LORA_FORMAT = "pixart-webgpu-lora";
// the model checkpoint's own prefix (model/checkpoint_bytes.ts, which imports this file)
const EMA_PREFIX = "ema.";
const OPTIM_PREFIX = "optim.";

/** The layers a run adapts: the config's `lora` section. */
export interface LoraSettings {
  rank: number;
  alpha: number;
  /** layer names or prefixes of whole name segments, `*` for any one segment */
  targets: readonly string[];
}

/** A layer an adapter adapts: its path (state-dict name without `.weight`) and sizes. */
export interface LoraLayer {
  path: string;
  inp: number;
  out: number;
}

/** The model an adapter was trained on: the SHA-256 of its weights, and how to name it. */
export interface LoraBase {
  sha256: string;
  /** the file or bundled model it was loaded from, as given */
  name: string;
  /** which of the file's weights: the EMA ones (what sampling uses) or the raw ones */
  weights: "ema" | "raw";
  config: ModelConfig;
}

/**
 * The Linear layers of a model that `targets` name (embeddings, norms and the patch embedding
 * have no adapter). As PEFT does, it is an error only when they name none at all: a stage-1
 * model has no cross-attention for the default targets to find. `unmatched` lists the targets
 * that named nothing, for a run to report.
 */
export function loraLayers(
  c: ModelConfig,
  targets: readonly string[],
): LoraLayer[] & { unmatched: string[] } {
  const all = adaptableLayers(pixartLayers(c));
  const patterns = targets.map(namePattern);
  const layers = all.filter((l) => patterns.some((re) => re.test(l.path)));
  if (!layers.length) {
    throw new Error(
      `lora.targets [${targets.join(", ")}] name no Linear layer of this model (give layers or ` +
        `prefixes of names, e.g. 'blocks.*.attn.qkv', 'blocks.*.mlp', 'blocks.5')`,
    );
  }
  const unmatched = targets.filter((_, k) => !all.some((l) => patterns[k].test(l.path)));
  return Object.assign(layers, { unmatched });
}

/** A LoRA adapter on the device: its rank, alpha, layers, weights and base. */
export class Lora implements LoraWeights {
  constructor(
    readonly rank: number,
    readonly alpha: number,
    readonly layers: readonly LoraLayer[],
    /** A and B of every layer under their PEFT names */
    readonly params: Params,
    readonly base: LoraBase,
  ) {}

  /** PEFT's `scaling`: alpha / r. */
  get scaling(): number {
    return this.alpha / this.rank;
  }

  /**
   * A fresh adapter: A ~ U(−1/√in, 1/√in) (PEFT's kaiming_uniform_ with a = √5), B = 0, drawn
   * layer by layer from `seed`. Its weights require gradients.
   */
  static init(s: LoraSettings, seed: number, base: LoraBase): Lora {
    checkRank(s.rank, s.alpha, "lora");
    const layers = loraLayers(base.config, s.targets);
    const rng = new Rng(seed);
    const P = new Params({ requiresGrad: true });
    for (const l of layers) {
      const bound = 1 / Math.sqrt(l.inp);
      const a = Float32Array.from({ length: s.rank * l.inp }, () => (rng.next() * 2 - 1) * bound);
      P.set(peftName(l.path, "A"), tensor(a, [s.rank, l.inp]));
      P.set(peftName(l.path, "B"), tensor(new Float32Array(l.out * s.rank), [l.out, s.rank]));
    }
    return new Lora(s.rank, s.alpha, layers, P, base);
  }

  dispose(): void {
    this.params.dispose();
  }
}

function checkRank(rank: number, alpha: number, where: string): void {
  if (!Number.isInteger(rank) || rank < 1 || rank > MAX_RANK) {
    throw new Error(`${where}: rank ${rank} must be an integer in 1 … ${MAX_RANK}`);
  }
  if (!(alpha > 0) || !Number.isFinite(alpha)) {
    throw new Error(`${where}: alpha ${alpha} must be a positive number`);
  }
}

/** A rank above this is a typo (the layers of the models here are at most 8192 wide). */
const MAX_RANK = 4096;

// ---------------------------------------------------------------------------------------------
// the base model's hash

/**
 * The SHA-256 of a model's weights (Web Crypto, so the page can compute it): of one line per
 * parameter, in the declaration order, "name shape sha256-of-its-f32-bytes". The same numbers give
 * the same hash whether the file stores them as f32 or f16.
 */
export async function weightsSha256(
  c: ModelConfig,
  weights: ReadonlyMap<string, Float32Array>,
): Promise<string> {
  const lines = await Promise.all(
    pixartSpecs(c).map(async (s) => {
      const data = weights.get(s.name);
      if (!data) throw new Error(`weightsSha256: no '${s.name}'`);
      const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
      return `${s.name} ${s.shape.join("x")} ${await sha256Hex(bytes)}\n`;
    }),
  );
  return await sha256Hex(new TextEncoder().encode(lines.join("")));
}

/**
 * An adapter applies only to the weights it was trained on: any other model (another checkpoint,
 * the raw weights of its EMA base, a merged export) is a one-line error.
 */
export function checkLoraBase(
  adapter: { base: LoraBase },
  adapterName: string,
  sha256: string,
  modelName: string,
): void {
  const b = adapter.base;
  if (b.sha256 === sha256) return;
  throw new Error(
    `the LoRA adapter '${adapterName}' was trained on other weights than those of ` +
      `'${modelName}' (SHA-256 ${sha256.slice(0, 12)}…): it needs '${b.name}' (${b.weights} ` +
      `weights, SHA-256 ${b.sha256.slice(0, 12)}…)`,
  );
}

// ---------------------------------------------------------------------------------------------
// files

/** A layer's A [r, in] and B [out, r], as host arrays. */
export interface LoraPair {
  A: Float32Array;
  B: Float32Array;
}

/** An adapter file's contents (a training checkpoint's also hold EMA weights and Adam's moments). */
export interface LoraContents {
  rank: number;
  alpha: number;
  layers: LoraLayer[];
  weights: Map<string, LoraPair>;
  /** the EMA of the weights (training checkpoints), or null */
  ema: Map<string, LoraPair> | null;
  /** Adam's moments by `m.<peft name>` / `v.<peft name>` (training checkpoints) */
  optim: Map<string, Float32Array>;
  base: LoraBase;
  metadata: Record<string, string>;
  step: number;
}

/** PEFT's adapter_config.json, which the file's `adapter_config` metadata holds. */
export function adapterConfig(
  rank: number,
  alpha: number,
  layers: readonly LoraLayer[],
  baseName: string,
): Record<string, unknown> {
  return {
    peft_type: "LORA",
    r: rank,
    lora_alpha: alpha,
    // every adapted layer by its full name: PEFT matches a list entry against the whole name
    target_modules: layers.map((l) => l.path),
    lora_dropout: 0,
    bias: "none",
    fan_in_fan_out: false,
    use_rslora: false,
    init_lora_weights: true,
    base_model_name_or_path: baseName,
  };
}

/** The metadata of an adapter file (the caller adds step, training state, …). */
export function loraMetadata(
  rank: number,
  alpha: number,
  layers: readonly LoraLayer[],
  base: LoraBase,
): Record<string, string> {
  return {
    format: LORA_FORMAT,
    adapter_config: JSON.stringify(adapterConfig(rank, alpha, layers, base.name)),
    base_model: base.name,
    base_model_sha256: base.sha256,
    base_weights: base.weights,
    base_config: JSON.stringify(base.config),
  };
}

/** Whether a parsed safetensors file is an adapter (its `format` metadata). */
export function isLoraFile(metadata: Record<string, string>): boolean {
  return metadata.format === LORA_FORMAT;
}

/**
 * An adapter file's contents, checked as strictly as a checkpoint: its adapter_config, base and
 * every layer's A and B with exactly the shapes the base model's layer gives them, finite; no
 * tensor it does not describe. `configOf` turns the `base_config` JSON into a model config
 * (model/checkpoint_bytes.ts modelConfigFromJson).
 */
export function loraContents(
  f: SafetensorsFile,
  name: string,
  configOf: (json: string, where: string) => ModelConfig,
): LoraContents {
  const fail = (m: string): never => {
    throw new Error(`LoRA adapter '${name}': ${m}`);
  };
  const md = f.metadata;
  if (!isLoraFile(md)) {
    fail(
      `not an adapter of this project (its metadata has no format '${LORA_FORMAT}'): make one ` +
        `with deno task train:lora`,
    );
  }
  let ac: Record<string, unknown> = {};
  try {
    ac = JSON.parse(md.adapter_config ?? "");
  } catch {
    fail("its adapter_config metadata is missing or not JSON");
  }
  const rank = ac.r as number, alpha = ac.lora_alpha as number;
  try {
    checkRank(rank, alpha, "adapter_config");
  } catch (e) {
    fail((e as Error).message);
  }
  const targets = ac.target_modules;
  if (!Array.isArray(targets) || !targets.length || targets.some((t) => typeof t !== "string")) {
    fail("adapter_config.target_modules must be a list of layer names");
  }
  if (!/^[0-9a-f]{64}$/.test(md.base_model_sha256 ?? "")) {
    fail("its base_model_sha256 metadata is not a SHA-256");
  }
  const weightsKind = md.base_weights === "raw" ? "raw" : "ema";
  const config = configOf(md.base_config ?? "", `LoRA adapter '${name}'`);
  const base: LoraBase = {
    sha256: md.base_model_sha256,
    name: md.base_model ?? "(unnamed)",
    weights: weightsKind,
    config,
  };
  const all = new Map(adaptableLayers(pixartLayers(config)).map((l) => [l.path, l]));
  const layers = (targets as string[]).map((t) =>
    all.get(t) ?? fail(`'${t}' is no Linear layer of its base model`)
  );
  if (new Set(targets as string[]).size !== layers.length) fail("a layer is listed twice");
  const pairs = (prefix: string, required: boolean): Map<string, LoraPair> | null => {
    const out = new Map<string, LoraPair>();
    for (const l of layers) {
      const get = (which: "A" | "B", shape: number[]): Float32Array | null => {
        const key = prefix + peftName(l.path, which);
        const e = f.tensors.get(key);
        if (!e) return required ? fail(`'${key}' is missing`) : null;
        if (!(e.data instanceof Float32Array)) return fail(`'${key}' is not floating point`);
        if (e.shape.length !== 2 || e.shape[0] !== shape[0] || e.shape[1] !== shape[1]) {
          fail(`'${key}' is [${e.shape}], the layer needs [${shape}]`);
        }
        const bad = e.data.findIndex((v) => !Number.isFinite(v));
        if (bad >= 0) fail(`'${key}' holds ${e.data[bad]}: its weights are not finite`);
        return e.data;
      };
      const A = get("A", [rank, l.inp]), B = get("B", [l.out, rank]);
      if (!A || !B) {
        if (A || B) fail(`'${prefix}${l.path}' has one of lora_A and lora_B without the other`);
        return null;
      }
      out.set(l.path, { A, B });
    }
    return out;
  };
  const weights = pairs("", true)!;
  // EMA weights are optional, but all or none: a partial set is a damaged file, not raw weights
  const ema = pairs(EMA_PREFIX, [...f.tensors.keys()].some((k) => k.startsWith(EMA_PREFIX)));
  const optim = new Map<string, Float32Array>();
  const known = new Set<string>();
  for (const l of layers) {
    for (const w of ["A", "B"] as const) {
      const n = peftName(l.path, w);
      for (const k of [n, EMA_PREFIX + n, `${OPTIM_PREFIX}m.${n}`, `${OPTIM_PREFIX}v.${n}`]) {
        known.add(k);
      }
    }
  }
  for (const [key, e] of f.tensors) {
    if (!known.has(key)) fail(`it holds '${key}', which is no tensor of its layers`);
    if (key.startsWith(OPTIM_PREFIX) && e.data instanceof Float32Array) {
      optim.set(key.slice(OPTIM_PREFIX.length), e.data);
    }
  }
  const s = md.step ?? "0";
  if (!/^\d{1,15}$/.test(s)) fail(`its step metadata ${JSON.stringify(s)} is not a step`);
  return { rank, alpha, layers, weights, ema, optim, base, metadata: md, step: Number(s) };
}

/** An adapter file's contents from its bytes (e.g. a file given to the web page). */
export function parseLora(
  bytes: Uint8Array,
  name: string,
  configOf: (json: string, where: string) => ModelConfig,
): LoraContents {
  return loraContents(parseSafetensors(bytes, name), name, configOf);
}

/** The adapter on the device: its EMA weights when it has them (as sampling uses), unless `raw`. */
export function loraFromContents(lc: LoraContents, raw = false): Lora {
  const src = !raw && lc.ema ? lc.ema : lc.weights;
  const P = new Params();
  try {
    for (const l of lc.layers) {
      const { A, B } = src.get(l.path)!;
      P.set(peftName(l.path, "A"), tensor(A, [lc.rank, l.inp]));
      P.set(peftName(l.path, "B"), tensor(B, [l.out, lc.rank]));
    }
  } catch (e) {
    P.dispose();
    throw e;
  }
  return new Lora(lc.rank, lc.alpha, lc.layers, P, lc.base);
}

/** Which weights `loraFromContents` takes: what a training checkpoint's export keeps. */
export function loraWeightsKind(lc: LoraContents, raw = false): "ema" | "raw" {
  if (lc.ema) return raw ? "raw" : "ema";
  return lc.metadata.weights === "raw" ? "raw" : "ema";
}

/**
 * Merges adapters into a model's weights on the host, W ← W + Σ scale·(alpha/r)·B·A, computed in
 * f64 per entry and rounded once: the merged model computes what the model with the adapters
 * applied does, within f32 rounding. `weights` (by parameter name) is changed in place.
 */
export function mergeLora(
  weights: Map<string, Float32Array>,
  adapters: readonly { contents: LoraContents; scale: number; raw?: boolean }[],
): void {
  for (const { contents: lc, scale, raw } of adapters) {
    const src = !raw && lc.ema ? lc.ema : lc.weights;
    const s = scale * lc.alpha / lc.rank, r = lc.rank;
    for (const l of lc.layers) {
      const name = `${l.path}.weight`;
      const W = weights.get(name);
      if (!W || W.length !== l.out * l.inp) {
        throw new Error(`mergeLora: the model has no [${l.out}, ${l.inp}] '${name}'`);
      }
      const { A, B } = src.get(l.path)!;
      const merged = new Float32Array(W.length);
      for (let o = 0; o < l.out; o++) {
        for (let i = 0; i < l.inp; i++) {
          let acc = 0;
          for (let k = 0; k < r; k++) acc += B[o * r + k] * A[k * l.inp + i];
          merged[o * l.inp + i] = W[o * l.inp + i] + s * acc;
        }
      }
      weights.set(name, merged);
    }
  }
}

/** Host copies of an adapter's tensors under their file names (raw, `ema.`, `optim.`). */
export function loraTensorsOf(
  layers: readonly LoraLayer[],
  rank: number,
  pairs: ReadonlyMap<string, LoraPair>,
  prefix = "",
): Map<string, { shape: number[]; data: Float32Array }> {
  const out = new Map<string, { shape: number[]; data: Float32Array }>();
  for (const l of layers) {
    const p = pairs.get(l.path)!;
    out.set(prefix + peftName(l.path, "A"), { shape: [rank, l.inp], data: p.A });
    out.set(prefix + peftName(l.path, "B"), { shape: [l.out, rank], data: p.B });
  }
  return out;
}

/** An adapter's weights read back from the device, by layer. */
export async function readLoraPairs(
  lora: Lora,
  params: Params = lora.params,
): Promise<Map<string, LoraPair>> {
  const out = new Map<string, LoraPair>();
  for (const l of lora.layers) {
    out.set(l.path, {
      A: await params.get(peftName(l.path, "A")).read(),
      B: await params.get(peftName(l.path, "B")).read(),
    });
  }
  return out;
}

export interface LoraSaveOptions {
  /** the EMA of the adapter's weights (training checkpoints) */
  ema?: Params | null;
  /** Adam's moments by `m.<name>` / `v.<name>`, stored under `optim.` */
  optim?: Map<string, { shape: readonly number[]; data: Float32Array }>;
  step: number;
  metadata?: Record<string, string>;
  dtype?: "F32" | "F16";
}

/**
 * An adapter file's tensors and metadata from its host weights (and an EMA copy, Adam's moments),
 * refused when a value is not finite, so a diverged adapter is never written; `where` (where it
 * was to be written) labels that error. model/lora_file.ts writes them to a file, a training run
 * through its store.
 */
export function loraFileTensors(
  lora: Pick<Lora, "rank" | "alpha" | "layers" | "base"> | LoraContents,
  weights: ReadonlyMap<string, LoraPair>,
  o: Omit<LoraSaveOptions, "ema"> & { ema?: ReadonlyMap<string, LoraPair> | null },
  where: string,
): { tensors: Record<string, TensorInput>; metadata: Record<string, string> } {
  const tensors: Record<string, TensorInput> = {};
  for (const [k, v] of loraTensorsOf(lora.layers, lora.rank, weights)) tensors[k] = v;
  if (o.ema) {
    for (const [k, v] of loraTensorsOf(lora.layers, lora.rank, o.ema, EMA_PREFIX)) tensors[k] = v;
  }
  for (const [k, v] of o.optim ?? []) tensors[`optim.${k}`] = v;
  for (const [name, t] of Object.entries(tensors)) {
    const bad = (t.data as Float32Array).findIndex((v) => !Number.isFinite(v));
    if (bad >= 0) {
      throw new Error(
        `not writing '${where}': '${name}' holds ${t.data[bad]} at index ${bad} (the weights ` +
          `diverged)`,
      );
    }
  }
  const metadata = {
    ...o.metadata,
    ...loraMetadata(lora.rank, lora.alpha, lora.layers, lora.base),
    step: String(o.step),
  };
  return { tensors, metadata };
}

/** An adapter on the device (and its EMA) read back as `loraFileTensors`' file contents. */
export async function loraCheckpointData(
  lora: Lora,
  o: LoraSaveOptions,
  where: string,
): Promise<{ tensors: Record<string, TensorInput>; metadata: Record<string, string> }> {
  const ema = o.ema ? await readLoraPairs(lora, o.ema) : null;
  return loraFileTensors(lora, await readLoraPairs(lora), { ...o, ema }, where);
}
