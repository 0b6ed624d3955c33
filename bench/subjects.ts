// What the benchmarks measure: the shipped configs (configs/*.yaml, read with io/config.ts) and
// the matrix products and attentions their models make. A suite names its configs; `--short`
// cuts every model to its layout at the smallest size (4 tokens, one block, batch 2), so that the
// whole suite runs in a minute or two on a CPU adapter and its code cannot rot
// (tests/bench_test.ts): the same measurements, not the same numbers.

import { basename } from "node:path";
import { type Config, configName, loadConfig } from "../io/config.ts";
import type { ModelConfig } from "../model/config.ts";
import { numTokens } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { wordTableOf } from "../model/checkpoint.ts";

/** The folder of the shipped configs. */
export const CONFIG_DIR: string = new URL("../configs/", import.meta.url).pathname;

/** Images per sampling step and per grid, as `deno task sample --grid` draws them. */
export const GRID_IMAGES = 64;

/** A config as a benchmark runs it. */
export interface Subject {
  /** the config's name (its file name without .yaml) */
  name: string;
  config: Config;
  model: ModelConfig;
  /** the training batch */
  batch: number;
  /** images per sampling step (each guided step runs 2× this batch) */
  sampleBatch: number;
  /** the grid: images and sampler steps (the config's sample section) */
  gridImages: number;
  short: boolean;
}

/** The names of the shipped configs, sorted. */
export function shippedConfigs(): string[] {
  const names: string[] = [];
  for (const e of Deno.readDirSync(CONFIG_DIR)) {
    if (e.isFile && e.name.endsWith(".yaml")) names.push(basename(e.name, ".yaml"));
  }
  return names.sort();
}

/**
 * The stage a config's model is: a config file does not say (`deno task train:stage1` does); one
 * that starts from the stage before (train.init_from) or says it is a later stage trained from
 * initialisation (train.from_scratch) conditions on text (stage 2, or stage 3, which trains a
 * stage-2 model further), any other is stage 1, as tests/e2e_test.ts reads the shipped configs.
 */
export function stageOf(config: Config): 1 | 2 {
  return config.train.init_from || config.train.from_scratch ? 2 : 1;
}

/** Loads a shipped config by name (or a YAML path); `short` cuts it to one block at batch 2. */
export function subject(nameOrPath: string, short = false): Subject {
  const path = nameOrPath.endsWith(".yaml") ? nameOrPath : `${CONFIG_DIR}${nameOrPath}.yaml`;
  const config = loadConfig(path);
  const name = configName(path);
  const model: ModelConfig = { ...config.model, stage: stageOf(config) };
  if (short) {
    // the config's layout (channels, patch, heads, stage) at the smallest size: 4 tokens, 8
    // channels a head, one block, 8 caption bytes
    model.image_size = (model.wavelet === "haar" ? 4 : 2) * model.patch_size;
    model.hidden_size = 8 * model.num_heads;
    model.depth = 1;
    model.text_len = Math.min(model.text_len, 8);
    model.text_width = 8 * model.text_heads;
    model.text_depth = Math.min(model.text_depth, 1);
    model.pe_interpolation = 1;
  }
  return {
    name,
    config,
    model,
    batch: short ? 2 : config.train.batch_size,
    sampleBatch: short ? 2 : GRID_IMAGES,
    gridImages: short ? 2 : GRID_IMAGES,
    short,
  };
}

/** One matrix product of a model: C [M, N] = op(A)·op(B), as the model's call lays it out. */
export interface MatmulShape {
  M: number;
  K: number;
  N: number;
  /** NT: x·Wᵀ (a linear layer's forward); NN: dY·W (its input gradient); TN: dYᵀ·X (its weight) */
  layout: "NT" | "NN" | "TN";
  role: string;
  /** the role in a measurement's name */
  id: string;
}

/**
 * The products of a training step and of a sampling step: for each linear layer size of the
 * blocks (D→D: the q, k, v pieces, attn.proj and the cross-attention's q and proj; D→H: mlp.fc1;
 * H→D: mlp.fc2) its forward at both batches and its two backward products, and the caption K/V
 * pieces of stage 2 (once per sampling run, every training step).
 */
export function matmulShapes(s: Subject): MatmulShape[] {
  const c = s.model;
  const D = c.hidden_size, H = D * c.mlp_ratio, N = numTokens(c);
  const T = s.batch * N, Ts = 2 * s.sampleBatch * N;
  const out: MatmulShape[] = [];
  const sizes = [["D→D", "dd", D, D], ["D→H", "dh", D, H], ["H→D", "hd", H, D]] as const;
  for (const [name, id, i, o] of sizes) {
    out.push({ M: T, K: i, N: o, layout: "NT", role: `${name} forward`, id: `${id}_fwd` });
    out.push({ M: T, K: o, N: i, layout: "NN", role: `${name} dX`, id: `${id}_dx` });
    out.push({ M: o, K: T, N: i, layout: "TN", role: `${name} dW`, id: `${id}_dw` });
    out.push({ M: Ts, K: i, N: o, layout: "NT", role: `${name} sampling`, id: `${id}_sample` });
  }
  if (c.stage === 2) {
    const M = s.batch * c.text_len;
    out.push({ M, K: D, N: D, layout: "NT", role: "caption K/V forward", id: "kv_fwd" });
  }
  return out;
}

/** One attention of a model: B × heads, Nq queries over Nk keys of width D. */
export interface AttentionShape {
  B: number;
  Nq: number;
  Nk: number;
  D: number;
  heads: number;
  /** the cross-attention's caption mask */
  mask: boolean;
  /** forward and backward (training), or forward alone (sampling) */
  backward: boolean;
  role: string;
}

/** An attention's role in a measurement's name. */
export const attentionId = (a: AttentionShape): string => a.role.replace(" ", "_");

export function attentionShapes(s: Subject): AttentionShape[] {
  const c = s.model;
  const N = numTokens(c), D = c.hidden_size, heads = c.num_heads;
  const out: AttentionShape[] = [
    { B: s.batch, Nq: N, Nk: N, D, heads, mask: false, backward: true, role: "self" },
    {
      B: 2 * s.sampleBatch,
      Nq: N,
      Nk: N,
      D,
      heads,
      mask: false,
      backward: false,
      role: "self sampling",
    },
  ];
  if (c.stage === 2) {
    const L = c.text_len;
    out.push({ B: s.batch, Nq: N, Nk: L, D, heads, mask: true, backward: true, role: "cross" });
  }
  return out;
}

export function modelSummary(c: ModelConfig, B: number): string {
  const text = c.stage === 2
    ? ` text ${c.text_len}x${c.text_width} depth ${c.text_depth} heads ${c.text_heads}`
    : "";
  const bands = c.wavelet === "haar" ? " as Haar bands" : "";
  return `${c.image_size}x${c.image_size}x${c.in_channels}${bands} patch ${c.patch_size} D ${c.hidden_size} ` +
    `depth ${c.depth} heads ${c.num_heads} mlp x${c.mlp_ratio}${text} stage ${c.stage} batch ${B}`;
}

/** A freshly initialised model of a subject's config, with the word table a words model reads. */
export async function subjectModel(s: Subject, c: ModelConfig = s.model): Promise<PixArt> {
  return PixArt.init(c, 0, await wordTableOf(c));
}
