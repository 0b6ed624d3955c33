// A small line plot rendered straight to pixels (no font files): the training loss curve, a
// run's prompt accuracy by step, an evaluation's accuracy and FID by guidance, and by sampler
// steps over several seeds.

import { writePng } from "./png.ts";

// 3×5 glyphs, rows top to bottom, 3 bits each (4 = left pixel)
const GLYPHS: Record<string, number[]> = {
  "0": [7, 5, 5, 5, 7],
  "1": [2, 6, 2, 2, 7],
  "2": [7, 1, 7, 4, 7],
  "3": [7, 1, 7, 1, 7],
  "4": [5, 5, 7, 1, 1],
  "5": [7, 4, 7, 1, 7],
  "6": [7, 4, 7, 5, 7],
  "7": [7, 1, 1, 1, 1],
  "8": [7, 5, 7, 5, 7],
  "9": [7, 5, 7, 1, 7],
  ".": [0, 0, 0, 0, 2],
  "-": [0, 0, 7, 0, 0],
  "k": [4, 5, 6, 5, 5],
  "s": [3, 4, 2, 1, 6],
  "t": [2, 7, 2, 2, 1],
  "e": [2, 5, 7, 4, 3],
  "p": [6, 5, 6, 4, 4],
  "l": [4, 4, 4, 4, 3],
  "o": [0, 2, 5, 5, 2],
  "a": [0, 3, 5, 5, 3],
  "v": [0, 5, 5, 5, 2],
  "g": [3, 5, 3, 1, 6],
  "b": [4, 4, 6, 5, 6],
  "c": [0, 3, 4, 4, 3],
  "d": [1, 1, 3, 5, 3],
  "f": [1, 2, 7, 2, 2],
  "h": [4, 4, 6, 5, 5],
  "i": [2, 0, 2, 2, 2],
  "j": [1, 0, 1, 5, 2],
  "m": [0, 7, 7, 5, 5],
  "n": [0, 6, 5, 5, 5],
  "q": [3, 5, 3, 1, 1],
  "r": [0, 3, 4, 4, 4],
  "u": [0, 5, 5, 5, 3],
  "w": [0, 5, 5, 7, 7],
  "x": [0, 5, 2, 2, 5],
  "y": [5, 5, 3, 1, 6],
  "z": [0, 7, 1, 4, 7],
  "%": [5, 1, 2, 4, 5],
  ":": [0, 2, 0, 2, 0],
  "(": [1, 2, 2, 2, 1],
  ")": [4, 2, 2, 2, 4],
  "/": [1, 1, 2, 4, 4],
  " ": [0, 0, 0, 0, 0],
};

export interface Series {
  x: number[];
  y: number[];
  /** RGB */
  color: [number, number, number];
  /** a vertical bar from lo[i] to hi[i] at each x (a spread) */
  lo?: number[];
  hi?: number[];
  /** shown in a legend at the top right */
  label?: string;
}

class Canvas {
  readonly px: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, c: [number, number, number]): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    this.px.set(c, (y * this.w + x) * 3);
  }
  line(x0: number, y0: number, x1: number, y1: number, c: [number, number, number]): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.set(x0 + (x1 - x0) * i / n, y0 + (y1 - y0) * i / n, c);
  }
  /** text with its top-left corner at (x, y), glyphs scaled by s */
  text(x: number, y: number, str: string, c: [number, number, number], s = 2): void {
    for (const ch of str) {
      const g = GLYPHS[ch] ?? GLYPHS[" "];
      for (let r = 0; r < 5; r++) {
        for (let b = 0; b < 3; b++) {
          if (g[r] & (4 >> b)) {
            for (let dy = 0; dy < s; dy++) {
              for (let dx = 0; dx < s; dx++) this.set(x + b * s + dx, y + r * s + dy, c);
            }
          }
        }
      }
      x += 4 * s;
    }
  }
}

const fmtTick = (v: number) => (v >= 1000 ? `${v / 1000}k` : String(Number(v.toPrecision(3))));

export interface PlotOptions {
  xLabel: string;
  yLabel: string;
  /** a log-10 y axis (default: linear) */
  logY?: boolean;
  /** draw a dot at each point (for a few measured points rather than a curve) */
  dots?: boolean;
}

/** The least and greatest of a non-empty list. */
function extent(v: number[]): [number, number] {
  let lo = Infinity, hi = -Infinity;
  for (const x of v) {
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  return [lo, hi];
}

/** Plots series on a linear x axis and a linear or log-10 y axis; writes a 640×400 PNG. */
export function plot(path: string, series: Series[], o: PlotOptions): void {
  const W = 640, H = 400, L = 70, R = 20, T = 20, B = 50;
  const cv = new Canvas(W, H);
  const xs = series.flatMap((s) => s.x);
  const ys = series.flatMap((s) => [...s.y, ...(s.lo ?? []), ...(s.hi ?? [])])
    .filter((v) => Number.isFinite(v) && (!o.logY || v > 0));
  if (!xs.length || !ys.length) throw new Error("plot: nothing to plot");
  // loops, not Math.min(...xs): a spread of a long log's records overflows the call stack
  const [x0, xMax] = extent(xs), x1 = Math.max(xMax, x0 + 1);
  const [yMin, yMax] = extent(ys);
  const f = o.logY ? Math.log10 : (v: number) => v;
  let y0: number, y1: number;
  if (o.logY) {
    y0 = Math.floor(f(yMin) * 2) / 2;
    y1 = Math.max(Math.ceil(f(yMax) * 2) / 2, y0 + 0.5);
  } else {
    const low = Math.min(0, yMin);
    const span = niceStep((yMax - low) / 5 || 1);
    y0 = Math.floor(low / span) * span;
    y1 = Math.max(Math.ceil(yMax / span) * span, y0 + span);
  }
  const px = (x: number) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = (y: number) => H - B - (f(y) - y0) / (y1 - y0) * (H - T - B);
  const grey: [number, number, number] = [200, 200, 200],
    black: [number, number, number] = [0, 0, 0];
  const ytick = (v: number) => {
    cv.line(L, py(v), W - R, py(v), grey);
    cv.text(L - 8 - 8 * fmtTick(v).length, py(v) - 5, fmtTick(v), black);
  };
  if (o.logY) {
    // decades and their 2× and 5×
    for (let e = Math.floor(y0); e <= Math.ceil(y1); e++) {
      for (const m of [1, 2, 5]) {
        const lv = Math.log10(m * 10 ** e);
        if (lv >= y0 - 1e-9 && lv <= y1 + 1e-9) ytick(m * 10 ** e);
      }
    }
  } else {
    const st = niceStep((y1 - y0) / 5);
    for (let v = y0; v <= y1 + 1e-9; v += st) ytick(Number(v.toPrecision(6)));
  }
  const xstep = niceStep((x1 - x0) / 5);
  for (let v = Math.ceil(x0 / xstep) * xstep; v <= x1 + 1e-9; v += xstep) {
    const t = Number(v.toPrecision(6));
    cv.line(px(t), T, px(t), H - B, grey);
    cv.text(px(t) - 4 * fmtTick(t).length, H - B + 8, fmtTick(t), black);
  }
  cv.line(L, T, L, H - B, black);
  cv.line(L, H - B, W - R, H - B, black);
  cv.text((L + W - R) / 2 - 4 * o.xLabel.length, H - 20, o.xLabel, black);
  cv.text(8, T - 14, o.yLabel, black);
  const ok = (v: number) => Number.isFinite(v) && (!o.logY || v > 0);
  for (const s of series) {
    for (let i = 0; i < s.x.length; i++) {
      if (i > 0 && ok(s.y[i - 1]) && ok(s.y[i])) {
        cv.line(px(s.x[i - 1]), py(s.y[i - 1]), px(s.x[i]), py(s.y[i]), s.color);
      }
      if (o.dots && ok(s.y[i])) {
        for (let dy = -2; dy <= 2; dy++) {
          for (let dx = -2; dx <= 2; dx++) cv.set(px(s.x[i]) + dx, py(s.y[i]) + dy, s.color);
        }
      }
      const lo = s.lo?.[i], hi = s.hi?.[i];
      if (lo !== undefined && hi !== undefined && ok(lo) && ok(hi)) {
        cv.line(px(s.x[i]), py(lo), px(s.x[i]), py(hi), s.color);
        for (const v of [lo, hi]) cv.line(px(s.x[i]) - 3, py(v), px(s.x[i]) + 3, py(v), s.color);
      }
    }
  }
  series.filter((s) => s.label).forEach((s, k) => {
    const x = W - R - 8 * s.label!.length - 8, y = T + 6 + 16 * k;
    cv.text(x, y, s.label!, s.color);
  });
  writePng(path, W, H, 3, cv.px);
}

/** 1, 2 or 5 times a power of ten, at least `raw`. */
function niceStep(raw: number): number {
  const p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw * 0.999) ?? 10 * p;
}

/** Plots series on a linear x axis and a log-10 y axis; writes a PNG. */
export function plotLogY(path: string, series: Series[], xLabel: string, yLabel: string): void {
  plot(path, series, { xLabel, yLabel, logY: true });
}

/**
 * The records of a training log, none when it is not written yet (a checkpoint saved before the
 * run's first log line). A line that is not JSON (cut short by a crash) is passed over, as
 * trimTrainingLog keeps it: a plot is drawn at every save and must not end the run.
 */
function logRecords<T>(logPath: string): T[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(logPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return [];
    throw e;
  }
  return text.split("\n").filter(Boolean).flatMap((l) => {
    try {
      return [JSON.parse(l) as T];
    } catch {
      return [];
    }
  });
}

/** The loss curve of a training log (train-log.jsonl: the mean loss of each logging window);
 * false when the log has no loss record. */
export function plotTrainingLog(logPath: string, pngPath: string): boolean {
  // evaluation records share the log; only the loss records are plotted here
  const rows = logRecords<{ step: number; loss?: number }>(logPath)
    .filter((r): r is { step: number; loss: number } => typeof r.loss === "number");
  if (!rows.some((r) => r.loss > 0)) return false;
  plotLogY(
    pngPath,
    [{ x: rows.map((r) => r.step), y: rows.map((r) => r.loss), color: [20, 60, 160] }],
    "step",
    "loss",
  );
  return true;
}

/**
 * The prompt accuracy of a training log's evaluations by step (train-log.jsonl records with an
 * `eval`), in percent; false when the log has none.
 */
export function plotEvalAccuracy(logPath: string, pngPath: string): boolean {
  const rows = logRecords<{ step: number; eval?: { accuracy?: number } }>(logPath).filter((r) =>
    typeof r.eval?.accuracy === "number"
  );
  if (!rows.length) return false;
  plot(pngPath, [{
    x: rows.map((r) => r.step),
    y: rows.map((r) => 100 * r.eval!.accuracy!),
    color: [20, 120, 40],
  }], { xLabel: "step", yLabel: "prompt accuracy %", dots: true });
  return true;
}

/**
 * An evaluation's results by guidance scale (eval.json of `deno task eval --sweep`): prompt accuracy
 * in percent to `accuracyPng`, and FID with its real-vs-real floor to `fidPng` (log scale).
 */
export function plotGuidanceSweep(evalJson: string, accuracyPng: string, fidPng: string): void {
  const rep = JSON.parse(Deno.readTextFileSync(evalJson)) as {
    results: { guidance: number; accuracy: number; fid: number; fid_floor: number }[];
  };
  const rs = [...rep.results].sort((a, b) => a.guidance - b.guidance);
  if (rs.length < 2) throw new Error(`${evalJson}: a sweep needs at least two guidance scales`);
  const x = rs.map((r) => r.guidance);
  plot(accuracyPng, [{ x, y: rs.map((r) => 100 * r.accuracy), color: [20, 120, 40] }], {
    xLabel: "guidance",
    yLabel: "prompt accuracy %",
    dots: true,
  });
  plot(fidPng, [
    { x, y: rs.map((r) => r.fid), color: [180, 40, 40] },
    { x, y: rs.map((r) => r.fid_floor), color: [150, 150, 150] },
  ], { xLabel: "guidance", yLabel: "fid (grey: floor)", logY: true, dots: true });
}

/** A sampler's colour in the steps plots. */
const SAMPLER_COLORS: Record<string, [number, number, number]> = {
  "dpm-solver": [20, 60, 160],
  "dpm-solver-3m": [200, 110, 20],
  unipc: [20, 120, 40],
  ddim: [140, 40, 160],
  ancestral: [120, 120, 120],
};

/** The mean of a score over seeds, and its lowest and highest. */
export interface Spread {
  mean: number;
  lo: number;
  hi: number;
}

/** One sampler at one number of steps, over the seeds (eval.json files) that measured it. */
export interface StepSweepRow {
  sampler: string;
  steps: number;
  seeds: number;
  accuracy: Spread;
  fid: Spread;
}

/**
 * The results of eval.json files of `deno task eval --sampler A,B --steps …` (one per seed) by
 * sampler and steps, in the order the samplers first appear, steps ascending.
 */
export function stepSweepRows(evalJsons: string[]): StepSweepRow[] {
  type Row = {
    sampler: string;
    steps: number;
    accuracy: number;
    fid: number;
    guidance?: number;
    seed?: number;
  };
  const rows = evalJsons.flatMap((f) =>
    (JSON.parse(Deno.readTextFileSync(f)) as { results: Row[] }).results
  );
  // the spread is the seeds': other guidance scales, or one seed twice, would pass for seeds
  const scales = [...new Set(rows.map((r) => r.guidance))];
  if (scales.length > 1) {
    throw new Error(
      `${evalJsons.join(", ")}: the evaluations are at guidance ${scales.join(", ")}: plot the ` +
        `files of one guidance scale`,
    );
  }
  const spread = (v: number[]): Spread => {
    const [lo, hi] = extent(v);
    return { mean: v.reduce((s, x) => s + x, 0) / v.length, lo, hi };
  };
  return [...new Set(rows.map((r) => r.sampler))].flatMap((sampler) => {
    const mine = rows.filter((r) => r.sampler === sampler);
    return [...new Set(mine.map((r) => r.steps))].sort((a, b) => a - b).map((steps) => {
      const at = mine.filter((r) => r.steps === steps);
      const seeds = at.map((r) => r.seed).filter((s) => s !== undefined);
      const twice = seeds.find((s, i) => seeds.indexOf(s) !== i);
      if (twice !== undefined) {
        throw new Error(
          `${evalJsons.join(", ")}: seed ${twice} is there twice for ${sampler} at ${steps} ` +
            `steps: give each seed's eval.json once`,
        );
      }
      return {
        sampler,
        steps,
        seeds: at.length,
        accuracy: spread(at.map((r) => r.accuracy)),
        fid: spread(at.map((r) => r.fid)),
      };
    });
  });
}

/**
 * Evaluations by sampler steps (stepSweepRows): accuracy in percent to `accuracyPng` and FID
 * (log scale) to `fidPng`, one line per sampler through the mean over the seeds, a bar from the
 * lowest to the highest.
 */
export function plotStepSweep(evalJsons: string[], accuracyPng: string, fidPng: string): void {
  const rows = stepSweepRows(evalJsons);
  if (new Set(rows.map((r) => r.steps)).size < 2) {
    throw new Error(`${evalJsons.join(", ")}: a steps plot needs at least two step counts`);
  }
  const series = (key: "accuracy" | "fid", scale: number): Series[] =>
    [...new Set(rows.map((r) => r.sampler))].map((name) => {
      const mine = rows.filter((r) => r.sampler === name);
      return {
        x: mine.map((r) => r.steps),
        y: mine.map((r) => scale * r[key].mean),
        lo: mine.map((r) => scale * r[key].lo),
        hi: mine.map((r) => scale * r[key].hi),
        color: SAMPLER_COLORS[name] ?? [0, 0, 0],
        label: name,
      };
    });
  plot(accuracyPng, series("accuracy", 100), {
    xLabel: "steps",
    yLabel: "accuracy %",
    dots: true,
  });
  plot(fidPng, series("fid", 1), { xLabel: "steps", yLabel: "fid", logY: true, dots: true });
}
