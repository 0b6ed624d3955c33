// deno task bench — kernel and model timings, one JSON line per measurement on stdout.
//
// Every line has `name`, `ms` (the median over the timed repetitions) and `gflops` (from an
// analytic FLOP count, or null), plus fields that say what was measured. Each measurement runs
// once untimed first: that compiles its shaders and fills the buffer pool. Timed regions start
// and end with `await sync()`, so they hold the GPU's work and not only its recording.

import {
  Adam,
  attention,
  backward,
  clearTape,
  counters,
  deviceInfo,
  Ema,
  empty,
  Generator,
  matmul,
  type MatmulOptions,
  noGrad,
  pool,
  randomNormal,
  startProfile,
  stopProfile,
  sync,
  tapeSavedBytes,
  tensor,
  tidy,
  trainStep,
  zero,
} from "../kernels/mod.ts";
import { compiledKernelCount } from "../kernels/runtime.ts";
import { captionFor } from "../io/captions.ts";
import { mixSeed, mulberry32 } from "../kernels/host_random.ts";
import {
  chosenVariants,
  rememberedChoice,
  tuningEnabled,
  warmUp,
  type WarmUpStats,
} from "../kernels/mod.ts";
import type { ModelConfig } from "../model/config.ts";
import { type Condition, PixArt } from "../model/pixart.ts";
import { tokenize } from "../model/tokenizer.ts";
import { forwardFlops } from "../model/cost.ts";
import { roundToHalf } from "../io/safetensors.ts";
import { epsLoss } from "../diffusion/ddpm.ts";
import { linearSchedule, type Schedule } from "../diffusion/schedule.ts";
import { fail, intFlag, parseCli, runTask } from "./cli.ts";

const USAGE = `
Benchmarks the kernels and the model; prints one JSON line per measurement:
{"name": …, "ms": median ms, "gflops": from the FLOP count or null, …}.

  deno task bench [flags]

  --only NAME    run only the measurements named NAME (an exact name, else every name that
                 contains NAME); repeatable
  --reps N       timed repetitions per measurement (default 5; the seed-shape steps default
                 to 1), after one untimed warm-up
  --skip-seed    skip the lesson-shape model steps (train_step/seed, memory/train_step/seed,
                 sample_step/seed: minutes per step on a CPU adapter)
  --tune         time every kernel variant for each shape first (as a GPU does on first use;
                 PIXART_TUNE=always) and remember the choices; default: the adapter's usual
                 behaviour (CPU adapters use their default variants)
  --list         print the measurement names and exit

Measurements: adapter; matmul/MxKxN (a 1024³ product and the forward and backward products of a
384-wide transformer on 2,048 tokens; "ms" is the plain A·B, "trans_ms" the call as the model
makes it, with the transposed operand materialised; several products per timed rep, so the wait
for the queue is not counted in each); attention/fwd+bwd/small and /seed;
train_step/small and /seed (forward, ε-MSE loss, backward, Adam with clipping); sample_step/small
and /seed (one guided step, conditional and unconditional branches in one batch of 2×64; the
caption path — text encoder, cross-attention K/V — is computed once per run, as sampling does);
sample_step/small/f16 (the same with weights rounded to f16, as "deno task export" writes them:
sampling then reads the linear weights packed as f16 pairs; "speedup_vs_f32" when both ran);
memory/train_step/small and /seed (the pool's peak in-use bytes during a step against the
required bytes: parameters + Adam moments + gradients + the activations the autograd tape saves
for backward; "ratio" is peak / required); train_step/emoji, profile/train_step/emoji and
sample_step/emoji (configs/emoji_stage2.yaml's model: RGB, D 160, depth 6, 80-byte captions);
profile/train_step/small and profile/sample_step/small (one step with a timestamp query around every dispatch: the share of GPU time per op family —
matmul, attention, norms, elementwise, optimiser, other — and the top kernels; needs the
adapter's timestamp-query feature). FLOPs of model steps count matmuls and attention only; a
training step is counted as 3 × its forward. MB = 2^20 bytes. Each measurement is warmed up
first (kernels/warmup.ts: compiled, and timed per variant where tuning is on); its line names
the variant each product and attention ran ("variant"/"variants"), and a last line "variants"
lists them all with the adapter's remembered timings.
`;

const T0 = performance.now();

// ---- measurement names and selection ----------------------------------------------------------

/** m×k×n, and which operand the model's call transposes (forward: the weight, as linear() does). */
interface MatmulShape {
  m: number;
  k: number;
  n: number;
  trans: "A" | "B";
  role: string;
}

const MATMULS: MatmulShape[] = [
  { m: 1024, k: 1024, n: 1024, trans: "B", role: "square" },
  { m: 2048, k: 384, n: 1152, trans: "B", role: "qkv forward" },
  { m: 2048, k: 1536, n: 384, trans: "B", role: "mlp.fc2 forward" },
  { m: 2048, k: 1152, n: 384, trans: "B", role: "qkv dA = dC·Bᵀ" },
  { m: 384, k: 2048, n: 1152, trans: "A", role: "qkv dB = Aᵀ·dC" },
  { m: 2048, k: 384, n: 1536, trans: "B", role: "mlp.fc2 dA = dC·Bᵀ (= mlp.fc1 forward)" },
  { m: 1536, k: 2048, n: 384, trans: "A", role: "mlp.fc2 dB = Aᵀ·dC" },
];

interface AttentionShape {
  B: number;
  N: number;
  D: number;
  heads: number;
}

const ATTENTION: Record<string, AttentionShape> = {
  small: { B: 32, N: 64, D: 128, heads: 4 },
  seed: { B: 128, N: 16, D: 384, heads: 6 },
};

const BASE_MODEL = {
  image_size: 32,
  in_channels: 1,
  mlp_ratio: 4,
  num_classes: 10,
  stage: 2 as const,
  drop_path: 0.1,
  text_depth: 2,
  text_heads: 4,
  pe_interpolation: 1,
};

/** The model shapes: the CPU-sized digit one, the lesson's, and the emoji one. */
const MODELS: Record<string, { config: ModelConfig; batch: number; lr: number; warmup: number }> = {
  small: {
    config: {
      ...BASE_MODEL,
      patch_size: 4,
      hidden_size: 128,
      depth: 4,
      num_heads: 4,
      text_len: 8,
      text_width: 64,
    },
    batch: 32,
    lr: 1e-3,
    warmup: 500,
  },
  seed: {
    config: {
      ...BASE_MODEL,
      patch_size: 8,
      hidden_size: 384,
      depth: 12,
      num_heads: 6,
      text_len: 77,
      text_width: 128,
    },
    batch: 128,
    lr: 2e-4,
    warmup: 1000,
  },
  // configs/emoji_stage2.yaml: colour, a wider model, 80-byte captions
  emoji: {
    config: {
      ...BASE_MODEL,
      in_channels: 3,
      drop_path: 0,
      patch_size: 4,
      hidden_size: 160,
      depth: 6,
      num_heads: 5,
      text_len: 80,
      text_width: 96,
    },
    batch: 32,
    lr: 1e-3,
    warmup: 500,
  },
};

const SAMPLE_BATCH = 64;
const GUIDANCE = 4.5;
const SEED_STEPS = ["train_step/seed", "memory/train_step/seed", "sample_step/seed"];

const matmulName = (s: MatmulShape) => `matmul/${s.m}x${s.k}x${s.n}`;

const ALL_NAMES = [
  "adapter",
  ...MATMULS.map(matmulName),
  ...Object.keys(ATTENTION).map((k) => `attention/fwd+bwd/${k}`),
  "train_step/small",
  "memory/train_step/small",
  "profile/train_step/small",
  "sample_step/small",
  "profile/sample_step/small",
  "sample_step/small/f16",
  "profile/sample_step/small/f16",
  "train_step/seed",
  "memory/train_step/seed",
  "sample_step/seed",
  "train_step/emoji",
  "profile/train_step/emoji",
  "sample_step/emoji",
];

/** The names to run: for each pattern its exact name if there is one, else every name containing it. */
function select(patterns: string[], skipSeed: boolean): Set<string> {
  let names = ALL_NAMES;
  if (patterns.length) {
    const chosen = new Set<string>();
    for (const p of patterns) {
      const hits = names.includes(p) ? [p] : names.filter((n) => n.includes(p));
      if (!hits.length) fail(`--only '${p}' matches no measurement (see --list)`);
      for (const h of hits) chosen.add(h);
    }
    names = names.filter((n) => chosen.has(n));
  }
  if (skipSeed) names = names.filter((n) => !SEED_STEPS.includes(n));
  return new Set(names);
}

// ---- helpers ------------------------------------------------------------------------------------

type Line = { name: string; ms: number | null; gflops: number | null } & Record<string, unknown>;

function emit(line: Line): void {
  console.log(JSON.stringify(line));
}

function progress(msg: string): void {
  console.error(`bench: ${msg}`);
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Rounds to 3 decimals (ms, GFLOP/s, MB). */
const r3 = (x: number) => Math.round(x * 1000) / 1000;
const gflops = (flop: number, ms: number) => r3(flop / ms / 1e6);
const MB = (bytes: number) => r3(bytes / 2 ** 20);

interface Timing {
  /** the untimed first run (shader compiles, first allocations) */
  warmup: number;
  ms: number[];
}

/** The variants "family:shape" → name that `body` runs (its dispatches are only collected). */
async function variantsOf(body: () => void): Promise<Record<string, string>> {
  const all = chosenVariants(true);
  const stats = await warmUp(body);
  const mine = chosenVariants();
  for (const [k, v] of all) if (!mine.has(k)) chosenForReport.set(k, v);
  for (const [k, v] of mine) chosenForReport.set(k, v);
  lastWarmUp = stats;
  return Object.fromEntries(mine);
}

/** Every shape's variant over the run, for the last line. */
const chosenForReport = new Map<string, string>();
let lastWarmUp: WarmUpStats | null = null;

/** Runs `body` once untimed, then `reps` times between two syncs; returns each rep's ms. */
async function timeReps(reps: number, body: () => void): Promise<Timing> {
  await sync();
  let t0 = performance.now();
  body();
  await sync();
  const warmup = performance.now() - t0;
  const ms: number[] = [];
  for (let r = 0; r < reps; r++) {
    await sync();
    t0 = performance.now();
    body();
    await sync();
    ms.push(performance.now() - t0);
  }
  return { warmup, ms };
}

// ---- GPU time per op family --------------------------------------------------------------------

const FAMILIES: [string, RegExp][] = [
  ["matmul", /^matmul/],
  ["attention", /^(attention|softmax)/],
  ["norms", /^(ln_modulate|layer_norm|norm_)/],
  ["optimiser", /^adam_/],
  [
    "elementwise",
    new RegExp(
      "^((add|sub|mul|div)(_broadcast)?|scale|fill|axpy|copy|lerp|zero|broadcast|lincomb\\d*|drop_path\\w*" +
        "|gated_residual\\w*|gelu_\\w+|silu\\w*|tanh\\w*|relu\\w*|exp\\w*|square\\w*|sqrt\\w*)$",
    ),
  ],
];

/** A kernel's op family; "other" holds reductions, layout copies, embeddings, loss and random. */
function family(kernel: string): string {
  for (const [f, re] of FAMILIES) if (re.test(kernel)) return f;
  return "other";
}

const TOP_KERNELS = 10;

/**
 * Runs `body` once with every dispatch timed and emits the share of GPU time per family. The
 * profiler gives each dispatch its own pass, which serialises the work: the shares are what to
 * read, not the sum (compare `gpu_ms` with the unprofiled step's `ms`).
 */
async function profileStep(name: string, body: () => void): Promise<void> {
  if (!deviceInfo().timestampQuery) {
    emit({ name, ms: null, gflops: null, skipped: "the adapter has no timestamp-query feature" });
    return;
  }
  await sync();
  const d0 = counters.dispatches;
  startProfile();
  const t0 = performance.now();
  body();
  const totals = await stopProfile();
  const wall = performance.now() - t0;
  const byFamily: Record<string, number> = {};
  for (const [f] of FAMILIES) byFamily[f] = 0;
  byFamily.other = 0;
  let gpu = 0;
  for (const [k, { ms }] of totals) {
    byFamily[family(k)] += ms;
    gpu += ms;
  }
  const pct = (ms: number) => (gpu > 0 ? Math.round((1000 * ms) / gpu) / 10 : 0);
  const top = [...totals].sort((a, b) => b[1].ms - a[1].ms).slice(0, TOP_KERNELS)
    .map(([kernel, { ms, count }]) => ({
      kernel,
      family: family(kernel),
      ms: r3(ms),
      pct: pct(ms),
      count,
    }));
  emit({
    name,
    ms: r3(wall),
    gflops: null,
    gpu_ms: r3(gpu),
    dispatches: counters.dispatches - d0,
    families: Object.fromEntries(Object.entries(byFamily).map(([f, ms]) => [f, pct(ms)])),
    family_ms: Object.fromEntries(Object.entries(byFamily).map(([f, ms]) => [f, r3(ms)])),
    top,
  });
}

// ---- FLOP counts ----------------------------------------------------------------------------------

// ---- measurements ---------------------------------------------------------------------------------

async function benchMatmul(s: MatmulShape, reps: number): Promise<void> {
  const { m, k, n } = s;
  const flop = 2 * m * k * n;
  const a = randomNormal([m, k], 1), b = randomNormal([k, n], 2);
  // the operands as the model holds them: a weight [n, k] (linear), or activations [k, m] (dB)
  const aT = s.trans === "A" ? randomNormal([k, m], 3) : null;
  const bT = s.trans === "B" ? randomNormal([n, k], 4) : null;
  // several products per rep: waiting for the queue costs ~10 ms on some adapters (lavapipe under
  // Deno), a tenth of one 1024³ product there; ms is per product
  const per = Math.min(16, Math.max(1, Math.ceil(8e9 / flop)));
  const times = (f: () => void) => () => {
    for (let i = 0; i < per; i++) f();
  };
  const opts: MatmulOptions = s.trans === "A" ? { transA: true } : { transB: true };
  const variant = Object.values(await variantsOf(() => matmul(a, b).dispose()))[0];
  const transVariant = Object.values(await variantsOf(() => matmul(aT ?? a, bT ?? b, opts)))[0];
  const plain = await timeReps(reps, times(() => matmul(a, b).dispose()));
  const trans = await timeReps(reps, times(() => matmul(aT ?? a, bT ?? b, opts).dispose()));
  for (const t of [a, b, aT, bT]) t?.dispose();
  const ms = median(plain.ms) / per, tms = median(trans.ms) / per;
  emit({
    name: matmulName(s),
    ms: r3(ms),
    gflops: gflops(flop, ms),
    role: s.role,
    flop,
    variant,
    trans: s.trans === "A" ? "Aᵀ·B" : "A·Bᵀ",
    trans_variant: transVariant,
    trans_ms: r3(tms),
    trans_gflops: gflops(flop, tms),
    warmup_ms: r3(plain.warmup),
    reps,
    products_per_rep: per,
  });
}

async function benchAttention(key: string, reps: number): Promise<void> {
  const { B, N, D, heads } = ATTENTION[key];
  const q = randomNormal([B, N, D], 11), k = randomNormal([B, N, D], 12);
  const v = randomNormal([B, N, D], 13), dout = randomNormal([B, N, D], 14);
  for (const t of [q, k, v]) t.requiresGrad = true;
  const dropGrads = () => {
    for (const t of [q, k, v]) {
      t.grad?.dispose();
      t.grad = null;
    }
  };
  // forward alone (with its log-sum-exp saved, as in training), then forward + backward
  const variants = await variantsOf(() =>
    tidy(() => backward(attention(q, k, v, { heads }), dout))
  );
  dropGrads();
  const fwd = await timeReps(reps, () =>
    tidy(() => {
      attention(q, k, v, { heads });
      clearTape();
    }));
  const both = await timeReps(reps, () => {
    tidy(() => backward(attention(q, k, v, { heads }), dout));
    dropGrads();
  });
  for (const t of [q, k, v, dout]) t.dispose();
  const fwdFlop = 4 * B * N * N * D;
  const ms = median(both.ms), fms = median(fwd.ms);
  emit({
    name: `attention/fwd+bwd/${key}`,
    ms: r3(ms),
    gflops: gflops(3 * fwdFlop, ms),
    shape: { B, N, D, heads },
    flop: 3 * fwdFlop,
    // the backward recomputes the scores: 4 (forward) + 6 (dQ) + 8 (dK, dV) products of 2·B·N²·D
    flop_executed: 18 * B * N * N * D,
    gflops_executed: gflops(18 * B * N * N * D, ms),
    fwd_ms: r3(fms),
    fwd_gflops: gflops(fwdFlop, fms),
    bwd_ms: r3(ms - fms),
    variants,
    warmup_ms: r3(both.warmup + fwd.warmup),
    reps,
  });
}

/** A fixed batch of digits with captions ("seven" or "7"), a share of them dropped. */
function textCondition(c: ModelConfig, B: number, seed: number, pDrop: number): Condition {
  const rng = mulberry32(seed);
  const labels = Array.from({ length: B }, () => Math.floor(rng() * 10));
  const { tokens, mask } = tokenize(labels.map((l) => captionFor(l, rng)), c.text_len);
  const drop = Uint8Array.from({ length: B }, () => (rng() < pDrop ? 1 : 0));
  return { kind: "text", tokens, mask, drop };
}

interface PhaseTimes {
  fwd: number[];
  fwdBwd: number[];
  optim: number[];
}

async function benchTrain(
  key: string,
  reps: number,
  wantTime: boolean,
  wantMemory: boolean,
  wantProfile: boolean,
  phases: boolean,
): Promise<void> {
  const { config: c, batch: B, lr, warmup } = MODELS[key];
  const S = c.image_size, C = c.in_channels;
  const schedule: Schedule = linearSchedule(1000);
  const model = PixArt.init(c, 0);
  const params = model.params.tensors();
  const opt = new Adam(params, {
    lr,
    betas: [0.9, 0.99],
    warmupSteps: warmup,
    clipNorm: 1.0,
  });
  const rng = mulberry32(7);
  const images = Float32Array.from({ length: B * C * S * S }, () => rng() * 2 - 1);
  const ts = Int32Array.from({ length: B }, () => Math.floor(rng() * schedule.T));
  const cond = textCondition(c, B, 3, 0.2);
  const keepP = 1 - c.drop_path;
  const dropKeep = Array.from(
    { length: c.depth * 2 },
    () => Float32Array.from({ length: B }, () => (rng() < keepP ? 1 / keepP : 0)),
  );
  let rep = 0;
  /** Records forward and loss (as train.ts does); the tape is left for backward(). */
  const forwardLoss = () => {
    const x0 = tensor(images, [B, C, S, S]);
    const noise = new Generator(mixSeed(0, rep++, 0xe95)).normal([B, C, S, S]);
    return epsLoss(
      schedule,
      (xt, tt) =>
        model.forward(xt, tt, cond, {
          dropPathKeep: (i, br) => tensor(dropKeep[i * 2 + br], [B]),
        }),
      x0,
      ts,
      noise,
    );
  };
  const paramSet = new Set(params);
  // the trainer's step (kernels/train_step.ts): forward, loss, backward, Adam, EMA
  const ema = new Ema(params, 0.999);
  const lastLoss = empty([1]).keep();
  // what the tape holds for backward, and what the pool holds, between forward and backward
  let savedBytes = 0, afterForward = 0, taken = 0;
  const step = () => {
    zero(lastLoss);
    trainStep(
      () => {
        const loss = forwardLoss();
        savedBytes = tapeSavedBytes(paramSet);
        afterForward = pool.stats.inUseBytes;
        return loss;
      },
      taken++,
      { opt, ema, lossSum: lastLoss },
    );
  };

  progress(`${key} training step: warm-up (compiles the shaders)`);
  await sync();
  let t0 = performance.now();
  const variants = await variantsOf(step);
  const compile = lastWarmUp!;
  step();
  await sync();
  const warmupMs = performance.now() - t0;
  progress(`${key} training step: warm-up took ${(warmupMs / 1000).toFixed(1)} s`);

  const ms: number[] = [], host: number[] = [];
  // where the time goes: forward + loss alone, forward + loss + backward, and the optimiser alone
  // (on the gradients that backward left), each rep right after a full step so that both see
  // the same load on the machine
  const ph: PhaseTimes = { fwd: [], fwdBwd: [], optim: [] };
  let peak = 0, before = 0, dispatches = 0, submits = 0, saved = 0, forwardHeld = 0;
  const timedReps = wantTime || wantMemory ? reps : 0;
  for (let r = 0; r < timedReps; r++) {
    await sync();
    pool.resetPeak();
    before = pool.stats.inUseBytes;
    const d0 = counters.dispatches, s0 = counters.submits;
    t0 = performance.now();
    step();
    host.push(performance.now() - t0);
    await sync();
    ms.push(performance.now() - t0);
    dispatches = counters.dispatches - d0;
    submits = counters.submits - s0;
    if (pool.stats.peakInUseBytes >= peak) {
      peak = pool.stats.peakInUseBytes;
      saved = savedBytes;
      forwardHeld = afterForward;
    }
    if (!phases || !wantTime) continue;
    t0 = performance.now();
    tidy(() => {
      forwardLoss();
      clearTape();
    });
    await sync();
    ph.fwd.push(performance.now() - t0);
    t0 = performance.now();
    tidy(() => backward(forwardLoss()));
    await sync();
    ph.fwdBwd.push(performance.now() - t0);
    t0 = performance.now();
    tidy(() => opt.step());
    await sync();
    ph.optim.push(performance.now() - t0);
    opt.zeroGrad();
  }
  const loss = taken ? (await lastLoss.read())[0] : null;

  const fwd = forwardFlops(c, B);
  const flop = 3 * fwd.total;
  const med = median(ms);
  const nParams = model.params.count();
  if (wantTime) {
    const line: Line = {
      name: `train_step/${key}`,
      ms: r3(med),
      gflops: gflops(flop, med),
      flop,
      gflop: r3(flop / 1e9),
      fwd_gflop: r3(fwd.total / 1e9),
      fwd_gflop_split: fwd.split,
      model: modelSummary(c, B),
      params: nParams,
      host_ms: r3(median(host)),
      dispatches,
      submits,
      warmup_ms: r3(warmupMs),
      warmup_kernels: compile.kernels,
      warmup_compiled: compile.compiled,
      warmup_tuned: compile.tuned,
      variants,
      loss: loss === null ? null : r3(loss),
      reps,
    };
    if (ph.fwd.length) {
      const f = median(ph.fwd), fb = median(ph.fwdBwd);
      Object.assign(line, {
        fwd_ms: r3(f),
        fwd_gflops: gflops(fwd.total, f),
        bwd_ms: r3(fb - f),
        bwd_gflops: gflops(2 * fwd.total, fb - f),
        optim_ms: r3(median(ph.optim)),
      });
    }
    emit(line);
  }
  if (wantMemory) {
    // parameters, Adam's two moments and the gradients, 4 bytes each
    const state = 4 * 4 * nParams;
    const required = state + saved;
    emit({
      name: `memory/train_step/${key}`,
      ms: r3(med),
      gflops: null,
      peak_in_use_mb: MB(peak),
      required_mb: MB(required),
      ratio: r3(peak / required),
      params_moments_grads_mb: MB(state),
      activations_mb: MB(saved),
      params_mb: MB(4 * nParams),
      peak_over_state: r3(peak / state),
      in_use_before_step_mb: MB(before),
      // in use between forward and backward: the state, the saved activations, the intermediates
      // that no backward reads (they live until the step's scope ends) and size-class rounding
      in_use_after_forward_mb: MB(forwardHeld),
      pool_allocated_mb: MB(pool.stats.allocatedBytes),
      pool_buffers: pool.stats.buffers,
    });
  }
  if (wantProfile) await profileStep(`profile/train_step/${key}`, step);
  lastLoss.dispose();
  ema.dispose();
  opt.dispose();
  model.dispose();
  pool.trim();
}

/** sample_step ms per model, for the f16 variant's ratio in the same run */
const sampleMs = new Map<string, number>();

async function benchSample(
  key: string,
  reps: number,
  wantTime: boolean,
  wantProfile: boolean,
  half = false,
): Promise<void> {
  const { config: c } = MODELS[key];
  const B = SAMPLE_BATCH, S = c.image_size, C = c.in_channels;
  const model = PixArt.init(c, 0);
  if (half) {
    // as exported by `deno task export`: weights rounded to f16, so sampling packs them
    const names: string[] = [];
    for (const [name, p] of model.params.map) {
      p.write((await p.read()).map(roundToHalf));
      if (p.rank === 2) names.push(name);
    }
    model.halfExact = new Set(names);
  }
  const name = `sample_step/${key}${half ? "/f16" : ""}`;
  const cond = textCondition(c, B, 5, 0);
  const eps = model.guidedEps(cond, GUIDANCE);
  const x = randomNormal([B, C, S, S], 21);
  progress(`${key} sampling step: warm-up`);
  let peak = 0;
  const one = () => {
    tidy(() => {
      noGrad(() => eps(x, 500));
    });
  };
  // a throwaway ε for the dry run: it would cache an unwritten caption path and packed weights
  const dry = model.guidedEps(cond, GUIDANCE);
  const variants = await variantsOf(() => tidy(() => noGrad(() => dry(x, 500))));
  dry.dispose();
  const res = await timeReps(wantTime ? reps : 0, () => {
    pool.resetPeak();
    one();
    peak = Math.max(peak, pool.stats.peakInUseBytes);
  });
  if (wantProfile) await profileStep(`profile/${name}`, one);
  eps.dispose();
  x.dispose();
  model.dispose();
  pool.trim();
  if (!wantTime) return;
  const fwd = forwardFlops(c, 2 * B);
  // the caption path (text encoder, cross-attention K/V) ran once, at the warm-up, as in sampling
  const flop = fwd.total - fwd.caption;
  const med = median(res.ms);
  const base = half ? sampleMs.get(key) : undefined;
  if (!half) sampleMs.set(key, med);
  emit({
    name,
    ms: r3(med),
    ...(half ? { weights: "f16, packed" } : {}),
    ...(base ? { speedup_vs_f32: r3(base / med) } : {}),
    gflops: gflops(flop, med),
    flop,
    gflop: r3(flop / 1e9),
    gflop_split: fwd.split,
    caption_gflop_once: r3(fwd.caption / 1e9),
    batch: B,
    forward_batch: 2 * B,
    guidance: GUIDANCE,
    model: modelSummary(c, 2 * B),
    peak_in_use_mb: MB(peak),
    warmup_ms: r3(res.warmup),
    variants,
    reps,
  });
}

function modelSummary(c: ModelConfig, B: number): string {
  return `${c.image_size}x${c.image_size}x${c.in_channels} patch ${c.patch_size} D ${c.hidden_size} ` +
    `depth ${c.depth} heads ${c.num_heads} mlp x${c.mlp_ratio} text ${c.text_len}x${c.text_width} ` +
    `depth ${c.text_depth} heads ${c.text_heads} batch ${B}`;
}

// ---- main ---------------------------------------------------------------------------------------

await runTask(async () => {
  const a = parseCli(Deno.args, {
    only: { type: "string", multiple: true },
    reps: { type: "string" },
    "skip-seed": { type: "boolean" },
    tune: { type: "boolean" },
    list: { type: "boolean" },
  }, USAGE);
  if (a.list) {
    console.log(ALL_NAMES.join("\n"));
    return;
  }
  const repsFlag = intFlag(a.reps, "reps");
  if (repsFlag === 0) fail("--reps must be at least 1");
  const reps = repsFlag ?? 5;
  const seedReps = repsFlag ?? 1;
  const want = select((a.only as string[]) ?? [], !!a["skip-seed"]);
  if (a.tune) Deno.env.set("PIXART_TUNE", "always");

  if (want.has("adapter")) {
    const d = deviceInfo();
    emit({
      name: "adapter",
      ms: r3(performance.now() - T0),
      gflops: null,
      adapter: d.adapter,
      fallback: d.fallback,
      features: d.features,
      timestamp_query: d.timestampQuery,
      shader_f16: d.shaderF16,
      subgroups: d.subgroups,
      deno: Deno.version.deno,
      cpus: navigator.hardwareConcurrency,
      // other processes on the machine slow every measurement down
      load_avg: Deno.loadavg().map(r3),
    });
  }
  for (const s of MATMULS) if (want.has(matmulName(s))) await benchMatmul(s, reps);
  for (const key of Object.keys(ATTENTION)) {
    if (want.has(`attention/fwd+bwd/${key}`)) await benchAttention(key, reps);
  }
  for (const key of Object.keys(MODELS)) {
    const seed = key === "seed";
    const r = seed ? seedReps : reps;
    const time = want.has(`train_step/${key}`), mem = want.has(`memory/train_step/${key}`);
    const prof = want.has(`profile/train_step/${key}`);
    if (time || mem || prof) await benchTrain(key, r, time, mem, prof, !seed);
    const sample = want.has(`sample_step/${key}`);
    const sampleProf = want.has(`profile/sample_step/${key}`);
    if (sample || sampleProf) await benchSample(key, r, sample, sampleProf);
    const half = want.has(`sample_step/${key}/f16`);
    const halfProf = want.has(`profile/sample_step/${key}/f16`);
    if (half || halfProf) await benchSample(key, r, half, halfProf, true);
  }
  for (const [k, v] of chosenVariants()) chosenForReport.set(k, v);
  const choices: Record<string, unknown> = {};
  for (const [k, v] of [...chosenForReport].sort()) {
    const [family, ...shape] = k.split(":");
    const timed = rememberedChoice(family, shape.join(":"))?.ms;
    choices[k] = timed ? { variant: v, ms: timed } : v;
  }
  emit({
    name: "variants",
    ms: null,
    gflops: null,
    adapter: deviceInfo().adapter,
    tuning: tuningEnabled(),
    choices,
  });
  progress(
    `done in ${((performance.now() - T0) / 1000).toFixed(1)} s, ${compiledKernelCount()} kernels`,
  );
});
