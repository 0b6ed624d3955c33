// The FLOP model the benchmarks divide by, against a count made another way: every weight matrix
// of the model's parameter list, times the rows it multiplies (image tokens, samples or caption
// tokens, read from its name).

import assert from "node:assert/strict";
import { forwardFlops } from "../model/cost.ts";
import { type ModelConfig, numTokens, withModelDefaults } from "../model/config.ts";
import { pixartSpecs } from "../model/pixart.ts";

/** 2 × rows × in × out summed over the weight matrices (convolutions as patch-sized matrices). */
function countedMatmulFlops(c: ModelConfig, B: number): number {
  const T = B * numTokens(c), TL = B * c.text_len;
  let total = 0;
  for (const { name, shape } of pixartSpecs(c)) {
    if (!name.endsWith(".weight") || shape.length < 2) continue; // biases, norms, position tables
    if (name.includes("embedding_table") || name.includes("token_embedding")) continue; // lookups
    const size = shape.reduce((a, b) => a * b, 1);
    const rows = name.startsWith("text_encoder.") || name.startsWith("y_embedder.y_proj.") ||
        name.includes(".cross_attn.kv_linear.")
      ? TL
      : name.startsWith("t_embedder.") || name.startsWith("t_block.") ||
          name.startsWith("pooled_y_embedder.")
      ? B
      : T;
    total += 2 * rows * size;
  }
  return total;
}

Deno.test("cost: the FLOP model counts every weight matrix of each kind of model", () => {
  const kinds: Partial<ModelConfig>[] = [
    { stage: 1 },
    { stage: 2 },
    { stage: 2, text_encoder: "words", word_dim: 100 },
    { stage: 2, text_encoder: "words", caption_pooling: true, text_depth: 1 },
    { stage: 2, patch_size: 8, image_size: 64, in_channels: 3 },
  ];
  for (const k of kinds) {
    const c = withModelDefaults({ depth: 2, ...k });
    for (const B of [1, 3]) {
      assert.equal(forwardFlops(c, B).matmul, countedMatmulFlops(c, B), JSON.stringify(k));
    }
  }
});
