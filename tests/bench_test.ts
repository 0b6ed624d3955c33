// The benchmark suites, run as a user runs them but in --short mode (every measurement, each model
// cut to its smallest size): the GPU suite cannot rot while no GPU runs it, and the CPU suite's
// profile, phases and grid still run. What is checked is that every measurement ran and printed a
// well-formed line, never how fast.

import assert from "node:assert/strict";
import { assertOk, describe, type Run, task } from "./cli_harness.ts";
import { deviceInfo } from "../kernels/mod.ts";
import { ready } from "./helpers.ts";

await ready;

const bench = (args: string[]) => task("bench", args, [], 600_000);

/** The JSON lines of a run, each checked for the fields every line has. */
function lines(r: Run): Record<string, unknown>[] {
  const out = r.stdout.trim().split("\n").map((l) => {
    try {
      return JSON.parse(l);
    } catch {
      throw new Error(`not a JSON line: ${l}${describe(r)}`);
    }
  });
  for (const l of out) {
    assert.equal(typeof l.name, "string", describe(r));
    assert.ok(l.ms === null || (typeof l.ms === "number" && l.ms >= 0), `${l.name}: ms ${l.ms}`);
    assert.ok(l.gflops === null || typeof l.gflops === "number", `${l.name}: gflops`);
  }
  return out;
}

async function listed(args: string[]): Promise<string[]> {
  const r = await bench([...args, "--list"]);
  assertOk(r);
  return r.stdout.trim().split("\n");
}

Deno.test("bench --suite gpu --short: every measurement of every shipped config, one line each", async () => {
  const args = ["--suite", "gpu", "--short"];
  const names = await listed(args);
  const configs = [...Deno.readDirSync("configs")].map((e) => e.name)
    .filter((n) => n.endsWith(".yaml") && n !== "tiny.yaml").map((n) => n.slice(0, -5));
  for (const c of configs) {
    for (const m of ["train_step", "memory/train_step", "sample_step", "grid"]) {
      assert.ok(names.includes(`${m}/${c}`), `${m}/${c} is not in the gpu suite`);
    }
    assert.ok(names.some((n) => n.startsWith(`matmul/${c}/`)), `no matmul of ${c}`);
    assert.ok(names.some((n) => n.startsWith(`attention/${c}/`)), `no attention of ${c}`);
  }
  const r = await bench(args);
  assertOk(r);
  const out = lines(r);
  const byName = new Map(out.map((l) => [l.name as string, l]));
  for (const n of [...names, "variants"]) {
    assert.ok(byName.has(n), `no line for ${n}${describe(r)}`);
  }
  for (const l of out) {
    assert.equal(l.skipped, undefined, `${l.name} was skipped: ${l.skipped}`);
    if (l.name !== "adapter" && l.name !== "variants") {
      assert.ok((l.ms as number) > 0, `${l.name} has no time`);
    }
    if (/^(matmul|attention)\//.test(l.name as string)) {
      // every variant that can run the shape was timed, the fastest is one of them
      const ms = l.variants_ms as Record<string, number>;
      assert.ok(Object.keys(ms).length >= 2, `${l.name}: ${JSON.stringify(ms)}`);
      assert.equal(ms[l.fastest as string], Math.min(...Object.values(ms)), l.name as string);
    }
  }
  const adapter = byName.get("adapter")!;
  assert.ok(Array.isArray(adapter.features) && typeof adapter.adapter === "string");
  const mem = byName.get("memory/train_step/small_stage2")!;
  assert.ok((mem.peak_in_use_mb as number) >= (mem.params_moments_grads_mb as number));
  const f16 = byName.get("sample_step/emoji_stage2/f16")!;
  assert.ok((f16.speedup_vs_f32 as number) > 0, JSON.stringify(f16));
  // the summary table names every line
  for (const n of names) assert.ok(r.stderr.includes(`| ${n} `), `summary lacks ${n}`);
});

Deno.test("bench --short on the cpu suite: profile, phases and the grid of the digit model", async () => {
  const args = ["--short", "--config", "small_stage2"];
  const names = await listed(args);
  for (
    const n of [
      "matmul/1024x1024x1024",
      "train_step/small_stage2",
      "profile/train_step/small_stage2",
      "profile/sample_step/small_stage2",
      "sample_step/small_stage2/f16",
      "grid/small_stage2",
      "fine_tune/small_stage2/full",
      "fine_tune/small_stage2/full+checkpoint",
      "fine_tune/small_stage2/lora",
      "fine_tune/small_stage2/lora+checkpoint",
    ]
  ) assert.ok(names.includes(n), `${n} is not in the cpu suite`);
  const r = await bench([...args, "--only", "small_stage2"]);
  assertOk(r);
  const byName = new Map(lines(r).map((l) => [l.name as string, l]));
  const train = byName.get("train_step/small_stage2")!;
  for (const k of ["fwd_ms", "bwd_ms", "optim_ms"]) assert.equal(typeof train[k], "number", k);
  // the profiles: shares of the GPU time, or skipped only where the adapter cannot time kernels
  for (const step of ["train_step", "sample_step"]) {
    const prof = byName.get(`profile/${step}/small_stage2`);
    assert.ok(prof, `profile/${step} was not measured`);
    if (deviceInfo().timestampQuery) {
      const shares = Object.values(prof.families as Record<string, number>);
      assert.ok(Math.abs(shares.reduce((a, b) => a + b, 0) - 100) < 1, JSON.stringify(prof));
    } else assert.equal(prof.skipped, "the adapter has no timestamp-query feature");
  }
  assert.equal(byName.get("grid/small_stage2")!.images, 2);
  // fine-tunes: the full one is the reference; LoRA trains a few weights and holds no gradients,
  // moments or EMA of the model's; checkpointed blocks save less for backward
  const tune = (k: string) => byName.get(`fine_tune/small_stage2/${k}`)! as Record<string, number>;
  assert.equal(tune("full").peak_vs_full, 1);
  assert.equal(tune("full").trained_params, tune("full").params);
  for (const k of ["lora", "lora+checkpoint"]) {
    assert.ok(tune(k).trained_params < tune(k).params / 10, JSON.stringify(tune(k)));
    assert.ok(tune(k).peak_in_use_mb < tune("full").peak_in_use_mb, JSON.stringify(tune(k)));
  }
  for (const k of ["full", "lora"]) {
    assert.ok(tune(`${k}+checkpoint`).activations_mb < tune(k).activations_mb, k);
  }
});

Deno.test("bench: a wrong suite, config or name is a one-line error", async () => {
  for (
    const [args, re] of [
      [["--suite", "tpu"], /--suite must be cpu or gpu/],
      [["--config", "nope"], /'nope' is not a shipped config/],
      [["--only", "no_such_measurement"], /matches no measurement/],
    ] as const
  ) {
    const r = await bench([...args]);
    assert.equal(r.code, 1, describe(r));
    assert.match(r.stderr.trim().split("\n").at(-1)!, re);
  }
});
