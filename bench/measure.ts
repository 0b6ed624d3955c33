// What every measurement shares: the JSON line it prints, its median over timed repetitions, the
// kernel variants it ran, and the time left to the suite. One `BenchRun` owns a run's lines and
// the variants seen, so that the summary table and the closing "variants" line read them from it.

import { chosenVariants, sync, warmUp, type WarmUpStats } from "../kernels/mod.ts";

/** One measurement: `ms` the median over the timed repetitions, `gflops` from a FLOP count. */
export type Line =
  & { name: string; ms: number | null; gflops: number | null }
  & Record<
    string,
    unknown
  >;

export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const h = s.length >> 1;
  return s.length % 2 ? s[h] : (s[h - 1] + s[h]) / 2;
}

/** Rounds to 3 decimals (ms, GFLOP/s, MB). */
export const r3 = (x: number): number => Math.round(x * 1000) / 1000;
export const gflops = (flop: number, ms: number): number => r3(flop / ms / 1e6);
export const MB = (bytes: number): number => r3(bytes / 2 ** 20);

export interface Timing {
  /** the untimed first run (shader compiles, first allocations) */
  warmup: number;
  ms: number[];
}

/** Runs `body` once untimed, then `reps` times between two syncs; returns each rep's ms. */
export async function timeReps(reps: number, body: () => void): Promise<Timing> {
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

/** What a warm-up compiled and which variant each "family:shape" of its step ran. */
export interface WarmedUp {
  variants: Record<string, string>;
  stats: WarmUpStats;
}

/** A run of measurements: where its lines go, and the time it may take. */
export class BenchRun {
  readonly lines: Line[] = [];
  /** every "family:shape" → variant that a measurement ran, for the closing line */
  readonly variantsSeen: Map<string, string> = new Map();
  readonly t0: number = performance.now();

  constructor(
    readonly o: {
      /** timed repetitions per measurement */
      reps: number;
      /** stop starting measurements after this many ms (the rest print "skipped") */
      budgetMs?: number;
      print?: (line: string) => void;
      progress?: (msg: string) => void;
    },
  ) {}

  emit(line: Line): void {
    this.lines.push(line);
    (this.o.print ?? console.log)(JSON.stringify(line));
  }

  progress(msg: string): void {
    (this.o.progress ?? ((m: string) => console.error(`bench: ${m}`)))(msg);
  }

  /** ms since the run started */
  elapsed(): number {
    return performance.now() - this.t0;
  }

  /** Whether the time budget is spent; if so, emits `name` as skipped. */
  outOfTime(name: string): boolean {
    if (this.o.budgetMs === undefined || this.elapsed() < this.o.budgetMs) return false;
    this.emit({ name, ms: null, gflops: null, skipped: "the suite's time budget is spent" });
    return true;
  }

  /**
   * Compiles (and, where tuning is on, times the variants of) what `body` dispatches; returns the
   * variants it runs and the warm-up's counts.
   */
  async warmUp(body: () => void): Promise<WarmedUp> {
    const before = chosenVariants(true);
    const stats = await warmUp(body);
    const mine = chosenVariants();
    for (const [k, v] of before) if (!mine.has(k)) this.variantsSeen.set(k, v);
    for (const [k, v] of mine) this.variantsSeen.set(k, v);
    return { variants: Object.fromEntries(mine), stats };
  }
}
