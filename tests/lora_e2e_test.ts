// LoRA end to end (deno task train:lora, sample --lora, export --merge-lora): an adapter trained on
// a small folder lowers the loss there, a resumed run is the run never stopped, a mismatched base
// is refused wherever an adapter is applied, and a merged export draws what the adapter does.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Generator, noGrad, tensor, tidy } from "../kernels/mod.ts";
import { defaultConfig } from "../io/config.ts";
import { loadImageFolder } from "../io/image_folder.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { modelFromCheckpoint, readCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import type { ModelConfig } from "../model/config.ts";
import { DEFAULT_MODEL } from "../model/config.ts";
import { loraFromContents } from "../model/lora.ts";
import { readLora } from "../model/lora_file.ts";
import { type Condition, PixArt } from "../model/pixart.ts";
import { diffusionLoss } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { checkBaseClasses } from "../train/lora_run.ts";
import { rand, ready, relErr } from "./helpers.ts";
import {
  assertOk,
  assertOneLineError,
  describe,
  exportTask,
  sample,
  tinyImageFolder,
  trainLora,
} from "./cli_harness.ts";

await ready;

const dir = Deno.makeTempDirSync({ prefix: "pixart-lora-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

/** A small colour text model: the images of tinyImageFolder, its captions, two blocks. */
const BASE: ModelConfig = {
  ...DEFAULT_MODEL,
  stage: 2,
  image_size: 16,
  in_channels: 3,
  patch_size: 4,
  hidden_size: 32,
  depth: 2,
  num_heads: 2,
  text_len: 24,
  text_width: 16,
  text_depth: 1,
  text_heads: 2,
};

/** A base model as training leaves one: no layer at zero (a fresh output layer draws nothing). */
async function baseModel(seed: number): Promise<string> {
  const model = PixArt.init(BASE, seed);
  for (const [k, name] of model.params.names().entries()) {
    if (/(cross_attn\.proj|final_layer\.linear)\.weight$/.test(name)) {
      const p = model.params.get(name);
      model.params.set(name, tensor(rand(p.size, seed + k, 0.2), p.shape));
    }
  }
  const path = join(dir, `base-${seed}.safetensors`);
  await saveCheckpoint(path, model, {
    step: 100,
    metadata: { train_config: JSON.stringify(defaultConfig()) },
  });
  model.dispose();
  return path;
}

const base = await baseModel(1);
const otherBase = await baseModel(2);
const data = tinyImageFolder(join(dir, "data"));

const lora = (out: string, ...args: string[]) =>
  trainLora([
    "--checkpoint",
    base,
    "--data",
    data,
    "--out",
    out,
    "--batch-size",
    "6",
    "--save-every",
    "2",
    "--no-grid",
    ...args,
  ]);

Deno.test("train:lora: a resumed run is the run never stopped; another base is refused", async () => {
  const straight = join(dir, "straight"), stopped = join(dir, "stopped");
  const r = await lora(straight, "--steps", "4");
  assertOk(r);
  assert.match(r.stderr, /LoRA rank 4, alpha 4 on 14 layers of '.*base-1\.safetensors'/);
  assertOk(await lora(stopped, "--steps", "2"));
  const again = await lora(stopped, "--steps", "4", "--resume");
  assertOk(again);
  assert.ok(again.stderr.includes("at step 2"), describe(again));
  assert.ok(!again.stderr.includes("other settings"), describe(again));
  // another rate on resume is named, as a model's run names it (the adapter is resumed anyway)
  const other = join(dir, "other-lr");
  assertOk(await lora(other, "--steps", "2"));
  const changed = await lora(other, "--steps", "4", "--resume", "--lr", "3.0e-4");
  assertOk(changed);
  assert.match(
    changed.stderr,
    /note: before step 2 the run trained with other settings than the config's: train\.lr [\d.e-]+ → 0\.0003 — a straight run/,
    describe(changed),
  );
  const a = readSafetensors(join(straight, "checkpoint-4.safetensors"));
  const b = readSafetensors(join(stopped, "checkpoint-4.safetensors"));
  assert.deepEqual([...a.tensors.keys()].sort(), [...b.tensors.keys()].sort());
  // the adapter, its EMA and Adam's moments, nothing of the base
  assert.ok(
    [...a.tensors.keys()].every((k) => /^(ema\.|optim\.[mv]\.)?base_model\.model\./.test(k)),
  );
  assert.equal(a.tensors.size, 14 * 2 * 4); // 14 layers, A and B, 4 copies
  for (const [name, e] of a.tensors) {
    assert.deepEqual(b.tensors.get(name)!.data, e.data, `'${name}' differs after --resume`);
  }
  assert.equal(a.metadata.data_state, b.metadata.data_state);

  // the run's adapter on another base: refused before a step, in one line
  assertOneLineError(
    await trainLora([
      "--checkpoint",
      otherBase,
      "--data",
      data,
      "--out",
      stopped,
      "--steps",
      "6",
      "--resume",
    ]),
    /was trained on '.*base-1\.safetensors', not on these weights of '.*base-2\.safetensors'/,
  );
});

Deno.test("train:lora lowers the loss on its folder; sample and export apply the adapter", async () => {
  const out = join(dir, "longer");
  const r = await lora(out, "--steps", "40", "--lr", "1e-2", "--set", "train.ema_decay=0");
  assertOk(r);
  const adapter = join(out, "checkpoint-40.safetensors");

  // the ε loss of the whole folder at fixed noise levels and noise, base alone and with the adapter
  const ck = readCheckpoint(base);
  const model = modelFromCheckpoint(ck, base);
  const set = loadImageFolder(data, { size: 16, channels: 3, cacheDir: null, log: () => {} });
  const n = set.n;
  const cond: Condition = {
    kind: "text",
    ...model.tokenize(set.captions!),
    drop: new Uint8Array(n),
  };
  const schedule = linearSchedule(1000);
  const folderLoss = async () => {
    let total = 0;
    for (const t of [100, 300, 500, 700, 900]) {
      const l = noGrad(() =>
        tidy(() =>
          diffusionLoss(
            schedule,
            (xt, tt) => model.forward(xt, tt, cond),
            {
              x0: tensor(set.images.map((v) => v * 2 - 1), [n, 3, 16, 16]),
              t: new Array(n).fill(t),
              eps: new Generator(t).normal([n, 3, 16, 16]),
            },
          ).keep()
        )
      );
      total += (await l.read())[0];
      l.dispose();
    }
    return total / 5;
  };
  const before = await folderLoss();
  const trained = loraFromContents(readLora(adapter).contents);
  model.lora = [{ lora: trained, scale: 1 }];
  const after = await folderLoss();
  model.lora = [];
  trained.dispose();
  model.dispose();
  assert.ok(after < 0.85 * before, `loss ${before} → ${after}`);

  // sample: applied with a scale; on another model, refused
  const png = join(dir, "lora.png");
  const s = await sample([
    "--checkpoint",
    base,
    "--lora",
    `${out}:0.5`,
    "--prompt",
    "red square number 1",
    "--num",
    "2",
    "--steps",
    "2",
    "--out",
    png,
  ]);
  assertOk(s);
  assert.match(s.stderr, /LoRA .*checkpoint-40\.safetensors × 0\.5/);
  assertOneLineError(
    await sample(["--checkpoint", otherBase, "--lora", adapter, "--prompt", "red", "--out", png]),
    /the LoRA adapter '.*checkpoint-40\.safetensors' was trained on other weights than those of '.*base-2\.safetensors'.*it needs '.*base-1\.safetensors'/,
  );
  assertOneLineError(
    await sample(["--checkpoint", adapter, "--prompt", "red", "--out", png]),
    /is a LoRA adapter, not a model: apply it to its base model with --lora/,
  );
  assertOneLineError(
    await sample(["--checkpoint", base, "--lora", `${adapter}:0.5x`, "--prompt", "red"]),
    /--lora '.*:0\.5x': the scale after ':' must be a number/,
  );

  // export: the adapter alone for sampling, and the model with it merged
  const exported = join(dir, "adapter-export.safetensors");
  assertOk(await exportTask(["--checkpoint", adapter, "--out", exported]));
  const e = readSafetensors(exported);
  assert.ok(
    [...e.tensors.keys()].every((k) => /^base_model\.model\..*\.lora_[AB]\.weight$/.test(k)),
  );
  assert.equal(e.tensors.size, 2 * 14);
  assert.equal(e.tensors.get([...e.tensors.keys()][0])!.dtype, "F16");

  const merged = join(dir, "merged.safetensors");
  const m = await exportTask([
    "--checkpoint",
    base,
    "--merge-lora",
    `${adapter}:0.7`,
    "--dtype",
    "f32",
    "--out",
    merged,
  ]);
  assertOk(m);
  assert.match(m.stderr, /with 1 LoRA adapter\(s\) merged as f32/);
  // the adapter a merge reads is never its output
  const mine = join(dir, "mine.safetensors");
  Deno.copyFileSync(adapter, mine);
  const mineBytes = Deno.readFileSync(mine);
  assertOneLineError(
    await exportTask(["--checkpoint", base, "--merge-lora", mine, "--out", mine]),
    /--out '.*mine\.safetensors' is the adapter --merge-lora reads: write the merged model elsewhere/,
  );
  assert.deepEqual(Deno.readFileSync(mine), mineBytes);
  const mck = readCheckpoint(merged);
  assert.deepEqual(JSON.parse(mck.metadata.merged_lora)[0].scale, 0.7);
  // the merged model's ε against the base's with the adapter at 0.7
  const x = rand(2 * 3 * 16 * 16, 3);
  const c2: Condition = {
    kind: "text",
    ...model.tokenize(["red", "green square"]),
    drop: new Uint8Array(2),
  };
  const eps = async (m: PixArt) => {
    const y = noGrad(() => tidy(() => m.forward(tensor(x, [2, 3, 16, 16]), [200, 800], c2).keep()));
    const v = await y.read();
    y.dispose();
    return v;
  };
  const withAdapter = modelFromCheckpoint(readCheckpoint(base), base);
  const a2 = loraFromContents(readLora(adapter).contents);
  withAdapter.lora = [{ lora: a2, scale: 0.7 }];
  const applied = await eps(withAdapter);
  withAdapter.lora = [];
  const plain = await eps(withAdapter);
  const mergedModel = modelFromCheckpoint(mck, merged);
  const fromMerged = await eps(mergedModel);
  for (const t of [withAdapter, mergedModel, a2]) t.dispose();
  assert.ok(relErr(fromMerged, applied) < 1e-5, `merged vs applied ${relErr(fromMerged, applied)}`);
  assert.ok(relErr(plain, applied) > 1e-3, "the adapter changes ε");
  // an adapter of the base does not apply to the merged model (its weights are others)
  assertOneLineError(
    await sample(["--checkpoint", merged, "--lora", adapter, "--prompt", "red", "--out", png]),
    /was trained on other weights than those of/,
  );
});

Deno.test("train:lora: bad input is one line", async () => {
  assertOneLineError(
    await trainLora(["--data", data, "--out", join(dir, "x")]),
    /pass the base model to fine-tune: --model NAME \(e\.g\. emoji\) or --checkpoint PATH/,
  );
  assertOneLineError(
    await trainLora(["--checkpoint", base, "--out", join(dir, "x")]),
    /--data FOLDER is required/,
  );
  assertOneLineError(
    await lora(join(dir, "x"), "--set", "lora.targets=[x_embedder]"),
    /lora\.targets \[x_embedder\] name no Linear layer of this model/,
  );
  assertOneLineError(
    await lora(join(dir, "x"), "--set", "model.hidden_size=64"),
    /train:lora takes the model from its base .*: drop model\.hidden_size = 64 from the config/,
  );
  // a class-conditional base reads classes by row: data of other classes would train the wrong
  // rows under the right names
  const classModel = PixArt.init({ ...BASE, stage: 1, num_classes: 3 }, 1);
  const classBase = join(dir, "class-base.safetensors");
  await saveCheckpoint(classBase, classModel, {
    step: 100,
    metadata: {
      train_config: JSON.stringify(defaultConfig()),
      classes: JSON.stringify(["cat", "dog", "fox"]),
    },
  });
  classModel.dispose();
  assertOneLineError(
    await trainLora(["--checkpoint", classBase, "--data", data, "--out", join(dir, "x")]),
    /the data's classes \(.+\) are not the class-conditional base '.*class-base\.safetensors''s \(cat, dog, fox\) in its order: an adapter trains the base's class rows, so give data with exactly the base's classes$/,
  );
  const lt = { base: readCheckpoint(classBase), baseName: classBase };
  checkBaseClasses(lt, ["cat", "dog", "fox"]);
  assert.throws(() => checkBaseClasses(lt, ["fox", "dog", "cat"]), /in its order/);
});
