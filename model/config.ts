// The model's hyper-parameters, named as in the checkpoints' `config` metadata: the config file's
// model section (io/config.ts declares each key, its default and its bounds) and the stage.

import {
  checkModelSection,
  DEFAULT_CONFIG,
  type ModelSection,
  modelSpace,
} from "../io/config_schema.ts";

export { modelSpace };

export interface ModelConfig extends ModelSection {
  /** 1: class-conditional; 2: text-conditional (stage 3 trains a stage-2 model further) */
  stage: 1 | 2;
}

export const DEFAULT_MODEL: Readonly<ModelConfig> = Object.freeze({
  ...DEFAULT_CONFIG.model,
  stage: 1,
});

/** Checks every size, its bounds and their relations; throws a one-line error naming the key. */
export function checkModelConfig(c: ModelConfig): void {
  const fail = (m: string): never => {
    throw new Error(`model config: ${m}`);
  };
  checkModelSection(c as unknown as Record<string, unknown>, fail);
  if (c.stage !== 1 && c.stage !== 2) fail(`'stage' must be 1 or 2, got ${c.stage}`);
}

/**
 * The keys only a stage-2 (text) model reads: a stage-1 model is the same model whatever they
 * say, so a stage-1 checkpoint may differ from a stage-2 config in these.
 */
export const TEXT_MODEL_KEYS: readonly (keyof ModelSection)[] = [
  "text_len",
  "text_width",
  "text_depth",
  "text_heads",
  "text_encoder",
  "word_table",
  "word_dim",
  "caption_pooling",
];

export function numTokens(c: ModelConfig): number {
  return (modelSpace(c).size / c.patch_size) ** 2;
}

/** A full model config: the keys `c` gives, the defaults (io/config_schema.ts) for the rest. */
export function withModelDefaults(c: Partial<ModelConfig>): ModelConfig {
  const given = Object.entries(c).filter(([, v]) => v !== undefined);
  return { ...DEFAULT_MODEL, ...Object.fromEntries(given) };
}
