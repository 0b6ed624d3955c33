import { decodePng } from "../io/png.ts";
import { plotEvalAccuracy, plotGuidanceSweep, plotTrainingLog } from "../io/plot.ts";

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
