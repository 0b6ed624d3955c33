// deno task plot — a run's curves, drawn by the project's own plot module (io/plot.ts).

import { existsSync } from "node:fs";
import { join } from "node:path";
import {
  plotEvalAccuracy,
  plotGuidanceSweep,
  plotStepSweep,
  plotTrainingLog,
  type Spread,
  stepSweepRows,
} from "../io/plot.ts";
import { markdown } from "./table.ts";
import { fail, parseCli, prepareOutput, runTask } from "./cli.ts";

const USAGE = `
Draws a run's curves as PNG files.

  deno task plot --log RUN/train-log.jsonl [--out DIR]   loss and prompt accuracy by step
  deno task plot --eval EVAL/eval.json [--out DIR]       prompt accuracy and FID by guidance
  deno task plot --eval A/eval.json --eval B/eval.json … [--out DIR]
                                                         … or by sampler steps, when the results
                                                         vary them: a line per sampler through
                                                         the mean of the files (seeds), a bar
                                                         over their range; the table on stdout

  --out DIR   where the PNGs go (default: beside the input)
`;

await runTask(() => {
  const a = parseCli(Deno.args, {
    log: { type: "string" },
    eval: { type: "string", multiple: true },
    out: { type: "string" },
  }, USAGE);
  const evals = (a.eval as string[] | undefined) ?? [];
  const input = (a.log as string | undefined) ?? evals[0];
  if (!input || (a.log && evals.length)) fail("pass --log FILE or --eval FILE (see --help)");
  for (const f of a.log ? [input] : evals) {
    if (!existsSync(f)) fail(`${f} not found: pass a run's train-log.jsonl or an eval.json`);
  }
  const dir = (a.out as string) ?? join(input, "..");
  prepareOutput(join(dir, "x.png"));
  const wrote: string[] = [];
  if (a.log) {
    if (plotTrainingLog(a.log as string, join(dir, "loss.png"))) wrote.push(join(dir, "loss.png"));
    if (plotEvalAccuracy(a.log as string, join(dir, "accuracy.png"))) {
      wrote.push(join(dir, "accuracy.png"));
    }
  } else {
    const results = evals.flatMap((f) =>
      (JSON.parse(Deno.readTextFileSync(f)) as { results: { steps: number }[] }).results
    );
    if (new Set(results.map((r) => r.steps)).size > 1) {
      plotStepSweep(evals, join(dir, "accuracy.png"), join(dir, "fid.png"));
      const cell = (s: Spread, scale: number, digits: number) =>
        `${(scale * s.mean).toFixed(digits)} (${(scale * s.lo).toFixed(digits)}–${
          (scale * s.hi).toFixed(digits)
        })`;
      console.log(markdown(
        ["sampler", "steps", "seeds", "accuracy % (lowest–highest)", "FID (lowest–highest)"],
        stepSweepRows(evals).map((r) => [
          r.sampler,
          String(r.steps),
          String(r.seeds),
          cell(r.accuracy, 100, 1),
          cell(r.fid, 1, 1),
        ]),
      ));
    } else if (evals.length === 1) {
      plotGuidanceSweep(evals[0], join(dir, "accuracy.png"), join(dir, "fid.png"));
    } else fail("several --eval files plot a sweep over sampler steps; theirs have one step count");
    wrote.push(join(dir, "accuracy.png"), join(dir, "fid.png"));
  }
  if (!wrote.length) fail(`${input} has no loss or evaluation records to plot`);
  console.error(`wrote ${wrote.join(", ")}`);
});
