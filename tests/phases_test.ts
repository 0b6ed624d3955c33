// A run's phases (io/config_schema.ts) and its learning-rate curve (train/lr_schedule.ts): keys
// change from a step on and stay changed; a phase that sets train.lr starts a new cycle; without
// phases the curve is Adam's own warm-up and decay; a bad phase is a one-line error.

import assert from "node:assert/strict";
import * as configModule from "../io/config.ts";
import { configAt, parseConfig } from "../io/config.ts";
import { Adam, tensor } from "../kernels/mod.ts";
import { lrAt, lrChangedBefore, lrNotes } from "../train/lr_schedule.ts";
import { resumeSettingsNote } from "../train/resume_note.ts";
import { configDocument } from "../io/config_schema.ts";
import { ready } from "./helpers.ts";

await ready;

const BASE = `
train: {steps: 1000, lr: 1.0e-3, warmup_steps: 100, lr_decay: cosine, decay_start: 600, min_lr: 1.0e-5}
`;

Deno.test("without phases the curve is Adam's own warm-up, hold and decay", () => {
  for (const shape of ["cosine", "linear", "constant"]) {
    const cfg = parseConfig(BASE.replace("cosine", shape));
    const tc = cfg.train;
    const adam = new Adam([tensor([1], [1])], {
      lr: tc.lr,
      warmupSteps: tc.warmup_steps,
      decay: shape === "constant"
        ? undefined
        : { shape: shape as "cosine", start: tc.decay_start, end: tc.steps, minLr: tc.min_lr },
    });
    for (const t of [1, 50, 100, 101, 600, 601, 800, 999, 1000]) {
      assert.ok(Math.abs(lrAt(cfg, t) - adam.lrAt(t)) < 1e-15, `${shape} step ${t}`);
    }
    adam.dispose();
  }
});

Deno.test("phases: keys change from a step on; train.lr starts a cycle with its own warm-up and decay", () => {
  const cfg = parseConfig(
    BASE + `
phases:
  - from: 300
    data.balance_power: 0.5
    model.drop_path: 0.1
  - from: 700
    train.lr: 3.0e-4
    train.warmup_steps: 0
    train.decay_start: 750
  - from: 900
    model.drop_path: 0.0
`,
  );
  assert.equal(configAt(cfg, 299).data.balance_power, 0);
  assert.equal(configAt(cfg, 300).data.balance_power, 0.5);
  assert.equal(configAt(cfg, 800).data.balance_power, 0.5); // stays until changed
  assert.equal(configAt(cfg, 800).model.drop_path, 0.1);
  assert.equal(configAt(cfg, 900).model.drop_path, 0);
  assert.equal(cfg.model.drop_path, 0); // the config itself is unchanged
  // the first cycle decays from 600 to the second cycle's start, 700
  assert.equal(lrAt(cfg, 600), 1e-3);
  assert.ok(Math.abs(lrAt(cfg, 650) - (1e-5 + (1e-3 - 1e-5) * 0.5)) < 1e-12);
  assert.ok(Math.abs(lrAt(cfg, 700) - 1e-5) < 1e-12);
  // the second: 3e-4, no warm-up, held to 750, then down to min_lr at the run's end
  assert.equal(lrAt(cfg, 701), 3e-4);
  assert.equal(lrAt(cfg, 750), 3e-4);
  assert.ok(Math.abs(lrAt(cfg, 1000) - 1e-5) < 1e-12);
  assert.ok(lrAt(cfg, 875) < 3e-4 && lrAt(cfg, 875) > 1e-5);
  assert.deepEqual(lrNotes(cfg), []);
});

Deno.test("a cycle that ends before its decay would start says so", () => {
  const cfg = parseConfig(
    BASE + `
phases:
  - from: 500
    train.lr: 2.0e-4
`,
  );
  const notes = lrNotes(cfg);
  assert.equal(notes.length, 1);
  assert.match(notes[0], /decay_start 600 is not before the next cycle's first step 500/);
  assert.equal(lrAt(cfg, 450), 1e-3);
});

Deno.test("a bad phase is a one-line error naming it", () => {
  const bad = (phases: string, re: RegExp) => {
    assert.throws(() => parseConfig(BASE + "phases:\n" + phases, "x.yaml"), (e: Error) => {
      assert.match(e.message, re);
      assert.ok(!e.message.includes("\n"), e.message);
      return true;
    });
  };
  bad(
    "  - from: 10\n    model.hidden_size: 64\n",
    /x\.yaml: 'phases\[0\]' cannot set 'model\.hidden_size'/,
  );
  bad("  - from: 10\n", /'phases\[0\]' sets nothing/);
  bad(
    "  - from: 20\n    train.lr: 1.0e-4\n  - from: 20\n    train.lr: 2.0e-4\n",
    /'phases\[1\]\.from' \(20\) must be after/,
  );
  bad("  - from: 1000\n    train.lr: 1.0e-4\n", /starts after the run's last step/);
  bad("  - from: 10\n    train.lr: -1\n", /'phases\[0\]\.train\.lr' must be >= 0/);
  bad(
    "  - from: 10\n    train.min_lr: 0.1\n",
    /in the phase from step 10: 'train\.min_lr' \(0\.1\) must not exceed/,
  );
  bad("  from: 10\n", /'phases' must be a list/);
  // masking needs blocks before the decoder: checked at load, not at the phase's first step
  assert.throws(
    () =>
      parseConfig(BASE + "model: {depth: 2}\nphases:\n  - from: 10\n    train.mask_ratio: 0.5\n"),
    /in the phase from step 10: 'train\.mask_decoder_blocks' \(2\) must be below 'model\.depth' \(2\)/,
  );
});

Deno.test("a config written as a run records it (config.json, train_config) reads back the same", () => {
  const { loadConfig, parseConfigObject, configDocument } = configModule;
  const cfg = loadConfig("configs/emoji_words_stage2.yaml");
  assert.ok(cfg.phases.length > 0);
  const text = JSON.stringify(configDocument(cfg));
  assert.deepEqual(parseConfigObject(JSON.parse(text), "run.json"), cfg);
  // as checkpoints of earlier releases recorded the phases
  const older = { ...JSON.parse(text), phases: cfg.phases };
  assert.deepEqual(parseConfigObject(JSON.parse(JSON.stringify(older)), "old.json"), cfg);
});

Deno.test("resuming: the settings that differ before the resumed step are named, later ones not", () => {
  const { settingsChangedBefore } = configModule;
  const was = parseConfig(BASE + "phases:\n  - from: 300\n    train.lr: 5.0e-4\n");
  assert.deepEqual(settingsChangedBefore(was, was, 500), []);
  // a phase added after the step, and what only decides what is written: nothing to say
  const later = parseConfig(
    BASE.replace("steps: 1000", "steps: 1000, save_every: 7") +
      "phases:\n  - from: 300\n    train.lr: 5.0e-4\n  - from: 600\n" +
      "    train.mask_ratio: 0.5\n",
  );
  assert.deepEqual(settingsChangedBefore(was, later, 500), []);
  // the phase moved before the step, and a base key changed
  const moved = parseConfig(
    BASE.replace("1.0e-3", "2.0e-3") + "phases:\n  - from: 200\n    train.lr: 5.0e-4\n",
  );
  assert.deepEqual(settingsChangedBefore(was, moved, 500), [
    "train.lr 0.001 → 0.002",
    "train.lr 0.001 → 0.0005 (from step 200)",
  ]);
  const onlyMoved = parseConfig(BASE + "phases:\n  - from: 200\n    train.lr: 5.0e-4\n");
  assert.deepEqual(settingsChangedBefore(was, onlyMoved, 500), [
    "train.lr 0.001 → 0.0005 (from step 200)",
  ]);
  // what a phase may set of the model and the noise counts too
  const dropping = parseConfig(
    BASE + "diffusion: {p_uncond: 0.1}\nphases:\n  - from: 300\n    train.lr: 5.0e-4\n" +
      "  - from: 400\n    model.drop_path: 0.1\n",
  );
  assert.deepEqual(settingsChangedBefore(was, dropping, 500), [
    "diffusion.p_uncond 0.2 → 0.1",
    "model.drop_path 0 → 0.1 (from step 400)",
  ]);
});

Deno.test("the digit model's recipe: its phases end where the shipped model's run ended", async () => {
  const { loadConfig } = await import("../io/config.ts");
  const { readSafetensorsHeader } = await import("../io/safetensors.ts");
  const cfg = loadConfig("configs/digits_stage2.yaml");
  const recorded = JSON.parse(
    readSafetensorsHeader("checkpoints/pixart_mnist.safetensors").metadata.train_config,
  );
  // the settings of its last step are the ones the shipped checkpoint recorded
  const end = configAt(cfg, cfg.train.steps - 1);
  assert.equal(cfg.train.steps, recorded.train.steps);
  for (const k of ["lr", "decay_start", "min_lr", "lr_decay", "batch_size", "ema_decay"] as const) {
    assert.equal(end.train[k], recorded.train[k], `train.${k}`);
  }
  assert.equal(end.data.numeral_fraction, recorded.data.numeral_fraction);
  assert.equal(end.diffusion.min_snr_gamma, recorded.diffusion.min_snr_gamma);
  assert.equal(end.model.drop_path, recorded.model.drop_path);
  // and the curve of docs/RESULTS.md's table on the way
  assert.equal(configAt(cfg, 3699).model.drop_path, 0.1);
  assert.equal(configAt(cfg, 4049).diffusion.min_snr_gamma, 0);
  assert.equal(lrAt(cfg, 250), 5e-4); // warm-up
  assert.equal(lrAt(cfg, 10050), 1e-3);
  assert.ok(Math.abs(lrAt(cfg, 16000) - 1e-5) < 1e-12);
  assert.equal(lrAt(cfg, 16001), 3e-4);
  assert.equal(lrAt(cfg, 17000), 3e-4);
  assert.ok(Math.abs(lrAt(cfg, 22000) - 1e-5) < 1e-12);
  assert.equal(lrAt(cfg, 23000), 3e-4);
  assert.ok(Math.abs(lrAt(cfg, 34000) - 1e-5) < 1e-12);
  assert.equal(configAt(cfg, 17449).data.numeral_fraction, 0.5);
  assert.equal(configAt(cfg, 17450).data.numeral_fraction, 0.7);
});

Deno.test("a restart that sets only train.lr has the warm-up before it and, decay_start passed, decays right after", () => {
  // BASE: warm-up 100, cosine from step 600 to the cycle's end
  const cfg = parseConfig(BASE + "phases:\n  - from: 700\n    train.lr: 5.0e-4\n");
  assert.ok(Math.abs(lrAt(cfg, 701) - 5e-4 / 100) < 1e-15); // step 1 of 100 of the warm-up
  assert.ok(Math.abs(lrAt(cfg, 750) - 5e-4 * 50 / 100) < 1e-15);
  assert.equal(lrAt(cfg, 800), 5e-4); // the warm-up's end: the peak, once
  assert.ok(lrAt(cfg, 801) < 5e-4); // and the cosine from there to the run's end
  assert.ok(Math.abs(lrAt(cfg, 900) - (1e-5 + (5e-4 - 1e-5) * 0.5)) < 1e-12);
  assert.deepEqual(lrNotes(cfg), []);
});

Deno.test("the words model's second cycle: steps 1–12,000 as the one-cycle run had them, then half the peak, held, cosine", async () => {
  const { loadConfig } = await import("../io/config.ts");
  const cfg = loadConfig("configs/emoji_words_stage2.yaml");
  // the run as it was before the restart: 12,000 steps, no phase from 12,000
  const oneCycle = structuredClone(cfg);
  oneCycle.train.steps = 12000;
  oneCycle.phases = oneCycle.phases.filter((p) => p.from < 12000);
  for (let t = 1; t <= 12000; t++) assert.equal(lrAt(cfg, t), lrAt(oneCycle, t), `step ${t}`);
  assert.ok(Math.abs(lrAt(cfg, 12000) - cfg.train.min_lr) < 1e-15);
  assert.ok(Math.abs(lrAt(cfg, 12001) - 5e-4 / 200) < 1e-15);
  assert.equal(lrAt(cfg, 12200), 5e-4);
  assert.equal(lrAt(cfg, 13000), 5e-4);
  assert.ok(lrAt(cfg, 13001) < 5e-4);
  assert.ok(Math.abs(lrAt(cfg, 14000) - (1e-5 + (5e-4 - 1e-5) * 0.5)) < 1e-12);
  assert.ok(Math.abs(lrAt(cfg, 15000) - 1e-5) < 1e-15);
  assert.deepEqual(lrNotes(cfg), []);
});

Deno.test("resuming: a learning rate that the curve's length moved before the resumed step is named", () => {
  // BASE: cosine from 600 to train.steps, 1000
  const cfg = parseConfig(BASE);
  assert.equal(lrChangedBefore(cfg, cfg, 1000), null);
  // stopped with --steps 800: its decay ended at 800, a straight run's at 1000
  const stopped = structuredClone(cfg);
  stopped.train.steps = 800;
  assert.equal(lrChangedBefore(stopped, cfg, 500), null); // stopped before the decay: one run
  assert.equal(
    lrChangedBefore(stopped, cfg, 800),
    `the learning rate from step 601 (${lrAt(stopped, 601).toExponential(3)} → ` +
      `${lrAt(cfg, 601).toExponential(3)}; train.steps 800 → 1000)`,
  );
  // a cycle added after the step moves the end of the decay the run was in
  const restart = parseConfig(BASE + "phases:\n  - from: 900\n    train.lr: 5.0e-4\n");
  assert.match(lrChangedBefore(cfg, restart, 700)!, /^the learning rate from step 601 \(/);
  // a finished run continued by a cycle from its last step, as the words recipe was: one run
  const longer = parseConfig(
    BASE.replace("steps: 1000", "steps: 1500") + "phases:\n  - from: 1000\n    train.lr: 5.0e-4\n",
  );
  assert.equal(lrChangedBefore(cfg, longer, 1000), null);
  // a checkpoint's step is untrusted (up to 2^40): the curves are compared only while they move
  const slowWarmUp = parseConfig(BASE.replace(/warmup_steps: \d+/, "warmup_steps: 5000"));
  assert.equal(lrChangedBefore(cfg, cfg, 2 ** 40), null);
  assert.match(lrChangedBefore(cfg, slowWarmUp, 2 ** 40)!, /^the learning rate from step 1 \(/);
  const floor = parseConfig(BASE.replace(/min_lr: [\d.e-]+/, "min_lr: 2.0e-5"));
  assert.match(lrChangedBefore(floor, cfg, 2 ** 40)!, /^the learning rate from step 601 \(/);
});

Deno.test("resuming: a changed key of the curve is named once, as the key; its length as the rate", () => {
  const cfg = parseConfig(BASE);
  const recorded = (c: typeof cfg) => JSON.stringify(configDocument(c));
  assert.equal(resumeSettingsNote(recorded(cfg), cfg, 800), null);
  const faster = parseConfig(BASE.replace("lr: 1.0e-3", "lr: 2.0e-3"));
  const note = resumeSettingsNote(recorded(faster), cfg, 800)!;
  assert.match(note, /^note: before step 800 .*: train\.lr 0\.002 → 0\.001 — a straight run/);
  assert.ok(!note.includes("the learning rate from step"), note);
  // a decay moved that had not started by the step: the run is the config's
  const later = parseConfig(BASE.replace("decay_start: 600", "decay_start: 900"));
  assert.equal(resumeSettingsNote(recorded(later), cfg, 550), null);
  assert.match(resumeSettingsNote(recorded(later), cfg, 800)!, /train\.decay_start 900 → 600/);
  const stopped = structuredClone(cfg);
  stopped.train.steps = 800;
  assert.match(
    resumeSettingsNote(recorded(stopped), cfg, 800)!,
    /: the learning rate from step 601 \(.*; train\.steps 800 → 1000\) — a straight run/,
  );
});
