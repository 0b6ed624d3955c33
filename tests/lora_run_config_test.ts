import assert from "node:assert/strict";
import { defaultConfig } from "../io/config.ts";
import type { CheckpointContents } from "../model/checkpoint_bytes.ts";
import { loraRunConfig } from "../train/lora_run.ts";
import { TINY_TEXT_MODEL } from "./helpers.ts";

// The config's model keys are a placeholder until the base's replace them: the keys that depend on
// the model are checked again against the base.
Deno.test("a LoRA run's config is checked against its base's model", () => {
  const base = {
    model: { ...TINY_TEXT_MODEL, text_encoder: "words" },
    params: new Map(),
    optim: new Map(),
    ema: null,
    metadata: {},
    step: 0,
  } as unknown as CheckpointContents;
  const cfg = defaultConfig();
  assert.equal(
    loraRunConfig(cfg, defaultConfig(), { base, baseName: "b" }).model.text_encoder,
    "words",
  );
  cfg.data.truncate_captions = true; // a byte model's key: valid with the default model
  assert.throws(
    () => loraRunConfig(cfg, defaultConfig(), { base, baseName: "b" }),
    /^Error: with the model of the base 'b': 'data\.truncate_captions' cuts captions to the byte encoder's model\.text_len bytes/,
  );
});
