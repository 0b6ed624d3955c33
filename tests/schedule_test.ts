// The noise schedule: the config's linear one, and its SNR-shifted form for larger images.

import assert from "node:assert/strict";
import {
  checkpointSchedule,
  configSchedule,
  linearSchedule,
  shiftedSchedule,
} from "../diffusion/schedule.ts";
import { DEFAULT_CONFIG, parseConfig } from "../io/config.ts";

const snr = (a: number) => a / (1 - a);

Deno.test("a config without snr_shift (or with 1) is the linear schedule", () => {
  assert.deepEqual(configSchedule({}), linearSchedule());
  assert.deepEqual(configSchedule({ snr_shift: 1, timesteps: 100 }), linearSchedule(100));
});

Deno.test("snr_shift k divides every t's signal-to-noise ratio by k, through its betas", () => {
  const base = linearSchedule();
  for (const k of [4, 0.5]) {
    const s = configSchedule({ snr_shift: k });
    assert.deepEqual(s, shiftedSchedule(base, k));
    let cum = 1;
    for (let t = 0; t < s.T; t++) {
      const ratio = snr(s.alphasCumprod[t]) * k / snr(base.alphasCumprod[t]);
      assert.ok(Math.abs(ratio - 1) < 1e-9, `t ${t}: SNR ratio ${ratio / k}`);
      assert.ok(s.betas[t] > 0 && s.betas[t] < 1, `t ${t}: beta ${s.betas[t]}`);
      cum *= 1 - s.betas[t];
      assert.ok(Math.abs(cum / s.alphasCumprod[t] - 1) < 1e-9, `t ${t}: ᾱ is not ∏(1 − β)`);
      // the posterior of x_{t−1} follows the shifted betas (Ho et al. eq. 7)
      const prev = t === 0 ? 1 : s.alphasCumprod[t - 1];
      const c1 = s.betas[t] * Math.sqrt(prev) / (1 - s.alphasCumprod[t]);
      assert.ok(Math.abs(s.postC1[t] - c1) <= 1e-12 * Math.abs(c1));
    }
  }
  assert.throws(() => shiftedSchedule(base, 0), /^Error: snr_shift must be > 0, got 0$/);
});

Deno.test("a checkpoint samples with the schedule it was trained with, shift included", () => {
  const cfg = { ...DEFAULT_CONFIG, diffusion: { ...DEFAULT_CONFIG.diffusion, snr_shift: 4 } };
  const s = checkpointSchedule({ train_config: JSON.stringify(cfg) });
  assert.deepEqual(s, configSchedule({ snr_shift: 4 }));
  assert.deepEqual(checkpointSchedule({}), linearSchedule());
  // the metadata is untrusted: checked as a config file is, before any array is sized by it
  const bad = (diffusion: unknown, re: RegExp) =>
    assert.throws(
      () => checkpointSchedule({ train_config: JSON.stringify({ diffusion }) }, "checkpoint 'c'"),
      (e: Error) => re.test(e.message) && !e.message.includes("\n"),
    );
  bad({ prediction: "x0" }, /^config of checkpoint 'c': 'diffusion\.prediction' must be one of/);
  bad({ timesteps: 3.5 }, /'diffusion\.timesteps' must be an integer/);
  bad({ timesteps: 1e12 }, /'diffusion\.timesteps' must be <= 100000/);
  bad({ beta_end: 2 }, /'diffusion\.beta_end' must be < 1/);
  bad(
    { beta_start: 0.03 },
    /'diffusion\.beta_start' \(0\.03\) must be below 'diffusion\.beta_end'/,
  );
  assert.throws(
    () => checkpointSchedule({ train_config: "{" }, "checkpoint 'c'"),
    /^Error: checkpoint 'c': its train_config metadata is not valid JSON$/,
  );
  // a run of 4 timesteps with 3 sampler steps (the default 4 would not fit) loads
  const few = {
    diffusion: { timesteps: 4, beta_start: 0.0001, beta_end: 0.003 },
    sample: { sampler: "dpm-solver", steps: 3 },
  };
  assert.equal(checkpointSchedule({ train_config: JSON.stringify(few) }).T, 4);
});

Deno.test("diffusion.snr_shift must be above 0", () => {
  assert.throws(
    () => parseConfig("diffusion:\n  snr_shift: 0\n"),
    /'diffusion\.snr_shift' must be > 0, got 0/,
  );
  assert.equal(parseConfig("diffusion:\n  snr_shift: 4\n").diffusion.snr_shift, 4);
});
