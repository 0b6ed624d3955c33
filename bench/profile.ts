// GPU time per op family: one step with a timestamp query around every dispatch.

import { counters, deviceInfo, startProfile, stopProfile, sync } from "../kernels/mod.ts";
import { type BenchRun, r3 } from "./measure.ts";

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
export function family(kernel: string): string {
  for (const [f, re] of FAMILIES) if (re.test(kernel)) return f;
  return "other";
}

const TOP_KERNELS = 10;

/**
 * Runs `body` once with every dispatch timed and emits the share of GPU time per family. The
 * profiler gives each dispatch its own pass, which serialises the work: the shares are what to
 * read, not the sum (compare `gpu_ms` with the unprofiled step's `ms`).
 */
export async function profileStep(run: BenchRun, name: string, body: () => void): Promise<void> {
  if (!deviceInfo().timestampQuery) {
    run.emit({
      name,
      ms: null,
      gflops: null,
      skipped: "the adapter has no timestamp-query feature",
    });
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
  run.emit({
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
