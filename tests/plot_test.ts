import { decodePng } from "../io/png.ts";
import { plotTrainingLog } from "../io/plot.ts";

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
