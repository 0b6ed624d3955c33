import { decodePng } from "../io/png.ts";
import {
  plotEvalAccuracy,
  plotGuidanceSweep,
  plotStepSweep,
  plotTrainingLog,
  stepSweepRows,
} from "../io/plot.ts";

Deno.test("the loss curve of a training log is a PNG with a curve on it", async () => {
  const dir = await Deno.makeTempDir();
  const log = `${dir}/train-log.jsonl`;
  const rows = Array.from(
    { length: 40 },
    (_, i) => JSON.stringify({ step: (i + 1) * 50, loss: 1 / (1 + i) }),
  );
  await Deno.writeTextFile(log, rows.join("\n") + "\n");
  plotTrainingLog(log, `${dir}/loss.png`);
  const img = decodePng(await Deno.readFile(`${dir}/loss.png`));
  if (img.width !== 640 || img.height !== 400 || img.channels !== 3) {
    throw new Error(`unexpected image ${img.width}×${img.height}×${img.channels}`);
  }
  // the curve's colour is present, and it falls from left to right
  const blue = (x: number) => {
    for (let y = 0; y < img.height; y++) {
      const o = (y * img.width + x) * 3;
      if (img.pixels[o] === 20 && img.pixels[o + 1] === 60 && img.pixels[o + 2] === 160) return y;
    }
    return -1;
  };
  const left = blue(100), right = blue(600);
  if (left < 0 || right < 0 || !(left < right)) throw new Error(`curve rows ${left}, ${right}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a log of 200,000 loss records is plotted (no spread of its values)", async () => {
  const dir = await Deno.makeTempDir();
  const log = `${dir}/train-log.jsonl`;
  const n = 200_000;
  const lines = new Array<string>(n);
  for (let i = 0; i < n; i++) lines[i] = `{"step":${i + 1},"loss":${1 / (1 + i / 1000)}}`;
  await Deno.writeTextFile(log, lines.join("\n") + "\n");
  if (!plotTrainingLog(log, `${dir}/loss.png`)) throw new Error("the losses were not plotted");
  const img = decodePng(await Deno.readFile(`${dir}/loss.png`));
  if (img.width !== 640) throw new Error(`unexpected width ${img.width}`);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a guidance sweep's accuracy and FID, and a log's accuracy by step, are plotted", async () => {
  const dir = await Deno.makeTempDir();
  const results = [0, 2, 4].map((w, i) => ({
    guidance: w,
    accuracy: [0.1, 0.9, 1][i],
    fid: [110, 60, 160][i],
    fid_floor: 50,
  }));
  await Deno.writeTextFile(`${dir}/eval.json`, JSON.stringify({ results }));
  plotGuidanceSweep(`${dir}/eval.json`, `${dir}/acc.png`, `${dir}/fid.png`);
  const has = (img: { pixels: Uint8Array }, rgb: number[]) => {
    for (let o = 0; o < img.pixels.length; o += 3) {
      if (
        img.pixels[o] === rgb[0] && img.pixels[o + 1] === rgb[1] && img.pixels[o + 2] === rgb[2]
      ) {
        return true;
      }
    }
    return false;
  };
  if (!has(decodePng(await Deno.readFile(`${dir}/acc.png`)), [20, 120, 40])) {
    throw new Error("no accuracy curve");
  }
  const fid = decodePng(await Deno.readFile(`${dir}/fid.png`));
  if (!has(fid, [180, 40, 40]) || !has(fid, [150, 150, 150])) throw new Error("no FID or floor");
  const log = `${dir}/train-log.jsonl`;
  await Deno.writeTextFile(
    log,
    '{"step":10,"eval":{"accuracy":0.5}}\n{"step":20,"eval":{"accuracy":0.7}}\n',
  );
  if (plotTrainingLog(log, `${dir}/loss.png`)) throw new Error("a log without losses was plotted");
  if (!plotEvalAccuracy(log, `${dir}/accuracy.png`)) {
    throw new Error("the accuracy was not plotted");
  }
  await Deno.remove(dir, { recursive: true });
});

Deno.test("a sweep over sampler steps: a line per sampler with the seeds' range", async () => {
  const dir = await Deno.makeTempDir();
  const files: string[] = [];
  for (const seed of [0, 1]) {
    const results = ["dpm-solver", "unipc"].flatMap((sampler, s) =>
      [4, 8, 20].map((steps) => ({
        sampler,
        steps,
        accuracy: 0.3 + steps / 50 + s * 0.05 + seed * 0.2,
        fid: (300 / steps) * (1 + seed) + 100 * s,
      }))
    );
    files.push(`${dir}/eval-${seed}.json`);
    await Deno.writeTextFile(files[seed], JSON.stringify({ results }));
  }
  plotStepSweep(files, `${dir}/acc.png`, `${dir}/fid.png`);
  // the rows: by sampler as they come, steps ascending, mean and range over the two seeds
  const rows = stepSweepRows(files);
  const keys = rows.map((r) => `${r.sampler} ${r.steps} ${r.seeds}`);
  const want = ["dpm-solver", "unipc"].flatMap((n) => [4, 8, 20].map((k) => `${n} ${k} 2`));
  if (keys.join() !== want.join()) throw new Error(`rows ${keys}`);
  const u8 = rows.find((r) => r.sampler === "unipc" && r.steps === 8)!;
  const close = (a: number, b: number) => Math.abs(a - b) < 1e-12;
  if (
    !close(u8.accuracy.mean, 0.61) || !close(u8.accuracy.lo, 0.51) ||
    !close(u8.accuracy.hi, 0.71) || !close(u8.fid.mean, 156.25) || !close(u8.fid.hi, 175)
  ) throw new Error(`unipc 8: ${JSON.stringify(u8)}`);
  // each sampler's colour in a bar at x = 8 steps (column 70 + (8 − 4)/16·550 of the 640-wide
  // plot): the range over the seeds, and nowhere in a column between the points
  const colors = [[20, 60, 160], [20, 120, 40]];
  for (const png of ["acc.png", "fid.png"]) {
    const img = decodePng(await Deno.readFile(`${dir}/${png}`));
    const count = (x: number, c: number[]) => {
      let n = 0;
      for (let y = 0; y < img.height; y++) {
        const o = (y * img.width + x) * 3;
        if (img.pixels[o] === c[0] && img.pixels[o + 1] === c[1] && img.pixels[o + 2] === c[2]) n++;
      }
      return n;
    };
    for (const c of colors) {
      if (!(count(208, c) >= 12)) {
        throw new Error(`${png}: no spread bar in ${c} (${count(208, c)})`);
      }
      if (!(count(300, c) <= 3)) throw new Error(`${png}: a bar between points in ${c}`);
    }
  }
  let msg = "";
  try {
    plotStepSweep(
      [files[0]].map(() => {
        const f = `${dir}/one.json`;
        Deno.writeTextFileSync(f, JSON.stringify({ results: [{ sampler: "unipc", steps: 8 }] }));
        return f;
      }),
      `${dir}/a.png`,
      `${dir}/b.png`,
    );
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!msg.includes("at least two step counts")) throw new Error(`no clear error: '${msg}'`);
  // the spread is over seeds only: one seed given twice, or two guidance scales, are refused
  const at = (seed: number, guidance: number) => {
    const f = `${dir}/s${seed}-g${guidance}.json`;
    const results = [4, 8].map((steps) => ({
      sampler: "unipc",
      steps,
      accuracy: 0.5,
      fid: 9,
      seed,
      guidance,
    }));
    Deno.writeTextFileSync(f, JSON.stringify({ results }));
    return f;
  };
  const refused = (files: string[], re: RegExp) => {
    try {
      stepSweepRows(files);
    } catch (e) {
      if (re.test((e as Error).message)) return;
      throw e;
    }
    throw new Error(`${files} were plotted`);
  };
  refused(
    [at(0, 2.5), at(0, 2.5)],
    /seed 0 is there twice for unipc at 4 steps: give each seed's eval\.json once$/,
  );
  refused(
    [at(0, 2.5), at(1, 4.5)],
    /the evaluations are at guidance 2\.5, 4\.5: plot the files of one guidance scale$/,
  );
  if (stepSweepRows([at(0, 2.5), at(1, 2.5)])[0].seeds !== 2) throw new Error("two seeds");
  await Deno.remove(dir, { recursive: true });
});
