// One config carries a whole recipe: a text model that reads frozen word vectors, trained from
// scratch with x0-prediction, masked tokens, a change of class balance and a second learning-rate
// cycle at given steps. A run stopped half way and continued with --resume alone ends with the
// same weights as one never stopped; the checkpoint records the word table by its hash.

import assert from "node:assert/strict";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { readCheckpoint, wordTablePath } from "../model/checkpoint.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import {
  assertOk,
  assertOneLineError,
  describe,
  exportTask,
  sample,
  task,
  tinyImageFolder,
  train,
} from "./cli_harness.ts";
import { ready } from "./helpers.ts";

await ready;

const dir = Deno.makeTempDirSync({ prefix: "pixart-recipe-" });
const tmp = (...p: string[]) => join(dir, ...p);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const RECIPE = (data: string) => `
model: {image_size: 8, in_channels: 3, patch_size: 2, hidden_size: 32, depth: 2, num_heads: 2,
  text_len: 8, text_width: 16, text_depth: 1, text_heads: 2, text_encoder: words}
diffusion: {prediction: sample, min_snr_gamma: 5}
train: {steps: 4, batch_size: 4, lr: 1.0e-3, warmup_steps: 1, ema_decay: 0.9, save_every: 2,
  sample_every: 0, log_every: 1, from_scratch: true, mask_ratio: 0.5, mask_decoder_blocks: 1}
data: {source: ${data}, label_field: subcategory, holdout: 0.25}
phases:
  - from: 1
    data.balance_power: 1.0
  - from: 3
    train.lr: 3.0e-4
    train.mask_ratio: 0.0
`;

Deno.test("a recipe of phases on a words model resumes exactly, and records its word table", async () => {
  const cfg = tmp("recipe.yaml");
  writeFileSync(cfg, RECIPE(tinyImageFolder(tmp("folder"))));
  const common = ["--stage", "2", "--config", cfg, "--no-grid"];
  const straight = tmp("straight"), stopped = tmp("stopped");
  const r = await train([...common, "--out", straight]);
  assertOk(r);
  assert.match(r.stderr, /stage 2 starts from initialisation \(train\.from_scratch\)/);
  assert.match(r.stderr, /step 1: class balance \(data\.balance_power 1\)/, describe(r));
  const r1 = await train([...common, "--out", stopped, "--steps", "2"]);
  assertOk(r1);
  assert.match(r1.stderr, /note: the run ends at step 2, before the config's phases from step 3/);
  const r2 = await train([...common, "--out", stopped, "--resume"]);
  assertOk(r2);
  assert.match(r2.stderr, /resuming .* at step 2/);
  assert.doesNotMatch(r2.stderr, /note: (before step|the run's recorded)/, describe(r2));
  // a phase edited before the step the run resumes at is named
  const edited = tmp("edited.yaml");
  writeFileSync(
    edited,
    RECIPE(tinyImageFolder(tmp("folder"))).replace("balance_power: 1.0", "balance_power: 0.5"),
  );
  const r3 = await train(
    ["--stage", "2", "--config", edited, "--no-grid", "--out", stopped, "--resume", "--steps", "5"],
  );
  assertOk(r3);
  assert.match(
    r3.stderr,
    /note: before step 4 the run trained with other settings than the config's: data\.balance_power 1 → 0\.5 \(from step 1\)/,
    describe(r3),
  );
  const a = readSafetensors(join(straight, "checkpoint-4.safetensors")).tensors;
  const b = readSafetensors(join(stopped, "checkpoint-4.safetensors")).tensors;
  assert.deepEqual([...a.keys()].sort(), [...b.keys()].sort());
  for (const [name, e] of a) {
    const f = b.get(name)!.data;
    let worst = 0;
    for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(e.data[i] - f[i]));
    assert.ok(worst <= 1e-6, `'${name}' differs by ${worst} after --resume`);
  }
  const ck = readCheckpoint(join(straight, "checkpoint-4.safetensors"));
  const tok = JSON.parse(ck.metadata.tokenizer);
  assert.equal(tok.kind, "words");
  assert.match(tok.sha256, /^[0-9a-f]{64}$/);
  assert.ok(ck.params.has("text_encoder.word_proj.weight"));
  assert.ok(!ck.params.has("text_encoder.token_embedding.weight"));
  assert.ok(
    ![...ck.params.keys()].some((n) => n.includes("word_vectors")),
    "the table is not a weight",
  );
  assert.equal(JSON.parse(ck.metadata.train_config).phases.length, 2);
});

Deno.test("a run stopped by --steps inside its decay, resumed to its end, names the learning rate that differs", async () => {
  // no phases: the decay ends at train.steps, so --steps 2 ended it two steps early
  const cfg = tmp("decay.yaml");
  writeFileSync(
    cfg,
    RECIPE(tinyImageFolder(tmp("decay-folder"))).split("phases:")[0]
      .replace("warmup_steps: 1,", "warmup_steps: 1, lr_decay: cosine, min_lr: 1.0e-5,"),
  );
  const common = ["--stage", "2", "--config", cfg, "--no-grid", "--out", tmp("decay")];
  assertOk(await train([...common, "--steps", "2"]));
  const r = await train([...common, "--resume"]);
  assertOk(r);
  assert.match(
    r.stderr,
    /note: before step 2 the run trained with other settings than the config's: the learning rate from step 2 \(1\.000e-5 → 7\.525e-4; train\.steps 2 → 4\) — a straight run/,
    describe(r),
  );
});

Deno.test("a words model runs only with its own word table", async () => {
  const { modelFromCheckpoint, wordTableOf } = await import("../model/checkpoint.ts");
  const { parseWordTable, wordTableBytes } = await import("../io/word_table.ts");
  const path = join(tmp("straight"), "checkpoint-4.safetensors");
  const ck = readCheckpoint(path);
  const own = (await wordTableOf(ck.model))!;
  const model = modelFromCheckpoint(ck, path, true, own);
  assert.equal(model.tokenize(["red square"]).mask.filter((m) => m > 0).length, 2);
  assert.throws(
    () => model.tokenize(["red sqaure"]),
    /word 'sqaure' is not in the model's vocabulary .*nearest: 'square'/,
  );
  model.dispose();
  // the same words with other vectors: another hash, refused in one line
  const other = await parseWordTable(
    wordTableBytes([...own.words], own.vectors.map((v) => v * 0.5), own.dim, { source: "test" }),
    "other.safetensors",
  );
  assert.throws(
    () => modelFromCheckpoint(ck, path, true, other),
    /was trained with the word table of SHA-256 [0-9a-f]{12}…, not [0-9a-f]{12}…/,
  );
  // a checkpoint whose prompts were split by other rules
  const spec = JSON.parse(ck.metadata.tokenizer);
  const otherRules = {
    ...ck,
    metadata: { ...ck.metadata, tokenizer: JSON.stringify({ ...spec, rules: "words 0" }) },
  };
  assert.throws(
    () => modelFromCheckpoint(otherRules, path, true, own),
    /reads prompts by the word rules "words 0", this release by "pixart-webgpu words 1: .*": use the release that wrote it/,
  );
  // and stage 3, which copies the weights of stage 2 rather than loading its model
  const { PixArt } = await import("../model/pixart.ts");
  const { initFromEarlierStage } = await import("../train/model_init.ts");
  for (const [table, ok] of [[own, true], [other, false]] as const) {
    const big = PixArt.init({ ...ck.model, image_size: 16, pe_interpolation: 2 }, 0, table);
    const init = () => initFromEarlierStage(big, { ck, name: path }, 3, () => {});
    if (ok) init();
    else assert.throws(init, /was trained with the word table of SHA-256 [0-9a-f]{12}…, not/);
    big.dispose();
  }
  // a stage-2 warm start from it: the same table loads, another is refused, unless the text path
  // starts afresh; a key that changes no shape (the heads) is refused too
  for (
    const [table, fresh, ok] of [
      [own, [], true],
      [other, [], false],
      [other, ["text_encoder", "y_embedder"], true],
    ] as const
  ) {
    const next = PixArt.init(ck.model, 0, table);
    const init = () => initFromEarlierStage(next, { ck, name: path }, 2, () => {}, fresh);
    if (ok) init();
    else assert.throws(init, /was trained with the word table of SHA-256 [0-9a-f]{12}…, not/);
    next.dispose();
  }
  const heads = ck.model.num_heads === 1 ? 2 : 1;
  const split = PixArt.init({ ...ck.model, num_heads: heads }, 0, own);
  assert.throws(
    () => initFromEarlierStage(split, { ck, name: path }, 2, () => {}),
    new RegExp(
      `has model.num_heads = ${ck.model.num_heads}, the stage-2 config says ${heads}: a warm start keeps the model it starts from$`,
    ),
  );
  split.dispose();
  // positions past the range stage 2 learned are named, with the pe_interpolation that keeps it
  const lines: string[] = [];
  const far = PixArt.init({ ...ck.model, image_size: 16 }, 0, own);
  initFromEarlierStage(far, { ck, name: path }, 3, (l) => lines.push(l));
  far.dispose();
  assert.ok(
    lines.some((l) =>
      /note: the positions span 8 .* stage 2's spanned 4: pe_interpolation 2/.test(l)
    ),
    lines.join("\n"),
  );
});

Deno.test("a flag is checked against the config as its keys are: --lr below train.min_lr", async () => {
  const cfg = tmp("min_lr.yaml");
  writeFileSync(cfg, "train: {steps: 4, lr: 1.0e-3, min_lr: 1.0e-5}\n");
  assertOneLineError(
    await train(["--stage", "1", "--config", cfg, "--out", tmp("lr"), "--lr", "1.0e-6"]),
    /with the flags given: 'train\.min_lr' \(0\.00001\) must not exceed 'train\.lr' \(0\.000001\)/,
  );
});

Deno.test("sample --skip-unknown-words draws a words model's prompt without the words it lacks, named", async () => {
  const ck = join(tmp("straight"), "checkpoint-4.safetensors");
  const args = (out: string, ...more: string[]) => [
    "--checkpoint",
    ck,
    "--prompt",
    "Red emoji square",
    "--num",
    "2",
    "--steps",
    "2",
    "--out",
    tmp(out),
    ...more,
  ];
  // by default the word is an error naming it, and nothing is drawn
  assertOneLineError(
    await sample(args("refused.png")),
    /^error: word 'emoji' is not in the model's vocabulary \([\d,]+ words\); nearest: /,
  );
  const r = await sample(args("kept.png", "--skip-unknown-words"));
  assertOk(r);
  assert.match(
    r.stderr,
    /note: 'emoji' is not in the model's vocabulary: left out of "Red emoji square"; nearest: '/,
  );
  // what was drawn is written beside the grid: the prompt as the model read it
  assert.deepEqual(Deno.readTextFileSync(tmp("kept.txt")).trim().split("\n"), [
    "red square",
    "red square",
  ]);
  // the same draws as the prompt written without the word
  const plain = await sample(
    args("plain.png").map((a) => a === "Red emoji square" ? "red square" : a),
  );
  assertOk(plain);
  assert.deepEqual(Deno.readFileSync(tmp("kept.png")), Deno.readFileSync(tmp("plain.png")));
  // a prompt or negative with no known word is refused, not drawn as the null caption
  const none = (out: string, ...more: string[]) =>
    args(out, "--skip-unknown-words", ...more).map((a) => a === "Red emoji square" ? "emoji" : a);
  assertOneLineError(
    await sample(none("empty.png")),
    /^error: the prompt "emoji" has no word in the model's vocabulary: reword it/,
  );
  assertOneLineError(
    await sample([...args("neg.png", "--skip-unknown-words"), "--negative", "emoji"]),
    /^error: --negative "emoji" has no word in the model's vocabulary/,
  );
  // punctuation alone is no word either
  assertOneLineError(
    await sample(
      args("bang.png", "--skip-unknown-words").map((a) => a === "Red emoji square" ? "emoji!" : a),
    ),
    /^error: the prompt "emoji!" has no word in the model's vocabulary: reword it/,
  );
  // the word table the model reads is an input: no grid or export is written over it (a copy of
  // the model reading a copy of its table, so that nothing of the repository is at stake)
  const table = tmp("words-copy.safetensors");
  Deno.copyFileSync(wordTablePath(readCheckpoint(ck).model)!, table);
  const f = readSafetensors(ck);
  const moved = tmp("moved-table.safetensors");
  writeSafetensors(moved, Object.fromEntries(f.tensors) as Record<string, TensorInput>, {
    ...f.metadata,
    config: JSON.stringify({ ...JSON.parse(f.metadata.config), word_table: table }),
  });
  const before = Deno.readFileSync(table);
  assertOneLineError(
    await sample(args("x.png").map((a) => a === ck ? moved : a === tmp("x.png") ? table : a)),
    /would write over the --checkpoint's word table/,
  );
  assertOneLineError(
    await exportTask(["--checkpoint", moved, "--out", table]),
    /^error: --out '.*' is the word table the model reads: write the export to another file$/,
  );
  assert.deepEqual(Deno.readFileSync(table), before);
  // nor does data:words write its token list over a table, its own --out or another
  for (const to of [table, tmp("new-table.safetensors")]) {
    assertOneLineError(
      await task("data_words", ["--out", to, "--tokens", table]),
      /^error: --tokens '.*' is a safetensors file: write the tokens to a text file of their own$/,
    );
  }
  assert.deepEqual(Deno.readFileSync(table), before);
  // nor over another file of the user's
  const notes = tmp("notes.md");
  Deno.writeTextFileSync(notes, "# my notes\n");
  assertOneLineError(
    await task("data_words", ["--out", tmp("new-table.safetensors"), "--tokens", notes]),
    /^error: '.*notes\.md' exists and is not a token list: choose another --tokens, or move it away$/,
  );
  assert.equal(Deno.readTextFileSync(notes), "# my notes\n");
});
