// The matrix products and attentions of a model, alone: with the variant the adapter chooses, or
// every variant in turn (the GPU suite: which one wins at which shape).

import {
  attention,
  ATTENTION_VARIANTS,
  backward,
  clearTape,
  matmul,
  MATMUL_VARIANTS,
  matmulVariantSupported,
  randomNormal,
  type Tensor,
  tensor,
  tidy,
  withKernelVariant,
} from "../kernels/mod.ts";
import { type BenchRun, gflops, median, r3, timeReps } from "./measure.ts";
import type { AttentionShape, MatmulShape } from "./subjects.ts";

/** "chosen": the adapter's variant for each shape; "every": each variant that can run it. */
export type VariantMode = "chosen" | "every";

/** Times `body` per variant ("every") or as chosen; returns ms per variant and the chosen one. */
async function timeVariants(
  run: BenchRun,
  family: string,
  variants: readonly string[],
  mode: VariantMode,
  body: () => void,
  per = 1,
): Promise<{ ms: Record<string, number>; chosen: string; warmupMs: number }> {
  const ranAs = (v: Record<string, string>) =>
    Object.entries(v).find(([k]) => k.startsWith(`${family}:`))?.[1];
  const chosen = ranAs((await run.warmUp(body)).variants) ?? "?";
  const ms: Record<string, number> = {};
  let warmupMs = 0;
  const todo = mode === "every" ? variants : [chosen];
  for (const variant of todo) {
    const forced = () => withKernelVariant(family, variant, body);
    // a variant that cannot run this shape runs the default instead: not this variant's time
    if (mode === "every" && ranAs((await run.warmUp(forced)).variants) !== variant) continue;
    const t = await timeReps(run.o.reps, mode === "every" ? forced : body);
    ms[variant] = r3(median(t.ms) / per);
    warmupMs += t.warmup;
  }
  return { ms, chosen, warmupMs };
}

const fastest = (ms: Record<string, number>) =>
  Object.entries(ms).sort((a, b) => a[1] - b[1])[0] ?? [null, NaN];

/** A product as the model makes it (several per timed rep on small shapes; ms is per product). */
export async function benchMatmul(
  run: BenchRun,
  name: string,
  s: MatmulShape,
  mode: VariantMode,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const { M, K, N } = s;
  const flop = 2 * M * K * N;
  const a = s.layout === "TN" ? randomNormal([K, M], 1) : randomNormal([M, K], 1);
  const b = s.layout === "NT" ? randomNormal([N, K], 2) : randomNormal([K, N], 2);
  const opts = s.layout === "NT" ? { transB: true } : s.layout === "TN" ? { transA: true } : {};
  // waiting for the queue costs ~10 ms on some adapters (lavapipe under Deno): several products
  // per rep keep it out of each product's time
  const per = Math.min(16, Math.max(1, Math.ceil(8e9 / flop)));
  const body = () => {
    for (let i = 0; i < per; i++) matmul(a, b, opts).dispose();
  };
  const variants = Object.keys(MATMUL_VARIANTS).filter(matmulVariantSupported);
  const t = await timeVariants(run, "matmul", variants, mode, body, per);
  a.dispose();
  b.dispose();
  const [best, ms] = mode === "every" ? fastest(t.ms) : [t.chosen, t.ms[t.chosen]];
  run.emit({
    name,
    ms: Number.isFinite(ms) ? ms : null,
    gflops: Number.isFinite(ms) ? gflops(flop, ms) : null,
    role: s.role,
    shape: `${s.layout} ${M}x${K}x${N}`,
    flop,
    variant: t.chosen,
    ...(mode === "every"
      ? {
        fastest: best,
        variants_ms: t.ms,
        variants_gflops: Object.fromEntries(
          Object.entries(t.ms).map(([v, m]) => [v, gflops(flop, m)]),
        ),
      }
      : {}),
    warmup_ms: r3(t.warmupMs),
    reps: run.o.reps,
    products_per_rep: per,
    ...extra,
  });
}

/** Attention forward (sampling) or forward + backward (training) at one shape. */
export async function benchAttention(
  run: BenchRun,
  name: string,
  s: AttentionShape,
  mode: VariantMode,
  extra: Record<string, unknown> = {},
): Promise<void> {
  const { B, Nq, Nk, D, heads } = s;
  const q = randomNormal([B, Nq, D], 11), k = randomNormal([B, Nk, D], 12);
  const v = randomNormal([B, Nk, D], 13), dout = randomNormal([B, Nq, D], 14);
  // a caption mask with the last quarter of the keys padding
  const mask = s.mask
    ? tensor(
      Float32Array.from({ length: B * Nk }, (_, i) => (i % Nk < Math.ceil(0.75 * Nk) ? 1 : 0)),
      [
        B,
        Nk,
      ],
    )
    : null;
  const leaves = [q, k, v];
  for (const t of leaves) t.requiresGrad = s.backward;
  const dropGrads = () => {
    for (const t of leaves) {
      t.grad?.dispose();
      t.grad = null;
    }
  };
  const body = s.backward
    ? () => {
      tidy(() => backward(attention(q, k, v, { heads, mask }), dout));
      dropGrads();
    }
    : () =>
      tidy(() => {
        attention(q, k, v, { heads, mask });
        clearTape();
      });
  const t = await timeVariants(run, "attention", ATTENTION_VARIANTS, mode, body);
  for (const x of [q, k, v, dout, mask] as (Tensor | null)[]) x?.dispose();
  const fwdFlop = 4 * B * Nq * Nk * D;
  // the backward recomputes the scores: 4 (forward) + 6 (dQ) + 8 (dK, dV) products of 2·B·N²·D
  const flop = s.backward ? 3 * fwdFlop : fwdFlop;
  const [best, ms] = mode === "every" ? fastest(t.ms) : [t.chosen, t.ms[t.chosen]];
  run.emit({
    name,
    ms: Number.isFinite(ms) ? ms : null,
    gflops: Number.isFinite(ms) ? gflops(flop, ms) : null,
    role: s.role,
    shape: { B, Nq, Nk, D, heads, mask: s.mask },
    pass: s.backward ? "forward+backward" : "forward",
    flop,
    ...(s.backward ? { flop_executed: 18 * B * Nq * Nk * D } : {}),
    variant: t.chosen,
    ...(mode === "every" ? { fastest: best, variants_ms: t.ms } : {}),
    warmup_ms: r3(t.warmupMs),
    reps: run.o.reps,
    ...extra,
  });
}
