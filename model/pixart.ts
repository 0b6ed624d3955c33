// The PixArt-α transformer (Chen et al. 2023, §2.3 and Fig. 4), as DiT (Peebles & Xie 2023) with
// adaLN-single: one shared `t_block` maps the conditioning to 6·D numbers, and each block adds
// its own learned `scale_shift_table` to them. Stage 1 conditions on a class label through
// `y_embedder.embedding_table`; stage 2 on a caption through cross-attention (docs/spec.md §3–§4).
// Each layer is declared once, as in PixArt-α's `PixArt.py` (model/layers.ts): its path in
// `pixartLayers` is its state-dict name, and its math sits beside its declaration.

import {
  add,
  attention,
  checkpoint,
  chunk,
  concat,
  div,
  gatedResidual,
  geluTanh,
  intTensor,
  isGradEnabled,
  lincomb,
  linear,
  mul,
  noGrad,
  patchify,
  reshape,
  silu,
  split,
  sum,
  takeRows,
  type Tensor,
  tensor,
  tidy,
  unpatchify,
} from "../kernels/mod.ts";
import {
  checkModelConfig,
  type ModelConfig,
  modelSpace,
  numTokens,
  withModelDefaults,
} from "./config.ts";
import { posEmbed2d, timestepFreq } from "./embeddings.ts";
import {
  Attention,
  bind,
  type Bound,
  Embedding,
  type LayerHook,
  Linear,
  type LowRank,
  Mlp,
  ModulatedLayerNorm,
  module,
  param,
  specsOf,
} from "./layers.ts";
import { type Init, initParams, type Params, type ParamSpec } from "./params.ts";
import { type AppliedLora, loraTensorsUnder, loraTerms } from "./lora_terms.ts";
import { TextEncoder } from "./text_encoder.ts";
import { tokenize, type Tokenized } from "./tokenizer.ts";
import { TOKENIZER_INFO } from "./tokenizer_info.ts";
import { tokenizeWords, wordTokenizerSpec } from "./word_tokenizer.ts";
import type { WordTable } from "../io/word_table.ts";

const LN_EPS = 1e-6;

/** The condition of one batch, as host arrays: class labels (stage 1) or captions (stage 2). */
export type Condition =
  | { kind: "class"; labels: Int32Array }
  | {
    kind: "text";
    /** tokens [B·L] (byte + 1, 0 = padding) */
    tokens: Int32Array;
    /** 1 = real token, 0 = padding [B·L] */
    mask: Float32Array;
    /** 1 where the caption is dropped for the learned null caption `y_embedding` [B] */
    drop: Uint8Array;
  };

export interface ForwardOptions {
  /**
   * Called with named intermediate activations (for debugging and tests: the names of
   * tests/fixtures/README.md, read off the layer calls by `tapHook`); keep() what you hold.
   */
  tap?: (name: string, t: Tensor) => void;
  /**
   * Drop-path multipliers [B] (training only) for block i's self-attention (branch 0) and MLP
   * (branch 1) residuals; the cross-attention residual has none, as in PixArt-α.
   */
  dropPathKeep?: (block: number, branch: number) => Tensor | null;
  /**
   * Stage 2: the caption path computed once for a fixed condition (sampling reuses it at every
   * step: the text encoder and each block's cross-attention K/V depend on the caption alone).
   */
  text?: TextCache;
  /** masked training: the tokens the early blocks see (train/batch.ts drawTokenMask) */
  mask?: TokenMask;
  /** a words model's frozen word vectors [V + 1, word_dim] (PixArt.forward passes its own) */
  words?: Tensor | null;
  /**
   * activation checkpointing (train.checkpoint_blocks): each transformer block keeps only its
   * inputs for backward and runs again to compute its gradients (kernels/autograd.ts checkpoint)
   */
  checkpointBlocks?: boolean;
  /** low-rank adapters on the Linear layers (model/lora.ts; PixArt.forward passes its own) */
  lora?: readonly AppliedLora[];
}

/**
 * Masked training (MaskDiT, Zheng et al. 2023): the first `blocks` blocks run on `perImage` of
 * each image's tokens; the rest see every token again, the dropped ones as their position
 * embedding alone (no learned mask token, so the parameters stay PixArt-α's).
 */
export interface TokenMask {
  /** the kept tokens of each image, increasing [B · perImage] */
  keep: Int32Array;
  perImage: number;
  blocks: number;
}

/**
 * The caption embedding y, its key mask, every block's cross-attention K and V and, for a
 * caption_pooling model, the pooled caption's term of the conditioning vector.
 */
export interface TextCache {
  y: Tensor;
  keyMask: Tensor;
  kv: [Tensor, Tensor][];
  pooled?: Tensor;
}

// ---- the layers, declared once: their paths are the official PixArt-α state-dict names ----

const N002: Init = { normal: 0.02 };

/** The whole model: every parameter, in the order `initParams` draws them (§3). */
export function pixartLayers(c: ModelConfig) {
  const D = c.hidden_size, p = c.patch_size, C = modelSpace(c).channels;
  return {
    x_embedder: PatchEmbed(C, D, p),
    t_embedder: TimestepEmbedder(D),
    // adaLN-single: t0 = Linear(SiLU(c)), 6·D numbers shared by every block
    t_block: module(
      { 1: Linear(D, 6 * D, N002) },
      (l) => (cVec: Tensor): Tensor => reshape(l[1](silu(cVec)), [cVec.shape[0], 6, D]),
    ),
    text_encoder: c.stage === 2 ? TextEncoder(c) : undefined,
    y_embedder: c.stage === 1
      ? LabelEmbedder(c.num_classes, D)
      : CaptionEmbedder(c.text_len, c.text_width, D),
    blocks: Array.from(
      { length: c.depth },
      () => PixArtBlock(D, c.num_heads, c.mlp_ratio, c.stage),
    ),
    final_layer: T2IFinalLayer(D, p, C),
    // last, so that the other parameters start as they do without it (same seed, same draws)
    pooled_y_embedder: c.stage === 2 && c.caption_pooling ? Linear(D, D, N002) : undefined,
  };
}

/** The model bound to its tensors (model/layers.ts `bind`). */
export type PixArtLayers = Bound<ReturnType<typeof pixartLayers>>;

/** Every parameter of the model with its shape and initialisation (§3). */
export function pixartSpecs(c: ModelConfig): ParamSpec[] {
  return specsOf(pixartLayers(c));
}

/** The patch embedding: a stride-p conv, computed as a linear map of each flattened patch. */
function PatchEmbed(C: number, D: number, p: number) {
  const proj = module(
    { weight: param([D, C, p, p], { xavier: [D, C * p * p] }), bias: param([D], "zeros") },
    ({ weight, bias }) => (x: Tensor): Tensor =>
      linear(patchify(x, p), reshape(weight, [D, C * p * p]), bias),
  );
  // x [B, C, H, W] → [B, N, D]
  return module({ proj }, (l) => (x: Tensor): Tensor => l.proj(x));
}

/** t (host numbers) → [B, D]: the 256-d sinusoid, then Linear, SiLU, Linear. */
function TimestepEmbedder(D: number) {
  return module(
    { mlp: { 0: Linear(256, D, N002), 2: Linear(D, D, N002) } },
    ({ mlp }) => (t: ArrayLike<number>): Tensor =>
      mlp[2](silu(mlp[0](tensor(timestepFreq(t), [t.length, 256])))),
  );
}

/** Stage 1 (DiT's LabelEmbedder): a table row per class, the last row the null class. */
function LabelEmbedder(numClasses: number, D: number) {
  return module(
    { embedding_table: Embedding(numClasses + 1, D, N002) },
    (l) => (labels: Tensor): Tensor => l.embedding_table(labels),
  );
}

/**
 * Stage 2 (PixArt-α's CaptionEmbedder): dropped captions become the learned null caption
 * `y_embedding` (text null: every caption dropped), then the caption MLP `y_proj`.
 * text [B, L, E] → y [B, L, D].
 */
function CaptionEmbedder(L: number, E: number, D: number) {
  return module({
    // Xavier, not PixArt-α's N(0, 0.02): that std suits T5's 4096 channels, but over our
    // E ≈ 100 it shrinks the caption to y ≈ 0.005 rms, the cross-attention sees next to nothing
    // and the caption is ignored (the emoji model, docs/RESULTS.md); Xavier keeps y near unit scale.
    y_proj: Mlp(E, D, D, geluTanh),
    y_embedding: param([L, E], { normal: 1 / Math.sqrt(E) }),
  }, (l) => (text: Tensor | null, drop: Uint8Array): Tensor => {
    const nullCap = reshape(l.y_embedding, [1, L, E]);
    const dropCol = tensor(Float32Array.from(drop, (d) => (d ? 1 : 0)), [drop.length, 1, 1]);
    const keepCol = () => tensor(Float32Array.from(drop, (d) => (d ? 0 : 1)), [drop.length, 1, 1]);
    const features = text === null
      ? mul(nullCap, dropCol)
      : drop.every((d) => !d)
      ? text
      : add(mul(text, keepCol()), mul(nullCap, dropCol));
    return l.y_proj(features);
  });
}

/** What a block's cross-attention reads: the caption y, its key mask, and K/V if cached. */
export interface CrossInput {
  y: Tensor;
  keyMask: Tensor;
  kv?: [Tensor, Tensor];
}

/** PixArt-α's MultiHeadCrossAttention: the image tokens x [B, N, D] attend to the caption. */
function MultiHeadCrossAttention(D: number, heads: number) {
  return module({
    q_linear: Linear(D, D),
    kv_linear: Linear(D, 2 * D),
    proj: Linear(D, D, "zeros"),
  }, (l) => {
    const kv = (y: Tensor) => l.kv_linear.split(y, 2) as [Tensor, Tensor];
    return Object.assign((x: Tensor, cap: CrossInput): Tensor => {
      const [k, v] = cap.kv ?? kv(cap.y);
      return l.proj(attention(l.q_linear(x), k, v, { heads, mask: cap.keyMask }));
    }, { kv });
  });
}

/** Drop-path multipliers [B] of a block's self-attention (0) and MLP (1) branches, or null. */
export type DropPath = (branch: 0 | 1) => Tensor | null;

/** t [B, n, D] → n tensors [B, D]. */
function unbind(t: Tensor): Tensor[] {
  const [B, n, D] = t.shape;
  return split(t, Array(n).fill(1), 1).map((v) => reshape(v, [B, D]));
}

/**
 * PixArt-α's PixArtBlock: self-attention, cross-attention (stage 2) and an MLP, the first and
 * last modulated and gated by adaLN-single (§2.3): the block's own `scale_shift_table` plus the
 * shared t0 gives the six [B, D] numbers of shift, scale and gate.
 */
function PixArtBlock(D: number, heads: number, mlpRatio: number, stage: 1 | 2) {
  return module({
    scale_shift_table: param([6, D], { normal: 1 / Math.sqrt(D) }),
    norm1: ModulatedLayerNorm(LN_EPS),
    attn: Attention(D, heads),
    cross_attn: stage === 2 ? MultiHeadCrossAttention(D, heads) : undefined,
    norm2: ModulatedLayerNorm(LN_EPS),
    mlp: Mlp(D, D * mlpRatio, D, "gelu_tanh"),
  }, (b) => (x: Tensor, t0: Tensor, cap: CrossInput | null, drop: DropPath): Tensor => {
    const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = unbind(
      add(b.scale_shift_table, t0),
    );
    // x += drop_path(gate_msa · attn(t2i_modulate(norm1(x), shift_msa, scale_msa))), the gate
    // and drop-path fused into the residual add (kernels/residual.ts)
    x = gatedResidual(x, gateMsa, b.attn(b.norm1(x, shiftMsa, scaleMsa)), drop(0));
    // x += cross_attn(x, y, mask): no norm, no gate
    if (b.cross_attn && cap) x = add(x, b.cross_attn(x, cap));
    // x += drop_path(gate_mlp · mlp(t2i_modulate(norm2(x), shift_mlp, scale_mlp)))
    return gatedResidual(x, gateMlp, b.mlp(b.norm2(x, shiftMlp, scaleMlp)), drop(1));
  });
}

/** PixArt-α's T2IFinalLayer: (shift, scale) = table + c, then a linear map to patches. */
function T2IFinalLayer(D: number, p: number, C: number) {
  return module({
    scale_shift_table: param([2, D], { normal: 1 / Math.sqrt(D) }),
    norm_final: ModulatedLayerNorm(LN_EPS),
    linear: Linear(D, p * p * C, "zeros"),
  }, (l) => (x: Tensor, cVec: Tensor): Tensor => {
    const [shift, scale] = unbind(add(l.scale_shift_table, reshape(cVec, [cVec.shape[0], 1, D])));
    return l.linear(l.norm_final(x, shift, scale));
  });
}

// ---- the forward pass ----

/** The fixed position table [1, N, D] (a buffer, not a parameter). */
export function posEmbedTensor(c: ModelConfig): Tensor {
  const grid = modelSpace(c).size / c.patch_size;
  const table = posEmbed2d(c.hidden_size, grid, grid, c.pe_interpolation);
  return tensor(table, [1, numTokens(c), c.hidden_size]).keep();
}

/**
 * ε̂(x_t, t, c) as PixArt-α's `PixArt.forward`: x [B, C, H, W], t the B timesteps (host numbers),
 * cond the condition. Returns [B, C, H, W].
 */
export function pixartForward(
  c: ModelConfig,
  P: Params,
  posEmbed: Tensor,
  x: Tensor,
  t: ArrayLike<number>,
  cond: Condition,
  opts: ForwardOptions = {},
): Tensor {
  const lora = loraTerms(opts.lora ?? []);
  const m = bind(pixartLayers(c), P, "", { hook: opts.tap && tapHook(c, opts.tap), lora });
  const trainsLora = [...lora.values()].some((ts) => ts.some((t) => t.A.requiresGrad));
  // without a tape nothing needs a block's intermediates once it is done: free them at once
  const recording = isGradEnabled() && (P.requiresGrad || x.requiresGrad || trainsLora);
  const perBlock = (f: () => Tensor) => (recording ? f() : tidy(f));

  let h = add(m.x_embedder(x), posEmbed);
  let cVec = m.t_embedder(t);
  let caption: TextCache | null = null;
  if (cond.kind === "class") {
    cVec = add(cVec, labelEmbedder(m)(intTensor(cond.labels, [cond.labels.length])));
  } else caption = opts.text ?? captionPath(c, m, cond, opts.words ?? null);
  if (caption && m.pooled_y_embedder) {
    cVec = add(cVec, caption.pooled ?? m.pooled_y_embedder(pooledCaption(caption)));
  }
  const t0 = m.t_block(cVec);
  const mask = opts.mask, N = h.shape[1];
  if (mask) h = keptTokens(h, mask);
  for (const [i, block] of m.blocks.entries()) {
    if (mask && i === mask.blocks) h = restoredTokens(h, mask, posEmbed, N);
    const cap = caption && { y: caption.y, keyMask: caption.keyMask, kv: caption.kv[i] };
    const drop: DropPath = (branch) => opts.dropPathKeep?.(i, branch) ?? null;
    h = perBlock(() =>
      recording && opts.checkpointBlocks
        ? checkpoint(
          (hIn, t0In, yIn) => block(hIn, t0In, cap && { ...cap, y: yIn }, drop),
          cap ? [h, t0, cap.y] : [h, t0],
          blockParams(P, i, lora),
        )
        : block(h, t0, cap, drop)
    );
  }
  const { channels, size } = modelSpace(c);
  return unpatchify(m.final_layer(h, cVec), c.patch_size, channels, size, size);
}

/** y [B, L, D] → its mean over the rows the key mask keeps [B, D] (a null caption: every row). */
export function pooledCaption({ y, keyMask }: Pick<TextCache, "y" | "keyMask">): Tensor {
  const [B, L] = keyMask.shape;
  const kept = sum(mul(y, reshape(keyMask, [B, L, 1])), 1);
  return div(kept, reshape(sum(keyMask, 1), [B, 1]));
}

/** The weights block i reads: its parameters and adapters, which a checkpointed block names. */
function blockParams(P: Params, i: number, lora: ReadonlyMap<string, readonly LowRank[]>) {
  const prefix = `blocks.${i}.`;
  return [
    ...P.names().filter((n) => n.startsWith(prefix)).map((n) => P.get(n)),
    ...loraTensorsUnder(lora, prefix),
  ];
}

/** h [B, N, D] → the kept tokens [B, K, D] of `mask`. */
function keptTokens(h: Tensor, mask: TokenMask): Tensor {
  const [B, N, D] = h.shape, K = mask.perImage;
  const src = Int32Array.from(mask.keep, (tok, j) => Math.floor(j / K) * N + tok);
  return reshape(takeRows(reshape(h, [B * N, D]), src), [B, K, D]);
}

/** The kept tokens [B, K, D] back in place among [B, N, D], the dropped ones as their positions. */
function restoredTokens(h: Tensor, mask: TokenMask, posEmbed: Tensor, N: number): Tensor {
  const [B, K, D] = h.shape;
  const src = new Int32Array(B * N).fill(-1);
  const dropped = new Float32Array(B * N).fill(1);
  mask.keep.forEach((tok, j) => {
    const r = Math.floor(j / K) * N + tok;
    src[r] = j;
    dropped[r] = 0;
  });
  const back = reshape(takeRows(reshape(h, [B * K, D]), src), [B, N, D]);
  return add(back, mul(posEmbed, tensor(dropped, [B, N, 1])));
}

function labelEmbedder(m: PixArtLayers) {
  const y = m.y_embedder;
  if (!("embedding_table" in y)) throw new Error("a class condition needs a stage-1 model");
  return y;
}

/**
 * Stage 2's caption path: text features (the text encoder is skipped when every caption is
 * dropped), the caption embedding y and the cross-attention key mask (all ones for a null
 * caption: it attends to every row of `y_embedding`).
 */
function captionPath(
  c: ModelConfig,
  m: PixArtLayers,
  cond: Extract<Condition, { kind: "text" }>,
  words: Tensor | null,
): { y: Tensor; keyMask: Tensor; kv: [Tensor, Tensor][] } {
  const { text_encoder, y_embedder } = m;
  if (!text_encoder || !("y_proj" in y_embedder)) {
    throw new Error("a text condition needs a stage-2 model");
  }
  const B = cond.drop.length, L = c.text_len;
  const text = cond.drop.every((d) => d)
    ? null
    : text_encoder(intTensor(cond.tokens, [B, L]), tensor(cond.mask, [B, L]), words);
  const mask = Float32Array.from(cond.mask, (v, i) => (cond.drop[Math.floor(i / L)] ? 1 : v));
  return { y: y_embedder(text, cond.drop), keyMask: tensor(mask, [B, L]), kv: [] };
}

/**
 * ForwardOptions.tap's named activations, the fixtures' debug names (tests/fixtures/README.md),
 * each read off a layer call: one of its arguments or its result.
 */
function tapHook(c: ModelConfig, tap: (name: string, t: Tensor) => void): LayerHook {
  const textIn = c.text_depth > 0 ? "text_encoder.layers.0" : "text_encoder.norm";
  return (path, args, out) => {
    const input = args[0] as Tensor, result = out as Tensor;
    const block = /^blocks\.(\d+)(?:\.(cross_attn|norm2))?$/.exec(path);
    if (block) {
      const [, i, part] = block;
      if (part === "cross_attn") {
        tap(`block${i}_after_attn`, input);
        if (i === "0") tap("key_mask", (args[1] as CrossInput).keyMask);
      } else if (part === "norm2") {
        tap(`block${i}_after_${c.stage === 2 ? "cross" : "attn"}`, input);
      } else {
        if (i === "0") tap("x_embed", input);
        tap(`block${i}_out`, result);
      }
      return;
    }
    const named: Record<string, [string, Tensor]> = {
      "t_embedder.mlp.0": ["t_freq", input],
      "t_embedder": ["t_emb", result],
      "y_embedder": [c.stage === 1 ? "label_emb" : "y", result],
      "y_embedder.y_proj": ["caption_features", input],
      [textIn]: ["text_embed", input],
      "text_encoder": ["text_features", result],
      "final_layer": ["final_tokens", result],
    };
    if (path === "t_block") {
      tap("c", input);
      tap("t0", result);
    } else if (named[path]) tap(...named[path]);
  };
}

/** The caption path of a text condition, kept until dispose (for reuse over sampling steps). */
export function prepareText(
  c: ModelConfig,
  P: Params,
  cond: Extract<Condition, { kind: "text" }>,
  words: Tensor | null = null,
  lora: readonly AppliedLora[] = [],
): TextCache & { dispose(): void } {
  return noGrad(() => {
    const cache = tidy(() => {
      const m = bind(pixartLayers(c), P, "", { lora: loraTerms(lora) });
      const { y, keyMask } = captionPath(c, m, cond, words);
      const kv = m.blocks.map((b) => b.cross_attn!.kv(y));
      const pooled = m.pooled_y_embedder?.(pooledCaption({ y, keyMask }));
      return { y, keyMask, kv, ...(pooled && { pooled }) };
    });
    const all = [
      cache.y,
      cache.keyMask,
      ...cache.kv.flat(),
      ...(cache.pooled ? [cache.pooled] : []),
    ];
    for (const t of all) t.keep();
    return { ...cache, dispose: () => all.forEach((t) => t.dispose()) };
  });
}

/** A PixArt-α model: its config, named parameters and fixed position table. */
export class PixArt {
  readonly posEmbed: Tensor;
  /**
   * Names of the linear weights whose values are exactly f16 (a checkpoint stored in f16): held
   * as f16 they give the same results (model/half_weights.ts).
   */
  halfExact: ReadonlySet<string> = new Set();
  /** false for a view over weights someone else owns (e.g. the trainer's EMA copy) */
  readonly #ownsParams: boolean;
  /**
   * A words model's frozen vectors [V + 1, word_dim], row 0 (padding) zero, and their table: not
   * parameters (nothing trains them), not in the checkpoint (which records the table's hash)
   */
  readonly words: Tensor | null;
  readonly wordTable: WordTable | null;
  /**
   * The low-rank adapters every forward pass applies, each with its multiplier (model/lora.ts):
   * the model does not own them; whoever sets them disposes them.
   */
  lora: readonly AppliedLora[] = [];

  constructor(
    readonly config: ModelConfig,
    readonly params: Params,
    ownsParams = true,
    wordTable: WordTable | null = null,
  ) {
    checkModelConfig(config);
    const words = config.stage === 2 && config.text_encoder === "words";
    if (wordTable && !words) throw new Error("a word table was given to a model that reads bytes");
    if (wordTable && wordTable.dim !== config.word_dim) {
      throw new Error(
        `the word table has vectors of ${wordTable.dim} numbers, model.word_dim is ` +
          `${config.word_dim}: use the table the model was made for`,
      );
    }
    this.posEmbed = posEmbedTensor(config);
    this.#ownsParams = ownsParams;
    this.wordTable = wordTable;
    this.words = wordTable ? wordVectors(wordTable) : null;
  }

  /** Whether dispose() frees the parameters (false for a view over someone else's). */
  get ownsParams(): boolean {
    return this.#ownsParams;
  }

  /** A model that samples with `params` but leaves them alone on dispose(). */
  static over(config: ModelConfig, params: Params, wordTable: WordTable | null = null): PixArt {
    return new PixArt(config, params, false, wordTable);
  }

  /** A freshly initialised model; the keys `config` leaves out take their defaults. */
  static init(
    config: Partial<ModelConfig>,
    seed: number,
    wordTable: WordTable | null = null,
  ): PixArt {
    const full = withModelDefaults(config);
    return new PixArt(full, initParams(pixartSpecs(full), seed), true, wordTable);
  }

  forward(x: Tensor, t: ArrayLike<number>, cond: Condition, opts: ForwardOptions = {}): Tensor {
    return pixartForward(this.config, this.params, this.posEmbed, x, t, cond, {
      ...opts,
      words: this.words,
      lora: this.lora,
    });
  }

  /** Captions as the model's text encoder reads them: token ids and their mask [n, text_len]. */
  tokenize(prompts: readonly string[]): Tokenized {
    const c = this.config;
    if (c.text_encoder !== "words") return tokenize(prompts, c.text_len);
    if (!this.wordTable) {
      throw new Error("this model reads words: load its word table with it (model.word_table)");
    }
    return tokenizeWords(prompts, this.wordTable, c.text_len);
  }

  /** The tokenizer settings a checkpoint records (`tokenizer` metadata). */
  tokenizerSpec(): Record<string, unknown> {
    const c = this.config;
    if (c.text_encoder !== "words") return { ...TOKENIZER_INFO, max_length: c.text_len };
    if (!this.wordTable) throw new Error("a words model without its word table cannot be saved");
    return wordTokenizerSpec(this.wordTable, c.text_len);
  }

  /** The null condition for B samples: the extra class, or the learned null caption. */
  nullCondition(B: number): Condition {
    if (this.config.stage === 1) {
      return { kind: "class", labels: new Int32Array(B).fill(this.config.num_classes) };
    }
    const L = this.config.text_len;
    return {
      kind: "text",
      tokens: new Int32Array(B * L),
      mask: new Float32Array(B * L),
      drop: new Uint8Array(B).fill(1),
    };
  }

  /**
   * ε̃ = ε_∅ + w·(ε_c − ε_∅) for a fixed condition (classifier-free guidance); both branches run
   * as one batch, and w = 1 (0) runs the conditional (unconditional) branch alone. With an
   * `interval` [lo, hi] of timesteps, guidance applies only for lo ≤ t ≤ hi and the conditional
   * model alone elsewhere (guidance in a limited interval, Kynkäänniemi et al. 2024: strong
   * guidance at the noisiest and the cleanest steps costs realism and buys little). A text
   * condition's caption path is computed once per branch set and reused; dispose() frees it.
   * A `negative` condition (a negative prompt) takes the null condition's place as ε_∅, as the
   * PixArt-α repository's and diffusers' pipelines encode `negative_prompt` for the unconditional
   * branch.
   */
  guidedEps(
    cond: Condition,
    w: number,
    interval?: readonly [number, number] | null,
    negative?: Condition | null,
  ): ((x: Tensor, t: number) => Tensor) & { dispose(): void } {
    const size = (c: Condition) => c.kind === "class" ? c.labels.length : c.drop.length;
    const B = size(cond);
    if (interval && !(interval[0] <= interval[1])) {
      throw new Error(`guidance interval [${interval}] must have lo ≤ hi`);
    }
    if (negative && size(negative) !== B) {
      throw new Error(`guidedEps: the negative condition has ${size(negative)} samples, cond ${B}`);
    }
    const uncond = () => negative ?? this.nullCondition(B);
    const runs = new Map<
      number,
      { cond: Condition; text: TextCache & { dispose(): void } | null }
    >();
    // the condition (and, for text, its cached caption path) of a pass at effective scale w
    const runFor = (wt: number) => {
      const key = wt === 1 ? 1 : wt === 0 ? 0 : 2;
      let r = runs.get(key);
      if (!r) {
        const c = key === 1 ? cond : key === 0 ? uncond() : concatConditions(cond, uncond());
        r = {
          cond: c,
          text: c.kind === "text"
            ? prepareText(this.config, this.params, c, this.words, this.lora)
            : null,
        };
        runs.set(key, r);
      }
      return r;
    };
    const eps = (x: Tensor, t: number) => {
      if (x.shape[0] !== B) throw new Error(`guidedEps: x has ${x.shape[0]} samples, cond ${B}`);
      const wt = !interval || (t >= interval[0] && t <= interval[1]) ? w : 1;
      const run = runFor(wt);
      const opts = run.text ? { text: run.text } : {};
      if (wt === 1 || wt === 0) return this.forward(x, new Array(B).fill(t), run.cond, opts);
      const out = this.forward(concat([x, x], 0), new Array(2 * B).fill(t), run.cond, opts);
      const [c, u] = chunk(out, 2, 0);
      return lincomb([u, c], [1 - wt, wt]);
    };
    return Object.assign(eps, {
      dispose: () => {
        for (const r of runs.values()) r.text?.dispose();
        runs.clear();
      },
    });
  }

  dispose(): void {
    if (this.#ownsParams) this.params.dispose();
    this.posEmbed.dispose();
    this.words?.dispose();
  }
}

/** A table's vectors on the device, under a zero row for padding (token id = row + 1). */
function wordVectors(table: WordTable): Tensor {
  const data = new Float32Array((table.words.length + 1) * table.dim);
  data.set(table.vectors, table.dim);
  return tensor(data, [table.words.length + 1, table.dim]).keep();
}

export function concatConditions(a: Condition, b: Condition): Condition {
  if (a.kind === "class" && b.kind === "class") {
    const labels = new Int32Array(a.labels.length + b.labels.length);
    labels.set(a.labels);
    labels.set(b.labels, a.labels.length);
    return { kind: "class", labels };
  }
  if (a.kind === "text" && b.kind === "text") {
    const cat = <T extends Int32Array | Float32Array | Uint8Array>(x: T, y: T): T => {
      const o = new (x.constructor as { new (n: number): T })(x.length + y.length);
      o.set(x);
      o.set(y, x.length);
      return o;
    };
    return {
      kind: "text",
      tokens: cat(a.tokens, b.tokens),
      mask: cat(a.mask, b.mask),
      drop: cat(a.drop, b.drop),
    };
  }
  throw new Error("cannot batch a class condition with a text condition");
}
