// The bundled models: each loads by its name, from wherever the caller runs, and draws its example
// prompt in its own channels and size — what `deno task sample --model NAME` and the web page do.

import assert from "node:assert/strict";
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import { BUNDLED_MODELS } from "../model/bundled.ts";
import { bundledModelPath, loadPipeline } from "../diffusion/load_pipeline.ts";
import { ready } from "./helpers.ts";
import { assertOk, assertOneLineError, ROOT, sample } from "./cli_harness.ts";

await ready;

for (const m of BUNDLED_MODELS) {
  Deno.test(`bundled model '${m.id}': loads by name and draws '${m.prompt}'`, async () => {
    const path = bundledModelPath(m.id)!;
    assert.ok(existsSync(path), `${m.file} is missing`);
    // the size a shipped model may have, so that a clone stays small
    assert.ok(statSync(path).size <= 10 * 2 ** 20, `${m.file} is over 10 MB`);
    const pipe = await loadPipeline(m.id);
    try {
      assert.equal(pipe.model.config.stage, 2, "a bundled model draws from text");
      assert.equal(pipe.weights, "ema");
      // it says which stage trained it: emoji-64 is stage 3's, a stage-2 model trained further
      const stage = m.id === "emoji-64" ? 3 : 2;
      assert.match(pipe.describe(), new RegExp(`: stage ${stage}, step \\d+, EMA weights`));
      const c = pipe.model.config;
      const images = await pipe.generate([m.prompt], { steps: 4 });
      assert.equal(images.length, c.in_channels * c.image_size * c.image_size);
      assert.ok(images.every(Number.isFinite), "non-finite pixels");
      // four DPM-Solver steps from noise give a picture, not the noise itself nor a flat field
      let mean = 0;
      for (const v of images) mean += v / images.length;
      let sd = 0;
      for (const v of images) sd += (v - mean) ** 2 / images.length;
      sd = Math.sqrt(sd);
      assert.ok(sd > 0.05 && sd < 0.9, `pixel spread ${sd.toFixed(3)}: not a drawing`);
    } finally {
      pipe.dispose();
    }
  });
}

Deno.test("`sample --model NAME` names the model's file as the user would, not by this machine's folders", async () => {
  const m = BUNDLED_MODELS[0];
  const out = join(Deno.makeTempDirSync({ prefix: "pixart-bundled-" }), "one.png");
  const r = await sample([
    "--model",
    m.id,
    "--prompt",
    m.prompt,
    "--num",
    "1",
    "--steps",
    "1",
    "--out",
    out,
  ]);
  assertOk(r);
  // run from the repository's root, where the file lies at its relative path
  assert.match(r.stdout + r.stderr, new RegExp(`(^|\\s)${RegExp.escape(m.file)}: `, "m"));
  assert.ok(
    !(r.stdout + r.stderr).includes(ROOT),
    "the output names the repository's absolute folder",
  );
  Deno.removeSync(dirname(out), { recursive: true });
});

Deno.test("`sample` names a prompt it cannot draw by its place among the prompts given, from 1", async () => {
  const out = join(Deno.makeTempDirSync({ prefix: "pixart-bundled-" }), "none.png");
  try {
    // three samples of each prompt: the second prompt is the 4th to 6th sample, still prompt 2
    const r = await sample([
      "--model",
      BUNDLED_MODELS[0].id,
      "--prompt",
      BUNDLED_MODELS[0].prompt,
      "--prompt",
      "   ",
      "--num",
      "3",
      "--out",
      out,
    ]);
    assertOneLineError(r, /^error: prompt is empty after normalization .*\(prompt 2 of 2\)$/);
    assert.ok(!existsSync(out), "nothing drawn");
  } finally {
    Deno.removeSync(dirname(out), { recursive: true });
  }
});
