// deno task caption-gap: one line a timestep, on a trained text model and images of its folder,
// and one-line errors for what it cannot measure.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { assertOk, assertOneLineError, task, TINY, tinyImageFolder, train } from "./cli_harness.ts";

Deno.test("caption-gap: the gap of a text model at each timestep, and what it refuses", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pixart-gap-" });
  try {
    const data = tinyImageFolder(join(dir, "folder"));
    const quick = ["--config", TINY, "--steps", "2", "--no-grid", "--data", data];
    const colour = ["--set", "model.in_channels=3", "--set", "model.text_len=24"];
    const text = join(dir, "text");
    assertOk(
      await train([
        "--stage",
        "2",
        ...quick,
        ...colour,
        "--set",
        "train.from_scratch=true",
        "--out",
        text,
      ]),
    );
    const r = await task("caption_gap", ["--checkpoint", text, "--t", "300,600", "--images", "5"]);
    assertOk(r);
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((g) => g.t), [300, 600]);
    for (const g of lines) {
      assert.equal(g.n, 5);
      assert.ok(g.own > 0 && g.other > 0 && g.none > 0, r.stdout);
      assert.ok(Math.abs(g.gap - (g.other - g.own) / g.other) < 1e-12, r.stdout);
      assert.equal(g.gap_percent, Number((100 * g.gap).toFixed(2)));
    }
    // the folder is the checkpoint's data.source unless --data names another; at most its size
    const all = await task("caption_gap", ["--checkpoint", text, "--t", "300", "--images", "50"]);
    assertOk(all);
    assert.equal(JSON.parse(all.stdout).n, 12);

    assertOneLineError(
      await task("caption_gap", ["--checkpoint", text, "--images", "1"]),
      /--images must be at least 2/,
    );
    assertOneLineError(
      await task("caption_gap", ["--checkpoint", text, "--t", "1000"]),
      /--t takes timesteps 0 … 999/,
    );
    // a folder with an unreadable image, trained with data.skip_bad_images: measured as trained
    const bad = tinyImageFolder(join(dir, "bad-folder"));
    writeFileSync(join(bad, "images", "red-0.png"), "not a png");
    const skipping = join(dir, "skipping");
    assertOk(
      await train([
        "--stage",
        "2",
        ...quick.slice(0, -1),
        bad,
        ...colour,
        "--set",
        "train.from_scratch=true",
        "--set",
        "data.skip_bad_images=true",
        "--out",
        skipping,
      ]),
    );
    const skipped = await task("caption_gap", ["--checkpoint", skipping, "--t", "300"]);
    assertOk(skipped);
    assert.equal(JSON.parse(skipped.stdout).n, 11);
    const classes = join(dir, "classes");
    assertOk(await train(["--stage", "1", ...quick, ...colour, "--out", classes]));
    assertOneLineError(
      await task("caption_gap", ["--checkpoint", classes]),
      /needs a text model/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
