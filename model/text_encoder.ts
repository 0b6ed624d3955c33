// The text encoder of docs/spec.md §4: PixArt-α reads captions with a frozen T5; with no pretrained
// language model to hand, a small pre-LN transformer over UTF-8 bytes is trained jointly and plays
// T5's role. Padding tokens run through it but are masked out as keys everywhere. Its layers are
// declared once (model/layers.ts) under the names `text_encoder.*`.

import { add, geluErf, reshape, type Tensor } from "../kernels/mod.ts";
import type { ModelConfig } from "./config.ts";
import { Attention, bind, Embedding, LayerNorm, Mlp, module, param, specsOf } from "./layers.ts";
import type { Params, ParamSpec } from "./params.ts";

const LN_EPS = 1e-5;

/** tokens [B, L] (i32) and their mask [B, L] (1 = token) → caption features [B, L, E]. */
export function TextEncoder(c: ModelConfig) {
  const E = c.text_width;
  return module({
    token_embedding: Embedding(257, E, { normal: 0.02 }),
    position_embedding: param([c.text_len, E], { normal: 0.02 }),
    layers: Array.from({ length: c.text_depth }, () => EncoderLayer(E, c.text_heads)),
    norm: LayerNorm(E, LN_EPS),
  }, (l) => (tokens: Tensor, mask: Tensor): Tensor => {
    const L = tokens.shape[1];
    let h = add(l.token_embedding(tokens), reshape(l.position_embedding, [1, L, E]));
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
export function encodeText(c: ModelConfig, P: Params, tokens: Tensor, mask: Tensor): Tensor {
  return bind(TextEncoder(c), P, "text_encoder")(tokens, mask);
}
