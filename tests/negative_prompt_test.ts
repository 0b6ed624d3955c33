// Negative prompts: the negative condition takes the null condition's place in classifier-free
// guidance (exactly, on a tiny model), and on the bundled digit model a negative "one" lowers the
// evaluation classifier's probability of "one" in drawn sevens below plain guidance's.

import assert from "node:assert/strict";
import { pool, tensor, tidy } from "../kernels/mod.ts";
import { conditionFor, generate } from "../diffusion/generate.ts";
import { loadPipeline } from "../diffusion/load_pipeline.ts";
import { Classifier } from "../eval/classifier.ts";
import { maxAbs, rand, ready } from "./helpers.ts";

await ready;

Deno.test("guidedEps: a negative condition replaces the null one; the prompt as its own negative is ε_c", async () => {
  // trained weights: a fresh model's zero-initialised output layer predicts 0 whatever the caption
  const pipe = await loadPipeline("digits");
  const model = pipe.model, c = model.config;
  const prompts = ["seven", "3"];
  const cond = conditionFor(model, prompts, []);
  const x = tensor(rand(2 * c.image_size ** 2, 9), [2, 1, c.image_size, c.image_size]).keep();
  const before = pool.stats.inUseBytes;
  const run = async (w: number, negative?: string[] | null) => {
    const eps = model.guidedEps(cond, w, null, negative ? conditionFor(model, negative, []) : null);
    const out = tidy(() => eps(x, 600));
    const v = await out.read();
    out.dispose();
    eps.dispose();
    return v;
  };
  const plain = await run(3), condOnly = await run(1);
  const explicitNull = model.guidedEps(cond, 3, null, model.nullCondition(2));
  const e = tidy(() => explicitNull(x, 600));
  assert.deepEqual(await e.read(), plain, "the null condition passed as the negative");
  e.dispose();
  explicitNull.dispose();
  // ε_n + w·(ε_c − ε_n) with n = c is ε_c, up to rounding
  const self = await run(3, prompts);
  assert.ok(maxAbs(self, condOnly) < 1e-5, `prompt as negative vs ε_c: ${maxAbs(self, condOnly)}`);
  const other = await run(3, ["one", "one"]);
  assert.ok(maxAbs(other, plain) > 1e-4, "a negative prompt changes the guided ε");
  // w = 0: the unconditional branch alone, which is now the negative's
  const negOnly = await run(0, ["one", "one"]);
  const oneCond = model.guidedEps(conditionFor(model, ["one", "one"], []), 1);
  const o = tidy(() => oneCond(x, 600));
  assert.deepEqual(negOnly, await o.read());
  o.dispose();
  oneCond.dispose();
  assert.throws(
    () => model.guidedEps(cond, 3, null, conditionFor(model, ["one"], [])),
    /negative condition has 1 samples, cond 2/,
  );
  assert.equal(pool.stats.inUseBytes, before, "bytes in use after dispose");
  x.dispose();
  pipe.dispose();
});

Deno.test("generate: a blank negative is the null caption; a bad one is named", async () => {
  const pipe = await loadPipeline("digits");
  const { model, schedule } = pipe;
  const o = { sampler: "ddim" as const, steps: 2, guidance: 2, seed: 3 };
  const plain = await generate(model, schedule, ["seven", "3"], [], o);
  assert.deepEqual(
    await generate(model, schedule, ["seven", "3"], [], { ...o, negative: " " }),
    plain,
  );
  const neg = await generate(model, schedule, ["seven", "3"], [], { ...o, negative: "one" });
  assert.notDeepEqual(neg, plain);
  assert.throws(
    () => generate(model, schedule, ["seven"], [], { ...o, negative: "a caption far too long" }),
    /^Error: negative prompt: prompt "a caption far too long" is 22 bytes in UTF-8, over the limit max_length 16$/,
  );
  pipe.dispose();
});

Deno.test("digits: 'seven' with the negative 'one' is read as 'one' less than with plain guidance", async () => {
  const pipe = await loadPipeline("digits");
  const clf = Classifier.load(
    new URL("../checkpoints/classifier-mnist.safetensors", import.meta.url).pathname,
  );
  const n = 16; // seed 0's first 16 start noises
  const meanP = async (negative: string | null) => {
    const images = await pipe.generate(Array(n).fill("seven"), { seed: 0, negative });
    const { probs } = await clf.predict(images, n);
    let one = 0, seven = 0;
    for (let i = 0; i < n; i++) {
      one += probs[i * 10 + 1] / n;
      seven += probs[i * 10 + 7] / n;
    }
    return { one, seven };
  };
  const plain = await meanP(null), away = await meanP("one");
  clf.dispose();
  pipe.dispose();
  // measured with the default UniPC 4 steps 2.6e-6 plain, 8.6e-9 with the negative (DPM-Solver++
  // 20 steps: 2.7e-6, 1.2e-8): a tenth is a wide margin either way
  assert.ok(
    away.one < plain.one / 10,
    `mean P(one): ${away.one.toExponential(2)} with the negative, ${
      plain.one.toExponential(2)
    } without`,
  );
  assert.ok(
    away.seven > 0.8,
    `the negative 'one' still draws sevens (mean P(seven) ${away.seven})`,
  );
});
