// The text encoder of docs/spec.md §4: PixArt-α reads captions with a frozen T5. Two stand-ins, a
// small pre-LN transformer either way, trained jointly: over UTF-8 bytes ("bytes", its embedding
// learnt from scratch), or over frozen pretrained word vectors ("words", model.word_table: GloVe,
// 100 numbers a word) through a learnt projection `word_proj` — the pretrained part stays fixed and
// only the path from its features into the image is learnt, as with T5. Padding tokens run through
// it but are masked out as keys everywhere. Its layers are declared once (model/layers.ts) under
// the names `text_encoder.*`.

import { add, embedding, geluErf, reshape, type Tensor } from "../kernels/mod.ts";
import type { ModelConfig } from "./config.ts";
import {
  Attention,
  bind,
  Embedding,
  LayerNorm,
  Linear,
  Mlp,
  module,
  param,
  specsOf,
} from "./layers.ts";
import type { Params, ParamSpec } from "./params.ts";

const LN_EPS = 1e-5;

/**
 * tokens [B, L] (i32) and their mask [B, L] (1 = token) → caption features [B, L, E]; a words
 * encoder reads the rows of its frozen `words` vectors [V + 1, word_dim] (row 0, padding, zero).
 */
export function TextEncoder(c: ModelConfig) {
  const E = c.text_width, words = c.text_encoder === "words";
  return module({
    token_embedding: words ? undefined : Embedding(257, E, { normal: 0.02 }),
    word_proj: words ? Linear(c.word_dim, E) : undefined,
    position_embedding: param([c.text_len, E], { normal: 0.02 }),
    layers: Array.from({ length: c.text_depth }, () => EncoderLayer(E, c.text_heads)),
    norm: LayerNorm(E, LN_EPS),
  }, (l) => (tokens: Tensor, mask: Tensor, vectors: Tensor | null = null): Tensor => {
    const L = tokens.shape[1];
    let tok: Tensor;
    if (l.word_proj) {
      if (!vectors) throw new Error("a words model needs its word table: load it with the model");
      tok = l.word_proj(embedding(vectors, tokens));
    } else tok = l.token_embedding!(tokens);
    let h = add(tok, reshape(l.position_embedding, [1, L, E]));
    for (const layer of l.layers) h = layer(h, mask);
    return l.norm(h);
  });
}

/** A pre-LN transformer layer: h += attn(norm1(h)) with padding keys masked; h += mlp(norm2(h)). */
function EncoderLayer(E: number, heads: number) {
  return module({
    norm1: LayerNorm(E, LN_EPS),
    attn: Attention(E, heads),
    norm2: LayerNorm(E, LN_EPS),
    // exact erf-GELU
    mlp: Mlp(E, 4 * E, E, geluErf),
  }, (l) => (h: Tensor, mask: Tensor): Tensor => {
    h = add(h, l.attn(l.norm1(h), mask));
    return add(h, l.mlp(l.norm2(h)));
  });
}

/** Every parameter of the text encoder, named `text_encoder.*`. */
export function textEncoderSpecs(c: ModelConfig): ParamSpec[] {
  return specsOf(TextEncoder(c), "text_encoder");
}

/** Caption features [B, L, E] from tokens [B, L] (i32) and their mask [B, L] (1 = token). */
export function encodeText(
  c: ModelConfig,
  P: Params,
  tokens: Tensor,
  mask: Tensor,
  words: Tensor | null = null,
): Tensor {
  return bind(TextEncoder(c), P, "text_encoder")(tokens, mask, words);
}
