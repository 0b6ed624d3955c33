// deno task export — a checkpoint for sampling only: the weights (EMA by default) without the
// optimiser state, in f32 or f16, keeping the metadata sampling and evaluation read.

import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import {
  checkpointStep,
  modelFromCheckpoint,
  readCheckpoint,
  saveCheckpoint,
  wordTableOf,
} from "../model/checkpoint.ts";
import { fail, findCheckpoint, parseCli, prepareOutput, runTask, sameFile } from "./cli.ts";

const USAGE = `
Writes a sampling-only copy of a checkpoint: its EMA weights (or raw, with --raw), no optimiser
moments, as f16 (half the size; the default) or f32.

  deno task export --checkpoint PATH --out FILE [--dtype f16|f32] [--raw]
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    checkpoint: { type: "string" },
    out: { type: "string" },
    dtype: { type: "string" },
    raw: { type: "boolean" },
  }, USAGE);
  if (!a.out) fail("--out FILE is required (e.g. checkpoints/pixart_mnist.safetensors)");
  const dtype = ((a.dtype as string) ?? "f16").toLowerCase();
  if (dtype !== "f16" && dtype !== "f32") fail(`--dtype must be f16 or f32, got '${a.dtype}'`);
  const out = a.out as string;
  const path = findCheckpoint(a.checkpoint as string | undefined);
  checkExportPath(out, path);
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
  const model = modelFromCheckpoint(
    ck,
    path,
    !!ck.ema && weights === "ema",
    await wordTableOf(ck.model),
  );
  const { data_state: _, ...metadata } = ck.metadata;
  await saveCheckpoint(out, model, {
    step: ck.step,
    dtype: dtype === "f16" ? "F16" : "F32",
    metadata: { ...metadata, exported_from: ck.metadata.exported_from ?? basename(path), weights },
  });
  model.dispose();
  const mb = statSync(out).size / 2 ** 20;
  console.error(
    `wrote ${out}: ${weights === "ema" ? "EMA" : "raw"} weights of step ${ck.step} as ${dtype}, ${
      mb.toFixed(2)
    } MB`,
  );
});

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
