// deno task plot — a run's curves, drawn by the project's own plot module (io/plot.ts).

import { existsSync } from "node:fs";
import { join } from "node:path";
import { plotEvalAccuracy, plotGuidanceSweep, plotTrainingLog } from "../io/plot.ts";
import { fail, parseCli, prepareOutput, runTask } from "./cli.ts";

const USAGE = `
Draws a run's curves as PNG files.

  deno task plot --log RUN/train-log.jsonl [--out DIR]   loss and prompt accuracy by step
  deno task plot --eval EVAL/eval.json [--out DIR]       prompt accuracy and FID by guidance

  --out DIR   where the PNGs go (default: beside the input)
`;

await runTask(() => {
  const a = parseCli(Deno.args, {
    log: { type: "string" },
    eval: { type: "string" },
    out: { type: "string" },
  }, USAGE);
  const input = (a.log ?? a.eval) as string | undefined;
  if (!input || (a.log && a.eval)) fail("pass --log FILE or --eval FILE (see --help)");
  if (!existsSync(input)) fail(`${input} not found: pass a run's train-log.jsonl or an eval.json`);
  const dir = (a.out as string) ?? join(input, "..");
  prepareOutput(join(dir, "x.png"));
  const wrote: string[] = [];
  if (a.log) {
    if (plotTrainingLog(a.log as string, join(dir, "loss.png"))) wrote.push(join(dir, "loss.png"));
    if (plotEvalAccuracy(a.log as string, join(dir, "accuracy.png"))) {
      wrote.push(join(dir, "accuracy.png"));
    }
  } else {
    plotGuidanceSweep(a.eval as string, join(dir, "accuracy.png"), join(dir, "fid.png"));
    wrote.push(join(dir, "accuracy.png"), join(dir, "fid.png"));
  }
  if (!wrote.length) fail(`${input} has no loss or evaluation records to plot`);
  console.error(`wrote ${wrote.join(", ")}`);
});
