// The PixArt-α transformer (Chen et al. 2023, §2.3 and Fig. 4), as DiT (Peebles & Xie 2023) with
// adaLN-single: one shared `t_block` maps the conditioning to 6·D numbers, and each block adds
// its own learned `scale_shift_table` to them. Stage 1 conditions on a class label through
// `y_embedder.embedding_table`; stage 2 on a caption through cross-attention (docs/spec.md §3–§4).

import {
  add,
  attention,
  chunk,
  concat,
  embedding,
  gatedResidual,
  geluTanh,
  halfPackable,
  intTensor,
  isGradEnabled,
  layerNormModulate,
  lincomb,
  linear,
  linearHalfRows,
  mul,
  noGrad,
  patchify,
  reshape,
  silu,
  split,
  type Tensor,
  tensor,
  tidy,
  unpatchify,
  useHalfWeight,
} from "../kernels/mod.ts";
import { checkModelConfig, type ModelConfig, numTokens } from "./config.ts";
import { posEmbed2d, timestepFreq } from "./embeddings.ts";
import { initParams, type Params, type ParamSpec } from "./params.ts";
import { encodeText, textEncoderSpecs } from "./text_encoder.ts";

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
  /** called with named intermediate activations (for debugging and tests); keep() what you hold */
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
}

/** The caption embedding y, its key mask and every block's cross-attention K and V. */
export interface TextCache {
  y: Tensor;
  keyMask: Tensor;
  kv: [Tensor, Tensor][];
}

/** Every parameter of the model with its shape and initialisation (§3). */
export function pixartSpecs(c: ModelConfig): ParamSpec[] {
  const D = c.hidden_size, p = c.patch_size, C = c.in_channels;
  const hidden = D * c.mlp_ratio;
  const s: ParamSpec[] = [
    { name: "x_embedder.proj.weight", shape: [D, C, p, p], init: { xavier: [D, C * p * p] } },
    { name: "x_embedder.proj.bias", shape: [D], init: "zeros" },
    { name: "t_embedder.mlp.0.weight", shape: [D, 256], init: { normal: 0.02 } },
    { name: "t_embedder.mlp.0.bias", shape: [D], init: "zeros" },
    { name: "t_embedder.mlp.2.weight", shape: [D, D], init: { normal: 0.02 } },
    { name: "t_embedder.mlp.2.bias", shape: [D], init: "zeros" },
    { name: "t_block.1.weight", shape: [6 * D, D], init: { normal: 0.02 } },
    { name: "t_block.1.bias", shape: [6 * D], init: "zeros" },
  ];
  const lin = (name: string, out: number, inp: number, init: ParamSpec["init"] = "xavier") => {
    s.push({ name: `${name}.weight`, shape: [out, inp], init });
    s.push({ name: `${name}.bias`, shape: [out], init: "zeros" });
  };
  if (c.stage === 1) {
    s.push({
      name: "y_embedder.embedding_table.weight",
      shape: [c.num_classes + 1, D],
      init: { normal: 0.02 },
    });
  } else {
    s.push(...textEncoderSpecs(c));
    // Xavier, not PixArt-α's N(0, 0.02): that std suits T5's 4096 channels, but over our
    // E ≈ 100 it shrinks the caption to y ≈ 0.005 rms, the cross-attention sees next to nothing and
    // the caption is ignored (the emoji model, docs/RESULTS.md); Xavier keeps y near unit scale.
    lin("y_embedder.y_proj.fc1", D, c.text_width);
    lin("y_embedder.y_proj.fc2", D, D);
    s.push({
      name: "y_embedder.y_embedding",
      shape: [c.text_len, c.text_width],
      init: { normal: 1 / Math.sqrt(c.text_width) },
    });
  }
  for (let i = 0; i < c.depth; i++) {
    const b = `blocks.${i}`;
    s.push({ name: `${b}.scale_shift_table`, shape: [6, D], init: { normal: 1 / Math.sqrt(D) } });
    lin(`${b}.attn.qkv`, 3 * D, D);
    lin(`${b}.attn.proj`, D, D);
    if (c.stage === 2) {
      lin(`${b}.cross_attn.q_linear`, D, D);
      lin(`${b}.cross_attn.kv_linear`, 2 * D, D);
      lin(`${b}.cross_attn.proj`, D, D, "zeros");
    }
    lin(`${b}.mlp.fc1`, hidden, D);
    lin(`${b}.mlp.fc2`, D, hidden);
  }
  s.push({
    name: "final_layer.scale_shift_table",
    shape: [2, D],
    init: { normal: 1 / Math.sqrt(D) },
  });
  lin("final_layer.linear", p * p * C, D, "zeros");
  return s;
}

/** The fixed position table [1, N, D] (a buffer, not a parameter). */
export function posEmbedTensor(c: ModelConfig): Tensor {
  const grid = c.image_size / c.patch_size;
  const table = posEmbed2d(c.hidden_size, grid, grid, c.pe_interpolation);
  return tensor(table, [1, numTokens(c), c.hidden_size]).keep();
}

/**
 * ε̂(x_t, t, c): x [B, C, H, W], t the B timesteps (CPU numbers), cond the condition.
 * Returns [B, C, H, W].
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
  const B = x.shape[0], D = c.hidden_size, p = c.patch_size, C = c.in_channels;
  const recording = isGradEnabled() && (P.requiresGrad || x.requiresGrad);
  // patch embedding (a stride-p conv as a linear map of each flattened patch) + positions
  const patches = patchify(x, p);
  const wPatch = reshape(P.get("x_embedder.proj.weight"), [D, C * p * p]);
  let h = add(linear(patches, wPatch, P.get("x_embedder.proj.bias")), posEmbed);
  const tap = opts.tap ?? (() => {});
  tap("x_embed", h);

  // timestep embedding and the conditioning vector c
  const tFreq = tensor(timestepFreq(t), [B, 256]);
  const tEmb = mlp2(P, "t_embedder.mlp.0", "t_embedder.mlp.2", tFreq, silu);
  tap("t_freq", tFreq);
  tap("t_emb", tEmb);
  let cVec = tEmb;
  let y: Tensor | null = null;
  let keyMask: Tensor | null = null;
  if (cond.kind === "class") {
    const labels = intTensor(cond.labels, [B]);
    const labelEmb = embedding(P.get("y_embedder.embedding_table.weight"), labels);
    tap("label_emb", labelEmb);
    cVec = add(tEmb, labelEmb);
  } else if (opts.text) {
    y = opts.text.y;
    keyMask = opts.text.keyMask;
  } else {
    const text = captionEmbedding(c, P, cond, tap);
    y = text.y;
    keyMask = text.keyMask;
  }
  // adaLN-single: t0 = Linear(SiLU(c)), shared by every block
  const t0 = reshape(linear(silu(cVec), P.get("t_block.1.weight"), P.get("t_block.1.bias")), [
    B,
    6,
    D,
  ]);

  tap("c", cVec);
  tap("t0", t0);
  for (let i = 0; i < c.depth; i++) {
    // without a tape nothing needs a block's intermediates once it is done: free them at once
    const hin = h;
    h = recording
      ? block(c, P, i, hin, t0, y, keyMask, opts)
      : tidy(() => block(c, P, i, hin, t0, y, keyMask, opts));
    tap(`block${i}_out`, h);
  }
  // final layer: (shift, scale) = table + c
  const ff = add(P.get("final_layer.scale_shift_table"), reshape(cVec, [B, 1, D]));
  const [shift, scl] = split(ff, [1, 1], 1).map((v) => reshape(v, [B, D]));
  h = layerNormModulate(h, shift, scl, LN_EPS);
  h = linear(h, P.get("final_layer.linear.weight"), P.get("final_layer.linear.bias"));
  tap("final_tokens", h);
  return unpatchify(h, p, C, c.image_size, c.image_size);
}

/** One PixArt block: self-attention, cross-attention (stage 2), MLP, each gated by adaLN-single. */
function block(
  c: ModelConfig,
  P: Params,
  i: number,
  x: Tensor,
  t0: Tensor,
  y: Tensor | null,
  keyMask: Tensor | null,
  opts: ForwardOptions,
): Tensor {
  const B = x.shape[0], D = c.hidden_size, b = `blocks.${i}`;
  const mod = add(P.get(`${b}.scale_shift_table`), t0); // [B, 6, D]
  const [shiftMsa, scaleMsa, gateMsa, shiftMlp, scaleMlp, gateMlp] = split(
    mod,
    [1, 1, 1, 1, 1, 1],
    1,
  )
    .map((v) => reshape(v, [B, D]));

  // x += gate_msa · attn(LN(x)·(1 + scale_msa) + shift_msa)
  const [q, k, v] = linearPieces(
    layerNormModulate(x, shiftMsa, scaleMsa, LN_EPS),
    P.get(`${b}.attn.qkv.weight`),
    P.get(`${b}.attn.qkv.bias`),
    3,
  );
  const a = linear(
    attention(q, k, v, { heads: c.num_heads }),
    P.get(`${b}.attn.proj.weight`),
    P.get(`${b}.attn.proj.bias`),
  );
  // the gate and drop-path fused into the residual add (kernels/residual.ts)
  x = gatedResidual(x, gateMsa, a, opts.dropPathKeep?.(i, 0));
  opts.tap?.(`block${i}_after_attn`, x);

  // x += cross_attn(x, y, mask): no gate, no norm (§3)
  if (y) {
    const cq = linear(
      x,
      P.get(`${b}.cross_attn.q_linear.weight`),
      P.get(`${b}.cross_attn.q_linear.bias`),
    );
    const [ck, cv] = opts.text?.kv[i] ?? crossKv(P, i, y);
    const ca = attention(cq, ck, cv, { heads: c.num_heads, mask: keyMask ?? undefined });
    x = add(
      x,
      linear(ca, P.get(`${b}.cross_attn.proj.weight`), P.get(`${b}.cross_attn.proj.bias`)),
    );
    opts.tap?.(`block${i}_after_cross`, x);
  }

  // x += gate_mlp · mlp(LN(x)·(1 + scale_mlp) + shift_mlp)
  const hid = linear(
    layerNormModulate(x, shiftMlp, scaleMlp, LN_EPS),
    P.get(`${b}.mlp.fc1.weight`),
    P.get(`${b}.mlp.fc1.bias`),
    "gelu_tanh",
  );
  const m = linear(hid, P.get(`${b}.mlp.fc2.weight`), P.get(`${b}.mlp.fc2.bias`));
  return gatedResidual(x, gateMlp, m, opts.dropPathKeep?.(i, 1));
}

/** Block i's cross-attention keys and values of the caption embedding y. */
function crossKv(P: Params, i: number, y: Tensor): [Tensor, Tensor] {
  const [k, v] = linearPieces(
    y,
    P.get(`blocks.${i}.cross_attn.kv_linear.weight`),
    P.get(`blocks.${i}.cross_attn.kv_linear.bias`),
    2,
  );
  return [k, v];
}

/** The caption path of a text condition, kept until dispose (for reuse over sampling steps). */
export function prepareText(
  c: ModelConfig,
  P: Params,
  cond: Extract<Condition, { kind: "text" }>,
): TextCache & { dispose(): void } {
  return noGrad(() => {
    const cache = tidy(() => {
      const { y, keyMask } = captionEmbedding(c, P, cond);
      const kv = Array.from({ length: c.depth }, (_, i) => crossKv(P, i, y));
      return { y, keyMask, kv };
    });
    const all = [cache.y, cache.keyMask, ...cache.kv.flat()];
    for (const t of all) t.keep();
    return { ...cache, dispose: () => all.forEach((t) => t.dispose()) };
  });
}

/**
 * linear(x, w, bias) split into n equal pieces along its output features, computed as n products
 * with row blocks of w: splitting the packed [.., n·D] output instead would copy it and keep it
 * alive until the step ends although no backward reads it (at the seed shape, 455 MB of a
 * training step's peak). The weight blocks are small copies.
 */
function linearPieces(x: Tensor, w: Tensor, bias: Tensor, n: number): Tensor[] {
  const size = w.shape[0] / n;
  const sizes = Array(n).fill(size);
  const bs = split(bias, sizes, 0);
  // sampling from an f16 checkpoint reads the pieces straight from the packed weight
  const half = bs.map((b, k) => linearHalfRows(x, w, k * size, size, b));
  if (half.every((t) => t !== null)) return half as Tensor[];
  return split(w, sizes, 0).map((wk, k) => linear(x, wk, bs[k]));
}

function mlp2(P: Params, l1: string, l2: string, x: Tensor, act: (t: Tensor) => Tensor): Tensor {
  const h = act(linear(x, P.get(`${l1}.weight`), P.get(`${l1}.bias`)));
  return linear(h, P.get(`${l2}.weight`), P.get(`${l2}.bias`));
}

/**
 * Stage 2's caption path: text features (or the learned null caption for dropped rows), the
 * caption MLP y_proj, and the cross-attention key mask (all ones for a null caption).
 */
export function captionEmbedding(
  c: ModelConfig,
  P: Params,
  cond: Extract<Condition, { kind: "text" }>,
  tap: (name: string, t: Tensor) => void = () => {},
): { features: Tensor; y: Tensor; keyMask: Tensor } {
  const B = cond.drop.length, L = c.text_len, E = c.text_width;
  const nullCap = reshape(P.get("y_embedder.y_embedding"), [1, L, E]);
  const dropped = cond.drop.reduce((s, d) => s + (d ? 1 : 0), 0);
  const m = new Float32Array(B * L);
  for (let b = 0; b < B; b++) {
    for (let j = 0; j < L; j++) m[b * L + j] = cond.drop[b] ? 1 : cond.mask[b * L + j];
  }
  const keyMask = tensor(m, [B, L]);
  const dropCol = tensor(Float32Array.from(cond.drop, (d) => (d ? 1 : 0)), [B, 1, 1]);
  let features: Tensor;
  if (dropped === B) {
    // every caption dropped (the unconditional pass of guidance): the text encoder is skipped
    features = mul(nullCap, dropCol);
  } else {
    const text = encodeText(c, P, intTensor(cond.tokens, [B, L]), tensor(cond.mask, [B, L]), tap);
    if (dropped === 0) features = text;
    else {
      const keepCol = tensor(Float32Array.from(cond.drop, (d) => (d ? 0 : 1)), [B, 1, 1]);
      features = add(mul(text, keepCol), mul(nullCap, dropCol));
    }
  }
  const y = mlp2(P, "y_embedder.y_proj.fc1", "y_embedder.y_proj.fc2", features, geluTanh);
  tap("caption_features", features);
  tap("key_mask", keyMask);
  tap("y", y);
  return { features, y, keyMask };
}

/** A PixArt-α model: its config, named parameters and fixed position table. */
export class PixArt {
  readonly posEmbed: Tensor;
  /**
   * Names of the linear weights whose values are exactly f16 (a checkpoint stored in f16):
   * sampling reads them packed, with the same results (kernels/matmul.ts, useHalfWeight).
   */
  halfExact: ReadonlySet<string> = new Set();
  /** false for a view over weights someone else owns (e.g. the trainer's EMA copy) */
  readonly #ownsParams: boolean;

  constructor(readonly config: ModelConfig, readonly params: Params, ownsParams = true) {
    checkModelConfig(config);
    this.posEmbed = posEmbedTensor(config);
    this.#ownsParams = ownsParams;
  }

  /** A model that samples with `params` but leaves them alone on dispose(). */
  static over(config: ModelConfig, params: Params): PixArt {
    return new PixArt(config, params, false);
  }

  static init(config: ModelConfig, seed: number): PixArt {
    return new PixArt(config, initParams(pixartSpecs(config), seed));
  }

  forward(x: Tensor, t: ArrayLike<number>, cond: Condition, opts: ForwardOptions = {}): Tensor {
    return pixartForward(this.config, this.params, this.posEmbed, x, t, cond, opts);
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
   */
  guidedEps(
    cond: Condition,
    w: number,
    interval?: readonly [number, number] | null,
  ): ((x: Tensor, t: number) => Tensor) & { dispose(): void } {
    const B = cond.kind === "class" ? cond.labels.length : cond.drop.length;
    if (interval && !(interval[0] <= interval[1])) {
      throw new Error(`guidance interval [${interval}] must have lo ≤ hi`);
    }
    const runs = new Map<
      number,
      { cond: Condition; text: TextCache & { dispose(): void } | null }
    >();
    // the condition (and, for text, its cached caption path) of a pass at effective scale w
    const runFor = (wt: number) => {
      const key = wt === 1 ? 1 : wt === 0 ? 0 : 2;
      let r = runs.get(key);
      if (!r) {
        const c = key === 1
          ? cond
          : key === 0
          ? this.nullCondition(B)
          : concatConditions(cond, this.nullCondition(B));
        r = { cond: c, text: c.kind === "text" ? prepareText(this.config, this.params, c) : null };
        runs.set(key, r);
      }
      return r;
    };
    let half: { dispose(): void }[] | null = null;
    const eps = (x: Tensor, t: number) => {
      if (x.shape[0] !== B) throw new Error(`guidedEps: x has ${x.shape[0]} samples, cond ${B}`);
      half ??= [...this.halfExact].map((n) => this.params.get(n)).filter(halfPackable)
        .map(useHalfWeight);
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
        for (const h of half ?? []) h.dispose();
        half = null;
      },
    });
  }

  dispose(): void {
    if (this.#ownsParams) this.params.dispose();
    this.posEmbed.dispose();
  }
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
