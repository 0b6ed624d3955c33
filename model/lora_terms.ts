// What a forward pass needs of the low-rank adapters it applies (model/lora.ts makes, reads and
// merges them): every adapted layer's A, B and scale by the layer's path, as model/layers.ts binds
// them. Apart from lora.ts, which reads the model's layer declarations in model/pixart.ts, so that
// pixart.ts applies adapters without importing it back.

import type { Tensor } from "../kernels/mod.ts";
import type { LowRank } from "./layers.ts";
import type { Params } from "./params.ts";

/** PEFT's prefix of an adapter's tensor names (a PeftModel's `base_model.model`). */
export const PEFT_PREFIX = "base_model.model.";

/** The tensor name of a layer's A or B, as PEFT saves it. */
export function peftName(path: string, which: "A" | "B"): string {
  return `${PEFT_PREFIX}${path}.lora_${which}.weight`;
}

/** An adapter's weights as a forward pass reads them (model/lora.ts Lora). */
export interface LoraWeights {
  /** the adapted layers, by path */
  readonly layers: readonly { readonly path: string }[];
  /** A and B of every layer under their PEFT names */
  readonly params: Params;
  /** PEFT's `scaling`: alpha / r */
  readonly scaling: number;
}

/** An adapter as a model applies it: with a multiplier (`sample --lora FILE:SCALE`). */
export interface AppliedLora {
  lora: LoraWeights;
  scale: number;
}

/** The low-rank terms of every adapted layer, by its path, as model/layers.ts binds them. */
export function loraTerms(applied: readonly AppliedLora[]): Map<string, LowRank[]> {
  const terms = new Map<string, LowRank[]>();
  for (const { lora, scale } of applied) {
    for (const l of lora.layers) {
      const list = terms.get(l.path) ?? [];
      list.push({
        A: lora.params.get(peftName(l.path, "A")),
        B: lora.params.get(peftName(l.path, "B")),
        scale: scale * lora.scaling,
      });
      terms.set(l.path, list);
    }
  }
  return terms;
}

/** The tensors an adapter reads, for the `params` of a checkpointed block (kernels/autograd.ts). */
export function loraTensorsUnder(terms: ReadonlyMap<string, readonly LowRank[]>, prefix: string) {
  const out: Tensor[] = [];
  for (const [path, list] of terms) {
    if (path.startsWith(prefix)) { for (const t of list) out.push(t.A, t.B); }
  }
  return out;
}
