// deno task export — a checkpoint for sampling only: the weights (EMA by default) without the
// optimiser state, in f32 or f16, keeping the metadata sampling and evaluation read.

import { statSync } from "node:fs";
import { basename } from "node:path";
import { modelFromCheckpoint, readCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { fail, findCheckpoint, parseCli, prepareOutput, runTask } from "./cli.ts";

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
  prepareOutput(a.out as string);
  const path = findCheckpoint(a.checkpoint as string | undefined);
  const ck = readCheckpoint(path);
  const useEma = !a.raw && !!ck.ema;
  const model = modelFromCheckpoint(ck, path, useEma);
  const { data_state: _, ...metadata } = ck.metadata;
  const out = a.out as string;
  await saveCheckpoint(out, model, {
    step: ck.step,
    dtype: dtype === "f16" ? "F16" : "F32",
    metadata: { ...metadata, exported_from: basename(path), weights: useEma ? "ema" : "raw" },
  });
  model.dispose();
  const mb = statSync(out).size / 2 ** 20;
  console.error(
    `wrote ${out}: ${useEma ? "EMA" : "raw"} weights of step ${ck.step} as ${dtype}, ${
      mb.toFixed(2)
    } MB`,
  );
});
