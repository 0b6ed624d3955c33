// Sampling with f16 weights: a model's linear weights replaced by f16 copies (kernels/matmul.ts
// toHalf), which linear() reads as f16 and sums in f32. The caller asks for it, once, on a model it
// samples from; the f32 copies are freed, so the weights take half the memory, and a CPU adapter
// reads half as many words per multiply-add (docs/RESULTS.md, "f16 weights").
//
// "exact" converts the weights whose values are exactly f16 (an exported checkpoint): the results
// do not change. "all" rounds every linear weight to f16 (a checkpoint stored in f32): each output
// moves by at most the rounding of its terms, |Δy| ≤ 2⁻¹¹·Σ|x·w| (tests/half_weights_test.ts);
// the evaluations show the same accuracy and FID. `sampleWeightPrecision` picks "all" where the
// adapter has the `shader-f16` feature (its hardware handles f16 weights natively) and "exact"
// elsewhere, where nothing changes.

import { deviceInfo, halfPackable, noGrad, toHalf } from "../kernels/mod.ts";
import { adaptableLayers } from "./layers.ts";
import { type PixArt, pixartLayers } from "./pixart.ts";

export type HalfWeights = "exact" | "all" | "none";

/** The weights to hold in f16 for sampling on this adapter (see the top of this file). */
export function sampleWeightPrecision(): HalfWeights {
  return deviceInfo().shaderF16 ? "all" : "exact";
}

/**
 * Replaces the model's linear weights (`which`: those exactly f16, or all) by f16 copies; returns
 * the names replaced. The model must own its weights and no longer train: an f16 weight has no
 * gradient. A weight whose inner size is not a multiple of 4 stays f32.
 */
export function useHalfWeights(model: PixArt, which: HalfWeights): string[] {
  if (which === "none") return [];
  if (!model.ownsParams) {
    throw new Error("useHalfWeights: the model samples with weights it does not own");
  }
  const P = model.params;
  // the weights of its Linear layers (the adaptable ones)
  const linears = adaptableLayers(pixartLayers(model.config)).map((l) => `${l.path}.weight`);
  const names = linears.filter((n) =>
    P.has(n) && halfPackable(P.get(n)) && (which === "all" || model.halfExact.has(n))
  );
  noGrad(() => {
    for (const n of names) P.set(n, toHalf(P.get(n)));
  });
  return names;
}

/** How many of the model's weights are f16 (what an evaluation records beside its numbers). */
export function halfWeightCount(model: PixArt): number {
  return model.params.tensors().filter((t) => t.dtype === "f16").length;
}
