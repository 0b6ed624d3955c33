// deno task export — a checkpoint for sampling only: the weights (EMA by default) without the
// optimiser state, in f32 or f16, keeping the metadata sampling and evaluation read; with
// --merge-lora, LoRA adapters merged into them. A LoRA run's checkpoint exports to an adapter file
// for sampling, the same way.

import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  checkpointStep,
  modelFromCheckpoint,
  readCheckpoint,
  saveCheckpoint,
  wordTableOf,
  wordTablePath,
} from "../model/checkpoint.ts";
import { readSafetensorsHeader } from "../io/safetensors.ts";
import { isLoraFile, loraWeightsKind, mergeLora, weightsSha256 } from "../model/lora.ts";
import { checkLoraBase } from "../model/lora.ts";
import { readLora, writeLora } from "../model/lora_file.ts";
import { parseLoraSpec } from "../diffusion/load_pipeline.ts";
import {
  fail,
  findCheckpoint,
  parseCli,
  prepareOutput,
  runTask,
  sameFile,
  shownPath,
} from "./cli.ts";

const USAGE = `
Writes a sampling-only copy of a checkpoint: its EMA weights (or raw, with --raw), no optimiser
moments, as f16 (half the size; the default) or f32. With --merge-lora, the adapters' products are
added into the weights they adapt (W + scale·(alpha / r)·B·A), a model that draws what the model
with the adapters applied draws. A LoRA run's checkpoint exports to an adapter file.

  deno task export --checkpoint PATH --out FILE [--dtype f16|f32] [--raw]
  deno task export --model emoji --merge-lora ADAPTER[:SCALE] --out FILE [--dtype f32]

  --checkpoint PATH    a checkpoint file or a run's folder (its newest), a model's or a LoRA run's
  --model NAME         a bundled model
  --merge-lora FILE[:SCALE]
                       merge a LoRA adapter trained on this model, with a multiplier (default 1);
                       repeatable
  --out FILE           the file to write
  --dtype f16|f32      how to store the weights (default f16)
  --raw                the raw weights instead of the EMA ones
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    checkpoint: { type: "string" },
    model: { type: "string" },
    out: { type: "string" },
    dtype: { type: "string" },
    raw: { type: "boolean" },
    "merge-lora": { type: "string", multiple: true },
  }, USAGE);
  if (!a.out) fail("--out FILE is required (e.g. checkpoints/pixart_mnist.safetensors)");
  const dtype = ((a.dtype as string) ?? "f16").toLowerCase();
  if (dtype !== "f16" && dtype !== "f32") fail(`--dtype must be f16 or f32, got '${a.dtype}'`);
  const out = a.out as string;
  const path = findCheckpoint(a.checkpoint as string | undefined, a.model as string | undefined);
  checkExportPath(out, path);
  const merges = ((a["merge-lora"] as string[] | undefined) ?? []).map((m) => {
    try {
      return parseLoraSpec(m);
    } catch (e) {
      fail((e as Error).message.replace("--lora", "--merge-lora"));
    }
  });
  for (const m of merges) {
    if (existsSync(out) && existsSync(m.file) && sameFile(out, m.file)) {
      fail(`--out '${out}' is the adapter --merge-lora reads: write the merged model elsewhere`);
    }
  }
  if (isLoraFile(readSafetensorsHeader(path).metadata)) {
    if (merges.length) fail(`'${path}' is a LoRA adapter: --merge-lora merges into a model`);
    prepareOutput(out);
    exportAdapter(path, out, !!a.raw, dtype === "f16" ? "F16" : "F32");
    return;
  }
  prepareOutput(out);
  const ck = readCheckpoint(path);
  // an export keeps one set of weights and says which (metadata `weights`): exported again, it
  // is still that set, and it has no raw weights beside EMA ones to pick
  const weights = ck.ema ? (a.raw ? "raw" : "ema") : ck.metadata.weights === "ema" ? "ema" : "raw";
  if (a.raw && weights === "ema") {
    fail(
      `--raw: '${path}' holds only its EMA weights (an export): export --raw from the training ` +
        `checkpoint it came from, ${ck.metadata.exported_from ?? "in its run's folder"}`,
    );
  }
  const useEma = !!ck.ema && weights === "ema";
  const merged: Record<string, unknown>[] = [];
  if (merges.length) {
    // the adapters' products added on the host; the file is then read as if it held the sum
    const src = new Map(useEma ? ck.ema! : ck.params);
    const sha256 = await weightsSha256(ck.model, src);
    const adapters = merges.map((spec) => {
      const { path: file, contents } = readLora(spec.file);
      checkLoraBase(contents, file, sha256, path);
      merged.push({ adapter: shownPath(file), scale: spec.scale ?? 1, rank: contents.rank });
      return { contents, scale: spec.scale ?? 1 };
    });
    mergeLora(src, adapters);
    if (useEma) ck.ema = src;
    else ck.params = src;
  }
  const table = wordTablePath(ck.model);
  if (table && existsSync(out) && sameFile(out, table)) {
    fail(`--out '${out}' is the word table the model reads: write the export to another file`);
  }
  const model = modelFromCheckpoint(ck, path, useEma, await wordTableOf(ck.model));
  const { data_state: _, ...metadata } = ck.metadata;
  await saveCheckpoint(out, model, {
    step: ck.step,
    dtype: dtype === "f16" ? "F16" : "F32",
    metadata: {
      ...metadata,
      exported_from: ck.metadata.exported_from ?? basename(path),
      weights,
      ...(merged.length ? { merged_lora: JSON.stringify(merged) } : {}),
    },
  });
  model.dispose();
  const mb = statSync(out).size / 2 ** 20;
  console.error(
    `wrote ${out}: ${weights === "ema" ? "EMA" : "raw"} weights of step ${ck.step}` +
      `${merged.length ? ` with ${merged.length} LoRA adapter(s) merged` : ""} as ${dtype}, ` +
      `${mb.toFixed(2)} MB`,
  );
});

/** A LoRA run's checkpoint as an adapter for sampling: its EMA (or raw) weights, no optimiser. */
function exportAdapter(path: string, out: string, raw: boolean, dtype: "F16" | "F32"): void {
  const lc = readLora(path).contents;
  const weights = loraWeightsKind(lc, raw);
  if (raw && weights === "ema") {
    fail(`--raw: '${path}' holds only its EMA weights (an export): export --raw from its run`);
  }
  const { data_state: _, ...metadata } = lc.metadata;
  const src = weights === "ema" && lc.ema ? lc.ema : lc.weights;
  writeLora(out, lc, src, { step: lc.step, dtype }, {
    ...metadata,
    exported_from: lc.metadata.exported_from ?? basename(path),
    weights,
  });
  const kb = statSync(out).size / 1024;
  console.error(
    `wrote ${out}: the LoRA adapter's ${weights === "ema" ? "EMA" : "raw"} weights of step ` +
      `${lc.step} as ${dtype.toLowerCase()}, ${kb.toFixed(0)} KB`,
  );
}

/**
 * An export never replaces the checkpoint it reads (the training state: weights, Adam's moments,
 * the data order), and never takes a training checkpoint's name, which `--resume` would continue
 * from (and a later save of that step would overwrite).
 */
function checkExportPath(out: string, input: string): void {
  const instead = join(dirname(out), exportName(input));
  if (existsSync(out) && sameFile(out, input)) {
    fail(
      `--out '${out}' is the checkpoint being exported: write the export to another file, ` +
        `e.g. ${instead}`,
    );
  }
  if (checkpointStep(basename(out)) !== null) {
    fail(
      `--out '${out}' is named like a training checkpoint, which --resume would continue ` +
        `from: name the export otherwise, e.g. ${instead}`,
    );
  }
}

/** export-<step>.safetensors for a training checkpoint, else <name>-export.safetensors. */
function exportName(input: string): string {
  const step = checkpointStep(basename(input));
  return step !== null
    ? `export-${step}.safetensors`
    : `${basename(input).replace(/\.safetensors$/i, "")}-export.safetensors`;
}
