// The form's values as a drawing request. Numbers are checked by the inputs' own limits (min, max,
// step); prompts by the loaded model, with the message the tokenizer (or, for a class-conditional
// model, the label lookup) gives, so the page and the command line reject the same prompts.

import { conditionFor } from "../diffusion/generate.ts";
import type { LoadedModel } from "./loaded_model.ts";

export interface DrawRequest {
  /** the prompts as typed, each drawn `num` times */
  prompts: string[];
  /** a negative prompt for every sample; "" for none (the null caption) */
  negative: string;
  num: number;
  guidance: number;
  /** an image to edit instead of drawing from noise (GenerateOptions' names) */
  edit: {
    /** the upload's name, for the status line */
    name: string;
    initImage: Float32Array;
    strength: number;
    mask: Float32Array | null;
    resample: number;
  } | null;
  steps: number;
  seed: number;
  /** the multiplier of the LoRA adapter, if one is given */
  loraScale: number;
}

/** Prompts separated by "|", as in a prompts file. */
export function splitPrompts(text: string): string[] {
  return text.split("|").map((p) => p.trim());
}

/** Why the model cannot draw these prompts (one line), or null when it can. */
export function promptError(loaded: LoadedModel, prompts: string[]): string | null {
  try {
    conditionFor(loaded.model, prompts, loaded.classNames);
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

/** Why the model cannot take this negative prompt (one line), or null; a blank one is none. */
export function negativeError(loaded: LoadedModel, negative: string): string | null {
  return negative.trim() ? promptError(loaded, [negative]) : null;
}

/** Every sample's prompt, in grid order: each prompt `num` times in a row. */
export function samplePrompts(r: DrawRequest): string[] {
  return r.prompts.flatMap((p) => Array<string>(r.num).fill(p));
}
