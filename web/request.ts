// The form's values as a drawing request. Numbers are checked by the inputs' own limits (min, max,
// step); prompts by the loaded model, with the message the tokenizer (or, for a class-conditional
// model, the label lookup) gives, so the page and the command line reject the same prompts.

import { conditionFor } from "../diffusion/generate.ts";
import type { LoadedModel } from "./loaded_model.ts";

export interface DrawRequest {
  /** the prompts as typed, each drawn `num` times */
  prompts: string[];
  num: number;
  guidance: number;
  steps: number;
  seed: number;
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

/** Every sample's prompt, in grid order: each prompt `num` times in a row. */
export function samplePrompts(r: DrawRequest): string[] {
  return r.prompts.flatMap((p) => Array<string>(r.num).fill(p));
}
