// The text encoder of docs/spec.md §4: PixArt-α reads captions with a frozen T5; with no pretrained
// language model to hand, a small pre-LN transformer over UTF-8 bytes is trained jointly and plays
// T5's role. Padding tokens run through it but are masked out as keys everywhere.

import {
  add,
  attention,
  embedding,
  geluErf,
  layerNorm,
  linear,
  reshape,
  split,
  type Tensor,
} from "../kernels/mod.ts";
import type { ModelConfig } from "./config.ts";
import type { Params, ParamSpec } from "./params.ts";

const LN_EPS = 1e-5;

export function textEncoderSpecs(c: ModelConfig): ParamSpec[] {
  const E = c.text_width, pre = "text_encoder";
  const s: ParamSpec[] = [
    { name: `${pre}.token_embedding.weight`, shape: [257, E], init: { normal: 0.02 } },
    { name: `${pre}.position_embedding`, shape: [c.text_len, E], init: { normal: 0.02 } },
  ];
  const lin = (name: string, out: number, inp: number) => {
    s.push({ name: `${name}.weight`, shape: [out, inp], init: "xavier" });
    s.push({ name: `${name}.bias`, shape: [out], init: "zeros" });
  };
  const norm = (name: string) => {
    s.push({ name: `${name}.weight`, shape: [E], init: "ones" });
    s.push({ name: `${name}.bias`, shape: [E], init: "zeros" });
  };
  for (let j = 0; j < c.text_depth; j++) {
    const l = `${pre}.layers.${j}`;
    norm(`${l}.norm1`);
    lin(`${l}.attn.qkv`, 3 * E, E);
    lin(`${l}.attn.proj`, E, E);
    norm(`${l}.norm2`);
    lin(`${l}.mlp.fc1`, 4 * E, E);
    lin(`${l}.mlp.fc2`, E, 4 * E);
  }
  norm(`${pre}.norm`);
  return s;
}

/** Caption features [B, L, E] from tokens [B, L] (i32) and their mask [B, L] (1 = token). */
export function encodeText(
  c: ModelConfig,
  P: Params,
  tokens: Tensor,
  mask: Tensor,
  tap: (name: string, t: Tensor) => void = () => {},
): Tensor {
  const E = c.text_width, pre = "text_encoder";
  const L = tokens.shape[1];
  let h = add(
    embedding(P.get(`${pre}.token_embedding.weight`), tokens),
    reshape(P.get(`${pre}.position_embedding`), [1, L, E]),
  );
  tap("text_embed", h);
  const ln = (x: Tensor, name: string) =>
    layerNorm(x, P.get(`${name}.weight`), P.get(`${name}.bias`), LN_EPS);
  const lin = (x: Tensor, name: string) =>
    linear(x, P.get(`${name}.weight`), P.get(`${name}.bias`));
  for (let j = 0; j < c.text_depth; j++) {
    const l = `${pre}.layers.${j}`;
    // h += attn(norm1(h)), padding keys masked
    const [q, k, v] = split(lin(ln(h, `${l}.norm1`), `${l}.attn.qkv`), [E, E, E], 2);
    h = add(h, lin(attention(q, k, v, { heads: c.text_heads, mask }), `${l}.attn.proj`));
    // h += mlp(norm2(h)), exact erf-GELU
    h = add(h, lin(geluErf(lin(ln(h, `${l}.norm2`), `${l}.mlp.fc1`)), `${l}.mlp.fc2`));
  }
  const out = ln(h, `${pre}.norm`);
  tap("text_features", out);
  return out;
}
