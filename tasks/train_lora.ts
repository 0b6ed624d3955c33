// deno task train:lora — LoRA fine-tuning (Hu et al. 2021): a low-rank adapter on the attention
// and MLP projections of a frozen model (a bundled one or a checkpoint), trained on a folder of
// images with the trainer of the three stages (train/trainer.ts, train/lora_run.ts).

import { basename, join } from "node:path";
import { defaultConfig, loadConfig } from "../io/config.ts";
import { readCheckpoint } from "../model/checkpoint.ts";
import { SCHEMA } from "../io/config_schema.ts";
import { checkpointDiffusion, SCHEDULE_KEYS } from "../diffusion/schedule.ts";
import { loraRunConfig } from "../train/lora_run.ts";
import { BUNDLED_MODELS } from "../model/bundled.ts";
import { fail, findCheckpoint, intFlag, numFlag, parseCli, runTask } from "./cli.ts";
import {
  applyTrainFlags,
  endTraining,
  runTraining,
  TRAIN_FLAGS,
  TRAIN_FLAGS_USAGE,
  TRAIN_PHASES_USAGE,
  TRAIN_SIGNALS_USAGE,
} from "./train_flags.ts";

const DEFAULT_CONFIG = "configs/lora/default.yaml";

const USAGE = `
Fine-tunes a model with LoRA: a low-rank adapter (rank r, scale alpha / r) on the Linear layers
the config's lora.targets name — by default every block's self-attention qkv and proj,
cross-attention q_linear, kv_linear and proj, MLP fc1 and fc2 — trained on a folder of images while
the model's own weights stay frozen. Checkpoints are adapter files (PEFT's tensor names, the base
model's hash); sample with "deno task sample --model NAME --lora RUN".

  deno task train:lora --model emoji --data FOLDER [flags]

  --model NAME        the base model: a bundled one (${BUNDLED_MODELS.map((m) => m.id).join(", ")})
  --checkpoint PATH   or a checkpoint file, or a run's folder (its newest checkpoint)
  --data PATH         the folder of images (with metadata.jsonl, or one subfolder per class)
  --config PATH       YAML config (default ${DEFAULT_CONFIG});
                      the model and the noise schedule are the base model's
  --rank R            the adapter's rank (config lora.rank)
  --alpha A           its alpha: it adds (alpha / rank)·B(A x) (config lora.alpha)
  --out DIR           output folder (default output/lora-<base model>)
${TRAIN_FLAGS_USAGE}

${TRAIN_PHASES_USAGE}

${TRAIN_SIGNALS_USAGE}
`;

let exitCode = 0;
await runTask(async () => {
  const a = parseCli(Deno.args, {
    ...TRAIN_FLAGS,
    checkpoint: { type: "string" },
    model: { type: "string" },
    rank: { type: "string" },
    alpha: { type: "string" },
  }, USAGE);
  if (!a.data) fail("--data FOLDER is required: the images to fine-tune on");
  if (!a.model && !a.checkpoint) {
    fail("pass the base model to fine-tune: --model NAME (e.g. emoji) or --checkpoint PATH");
  }
  const base = findCheckpoint(a.checkpoint as string | undefined, a.model as string | undefined);
  const configPath = (a.config as string) ?? DEFAULT_CONFIG;
  const lora = { base: readCheckpoint(base), baseName: base };
  // the config is checked against the base's model (its depth, its classes), not the defaults'
  const { stage: _, ...baseModel } = lora.base.model;
  const trained = checkpointDiffusion(lora.base.metadata, `checkpoint '${base}'`);
  const schedule = Object.fromEntries(SCHEDULE_KEYS.map((k) => [k, trained[k]]));
  let cfg = loadConfig(configPath, (a.set as string[]) ?? [], {
    model: baseModel,
    diffusion: schedule,
  });
  applyTrainFlags(cfg, a);
  const rank = intFlag(a.rank, "rank"), alpha = numFlag(a.alpha, "alpha");
  if (rank !== undefined) {
    cfg.lora.rank = SCHEMA.lora.rank.check("lora.rank", rank, (m) => fail(`--rank: ${m}`));
  }
  if (alpha !== undefined) {
    cfg.lora.alpha = SCHEMA.lora.alpha.check("lora.alpha", alpha, (m) => fail(`--alpha: ${m}`));
  }
  cfg = loraRunConfig(cfg, defaultConfig(), lora);
  const stage = lora.base.model.stage;
  const name = a.model ?? basename(base).replace(/\.safetensors$/i, "");
  exitCode = await runTraining(cfg, a, {
    stage,
    out: (a.out as string) ?? join("output", `lora-${name}`),
    lora,
  });
});
endTraining();
Deno.exit(exitCode);
