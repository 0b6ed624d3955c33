// What a forward pass of the model costs in arithmetic: the FLOP model the benchmarks divide by to
// report GFLOP/s (a training step is about 3× the forward pass: forward, and backward's two
// products per linear layer).

import { type ModelConfig, modelSpace, numTokens } from "./config.ts";

export interface Flops {
  matmul: number;
  attention: number;
  total: number;
  /** the caption path (text encoder, y_proj, cross-attention K/V): once per sampling run */
  caption: number;
  /** GFLOP by part: the image tokens' linear layers, the caption K/V projections of the
   * cross-attentions, the text encoder + y_proj, attention, and the rest (embeddings, final) */
  split: Record<string, number>;
}

/**
 * Multiply-adds ×2 of one forward pass of PixArt-α on a batch of B (stage 2: the text encoder over
 * all B captions), counting the linear layers and attention (QKᵀ and P·V, padded keys included,
 * as the kernel visits them); elementwise work, norms and softmax are left out.
 */
export function forwardFlops(c: ModelConfig, B: number): Flops {
  const D = c.hidden_size, N = numTokens(c), T = B * N, H = D * c.mlp_ratio;
  const pp = c.patch_size * c.patch_size * modelSpace(c).channels;
  const lin = (rows: number, inp: number, out: number) => 2 * rows * inp * out;
  let other = lin(T, pp, D) + lin(B, 256, D) + lin(B, D, D) + lin(B, D, 6 * D) + lin(T, D, pp);
  let blocks = 0, crossKV = 0, text = 0, att = 0, textAtt = 0;
  const L = c.text_len, E = c.text_width, TL = B * L;
  if (c.stage === 2) {
    if (c.text_encoder === "words") text += lin(TL, c.word_dim, E); // word_proj
    if (c.caption_pooling) other += lin(B, D, D); // pooled_y_embedder
    for (let j = 0; j < c.text_depth; j++) {
      text += lin(TL, E, 3 * E) + lin(TL, E, E) + lin(TL, E, 4 * E) + lin(TL, 4 * E, E);
      att += 4 * B * L * L * E;
      textAtt += 4 * B * L * L * E;
    }
    text += lin(TL, E, D) + lin(TL, D, D); // y_proj
  }
  for (let i = 0; i < c.depth; i++) {
    blocks += lin(T, D, 3 * D) + lin(T, D, D) + lin(T, D, H) + lin(T, H, D);
    att += 4 * B * N * N * D;
    if (c.stage === 2) {
      blocks += lin(T, D, D) + lin(T, D, D);
      crossKV += lin(TL, D, 2 * D);
      att += 4 * B * N * L * D;
    }
  }
  const mm = other + blocks + crossKV + text;
  const g = (x: number) => Math.round(x / 1e6) / 1e3;
  return {
    matmul: mm,
    attention: att,
    total: mm + att,
    caption: crossKV + text + textAtt,
    split: {
      blocks: g(blocks),
      cross_kv: g(crossKV),
      text: g(text),
      attention: g(att),
      other: g(other),
    },
  };
}
