// deno task bench — kernel and model timings of the shipped configs, one JSON line per
// measurement on stdout and a summary table on stderr. The measurements live in bench/; this
// file picks a suite, selects by name and prints.

import { deviceInfo, isCpuAdapter, rememberedChoice, tuningEnabled } from "../kernels/mod.ts";
import { compiledKernelCount } from "../kernels/runtime.ts";
import { BenchRun, type Line, r3 } from "../bench/measure.ts";
import { benchAttention, benchMatmul, type VariantMode } from "../bench/kernels.ts";
import { benchGrid, benchSample, benchTrain } from "../bench/steps.ts";
import { benchFineTune, FINE_TUNES } from "../bench/fine_tune.ts";
import {
  attentionId,
  attentionShapes,
  matmulShapes,
  shippedConfigs,
  type Subject,
  subject,
} from "../bench/subjects.ts";
import { markdown } from "./table.ts";
import { fail, intFlag, parseCli, runTask } from "./cli.ts";

const USAGE = `
Benchmarks the kernels and the models of the shipped configs (configs/*.yaml); prints one JSON
line per measurement on stdout, {"name": …, "ms": median ms, "gflops": from the FLOP count or
null, …}, and a summary table on stderr.

  deno task bench [flags]

  --suite NAME   cpu (default): the CPU adapter's measurements of small_stage2, emoji_stage2
                 and pixart_alpha (the lesson's model; its steps take minutes here);
                 gpu: every shipped config except tiny, every matmul and attention variant at
                 each config's shapes, and a 64-image grid of each, within --minutes
  --short        every measurement of the suite at a size that runs in seconds (each model cut to
                 one block, batch 2, one rep, a 2-image grid of 2 steps): checks the suite runs
  --config NAME  only this config's measurements (repeatable)
  --only NAME    run only the measurements named NAME (an exact name, else every name that
                 contains NAME); repeatable
  --reps N       timed repetitions per measurement (default 5, gpu 3; the slow configs' steps
                 1), after one untimed warm-up
  --skip-slow    skip the model steps of pixart_alpha in the cpu suite (minutes per step)
  --minutes M    start no measurement after M minutes (gpu default 9: the suite ends within 10)
  --tune         time every kernel variant for each shape first (as a GPU does on first use;
                 PIXART_TUNE=always) and remember the choices; default: the adapter's usual
                 behaviour (CPU adapters use their default variants)
  --list         print the measurement names and exit

Measurements, for each config C of the suite:
  adapter                       the adapter, its features, Deno, CPUs, the load average
  matmul/1024x1024x1024         (cpu) the square product
  matmul/C/ROLE                 the products of C's blocks: dd (D→D: q, k, v, proj, cross q and
                                proj), dh (mlp.fc1), hd (mlp.fc2), each as forward (x·Wᵀ), dx
                                (dY·W), dw (dYᵀ·X) at the training batch and as sampling's
                                forward at 2×64 images; kv_fwd, the caption K/V pieces
  attention/C/self, /cross, /self_sampling   forward+backward at the training batch; forward at 2×64
  train_step/C                  forward, ε-MSE loss (C's min-SNR weighting), backward, Adam with
                                clipping, EMA; with fwd/bwd/optim phases on the cpu suite
  memory/train_step/C           the pool's peak in-use bytes during a step against the required
                                bytes: parameters + Adam moments + gradients + the activations
                                the autograd tape saves for backward; "ratio" is peak / required
  profile/train_step/C, profile/sample_step/C   (cpu) the share of GPU time per op family, from a
                                timestamp query around every dispatch
  fine_tune/C/full, /full+checkpoint, /lora, /lora+checkpoint   (cpu, not pixart_alpha)
                                a training step with every weight trained or a LoRA adapter
                                (the config's lora section) on the frozen model, with and without
                                train.checkpoint_blocks: the pool's peak and the time, alternated
                                in every rep, with their ratios to "full" in the same rep
  sample_step/C                 one guided step on 64 images (both branches in one batch of 128);
                                the caption path runs once per sampling run, as in sampling
  sample_step/C/f16             the same with the weights rounded to f16 as "deno task export"
                                writes them ("speedup_vs_f32")
  grid/C                        64 images with the sampler, steps and guidance of C's sample
                                section, warm-up included
  variants                      (last) every shape's variant, with the adapter's remembered timings
In the gpu suite matmul and attention lines time every variant that can run the shape
("variants_ms", "fastest"). FLOPs of model steps count matmuls and attention only; a training step
is counted as 3 × its forward. MB = 2^20 bytes.
`;

/** A measurement of the plan: its names (a training step also reports memory and a profile). */
interface Job {
  names: string[];
  run: (want: Set<string>) => Promise<void>;
}

const CPU_CONFIGS = ["small_stage2", "emoji_stage2", "pixart_alpha"];
/** The cpu suite's configs whose model steps take minutes on a CPU adapter. */
const SLOW = ["pixart_alpha"];

function plan(
  run: BenchRun,
  suite: "cpu" | "gpu",
  subjects: Subject[],
  skipSlow: boolean,
): Job[] {
  const jobs: Job[] = [{ names: ["adapter"], run: () => Promise.resolve(adapterLine(run)) }];
  const gpu = suite === "gpu";
  const mode: VariantMode = gpu ? "every" : "chosen";
  const kernelJobs: Job[] = [];
  if (!gpu) {
    const sq = { M: 1024, K: 1024, N: 1024, layout: "NT" as const, role: "square", id: "" };
    const name = "matmul/1024x1024x1024";
    kernelJobs.push({ names: [name], run: () => benchMatmul(run, name, sq, mode) });
  }
  for (const s of subjects) {
    for (const m of matmulShapes(s)) {
      const name = `matmul/${s.name}/${m.id}`;
      kernelJobs.push({
        names: [name],
        run: () => benchMatmul(run, name, m, mode, { config: s.name }),
      });
    }
    for (const a of attentionShapes(s)) {
      const name = `attention/${s.name}/${attentionId(a)}`;
      kernelJobs.push({
        names: [name],
        run: () => benchAttention(run, name, a, mode, { config: s.name }),
      });
    }
  }
  const stepJobs: Job[] = [];
  for (const s of subjects) {
    if (!gpu && skipSlow && SLOW.includes(s.name)) continue;
    const slow = !gpu && SLOW.includes(s.name) && !s.short;
    const reps = slow ? 1 : run.o.reps;
    const train = [`train_step/${s.name}`, `memory/train_step/${s.name}`];
    if (!gpu && !slow) train.push(`profile/train_step/${s.name}`);
    stepJobs.push({
      names: train,
      run: (want) =>
        benchTrain(run, s, {
          time: want.has(train[0]),
          memory: want.has(train[1]),
          profile: want.has(`profile/train_step/${s.name}`),
          phases: !gpu && !slow,
          reps,
        }),
    });
    const sample = [`sample_step/${s.name}`, `sample_step/${s.name}/f16`];
    if (!gpu && !slow) sample.push(`profile/sample_step/${s.name}`);
    stepJobs.push({
      names: sample,
      run: async (want) => {
        const prof = want.has(`profile/sample_step/${s.name}`);
        const time = want.has(sample[0]);
        const f32 = time || prof
          ? await benchSample(run, s, { time, profile: prof, half: false, reps })
          : undefined;
        if (want.has(sample[1])) {
          await benchSample(run, s, { time: true, profile: false, half: true, reps }, f32);
        }
      },
    });
    if (gpu || s.name === "small_stage2") {
      stepJobs.push({ names: [`grid/${s.name}`], run: () => benchGrid(run, s) });
    }
    if (!gpu && !slow) {
      const tunes = FINE_TUNES.map((k) => `fine_tune/${s.name}/${k}`);
      stepJobs.push({
        names: tunes,
        run: (want) =>
          benchFineTune(run, s, new Set(FINE_TUNES.filter((_, i) => want.has(tunes[i]))), reps),
      });
    }
  }
  // on a GPU the model steps first: the variant sweeps are what a short budget cuts
  return gpu ? [...jobs, ...stepJobs, ...kernelJobs] : [...jobs, ...kernelJobs, ...stepJobs];
}

function adapterLine(run: BenchRun): void {
  const d = deviceInfo();
  run.emit({
    name: "adapter",
    ms: r3(run.elapsed()),
    gflops: null,
    adapter: d.adapter,
    fallback: d.fallback,
    cpu_adapter: isCpuAdapter(),
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

/** The names to run: for each pattern its exact name if there is one, else every name containing it. */
function select(all: string[], patterns: string[]): Set<string> {
  if (!patterns.length) return new Set(all);
  const chosen = new Set<string>();
  for (const p of patterns) {
    const hits = all.includes(p) ? [p] : all.filter((n) => n.includes(p));
    if (!hits.length) fail(`--only '${p}' matches no measurement (see --list)`);
    for (const h of hits) chosen.add(h);
  }
  return chosen;
}

/** The summary: one row per line, what it measured in a few words. */
function summary(lines: Line[]): string {
  const note = (l: Line): string => {
    if (l.skipped) return `skipped: ${l.skipped}`;
    if (l.name === "adapter") return `${l.adapter}${l.shader_f16 ? ", shader-f16" : ""}`;
    const shape = typeof l.shape === "string" ? ` (${l.shape})` : "";
    if (l.fastest) return `fastest ${l.fastest}${shape}`;
    if (l.ratio !== undefined) return `peak ${l.peak_in_use_mb} MB / needs ${l.required_mb} MB`;
    if (l.peak_vs_full !== undefined) {
      return `peak ${l.peak_in_use_mb} MB: ${l.peak_vs_full}× full's, time ${l.ms_vs_full}×`;
    }
    if (l.speedup_vs_f32) return `${l.speedup_vs_f32}× the f32 step`;
    if (l.images) return `${l.images} images, ${l.sampler} ${l.steps} steps`;
    if (l.families) return `matmul ${(l.families as Record<string, number>).matmul}% of GPU time`;
    if (l.variant) return `${l.variant}${shape}`;
    return "";
  };
  const rows = lines.filter((l) => l.name !== "variants").map((l) => [
    l.name,
    l.ms === null ? "" : String(l.ms),
    l.gflops === null ? "" : String(l.gflops),
    note(l),
  ]);
  return markdown(["measurement", "ms", "GFLOP/s", "note"], rows);
}

await runTask(async () => {
  const a = parseCli(Deno.args, {
    suite: { type: "string" },
    short: { type: "boolean" },
    config: { type: "string", multiple: true },
    only: { type: "string", multiple: true },
    reps: { type: "string" },
    "skip-slow": { type: "boolean" },
    minutes: { type: "string" },
    tune: { type: "boolean" },
    list: { type: "boolean" },
  }, USAGE);
  const suite = (a.suite as string | undefined) ?? "cpu";
  if (suite !== "cpu" && suite !== "gpu") fail(`--suite must be cpu or gpu, got '${suite}'`);
  const short = !!a.short;
  const shipped = shippedConfigs();
  const configs = (a.config as string[] | undefined) ??
    (suite === "gpu" ? shipped.filter((n) => n !== "tiny") : CPU_CONFIGS);
  for (const c of configs) {
    if (!shipped.includes(c)) {
      fail(`--config '${c}' is not a shipped config: ${shipped.join(", ")}`);
    }
  }
  const repsFlag = intFlag(a.reps, "reps");
  if (repsFlag === 0) fail("--reps must be at least 1");
  const minutes = a.minutes === undefined ? (suite === "gpu" ? 9 : undefined) : Number(a.minutes);
  if (minutes !== undefined && !(minutes > 0)) fail(`--minutes must be a positive number`);
  if (a.tune) Deno.env.set("PIXART_TUNE", "always");

  const run = new BenchRun({
    reps: repsFlag ?? (short ? 1 : suite === "gpu" ? 3 : 5),
    budgetMs: minutes === undefined ? undefined : minutes * 60_000,
  });
  const jobs = plan(run, suite, configs.map((c) => subject(c, short)), !!a["skip-slow"]);
  const all = jobs.flatMap((j) => j.names);
  if (a.list) {
    console.log(all.join("\n"));
    return;
  }
  const want = select(all, (a.only as string[]) ?? []);
  for (const job of jobs) {
    const mine = job.names.filter((n) => want.has(n));
    if (!mine.length || run.outOfTime(mine.join(", "))) continue;
    await job.run(new Set(mine));
  }
  const choices: Record<string, unknown> = {};
  for (const [k, v] of [...run.variantsSeen].sort()) {
    const [family, ...shape] = k.split(":");
    const timed = rememberedChoice(family, shape.join(":"))?.ms;
    choices[k] = timed ? { variant: v, ms: timed } : v;
  }
  run.emit({
    name: "variants",
    ms: null,
    gflops: null,
    adapter: deviceInfo().adapter,
    suite,
    short,
    tuning: tuningEnabled(),
    choices,
  });
  console.error(summary(run.lines));
  run.progress(
    `done in ${(run.elapsed() / 1000).toFixed(1)} s, ${compiledKernelCount()} kernels`,
  );
});
