// A small line plot rendered straight to pixels (no font files): the training loss curve.

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
  " ": [0, 0, 0, 0, 0],
};

export interface Series {
  x: number[];
  y: number[];
  /** RGB */
  color: [number, number, number];
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

/** Plots series on a linear x axis and a log-10 y axis; writes a PNG. */
export function plotLogY(path: string, series: Series[], xLabel: string, yLabel: string): void {
  const W = 640, H = 400, L = 70, R = 20, T = 20, B = 50;
  const cv = new Canvas(W, H);
  const xs = series.flatMap((s) => s.x), ys = series.flatMap((s) => s.y).filter((v) => v > 0);
  if (!xs.length || !ys.length) throw new Error("plot: nothing to plot");
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const ly0 = Math.floor(Math.log10(Math.min(...ys)) * 2) / 2;
  const ly1 = Math.max(Math.ceil(Math.log10(Math.max(...ys)) * 2) / 2, ly0 + 0.5);
  const px = (x: number) => L + (x - x0) / (x1 - x0) * (W - L - R);
  const py = (y: number) => H - B - (Math.log10(y) - ly0) / (ly1 - ly0) * (H - T - B);
  const grey: [number, number, number] = [200, 200, 200],
    black: [number, number, number] = [0, 0, 0];
  // grid and ticks: decades and their 2× and 5×
  for (let e = Math.floor(ly0); e <= Math.ceil(ly1); e++) {
    for (const m of [1, 2, 5]) {
      const v = m * 10 ** e;
      const lv = Math.log10(v);
      if (lv < ly0 - 1e-9 || lv > ly1 + 1e-9) continue;
      cv.line(L, py(v), W - R, py(v), grey);
      cv.text(L - 8 - 8 * fmtTick(v).length, py(v) - 5, fmtTick(v), black);
    }
  }
  const step = 10 ** Math.floor(Math.log10((x1 - x0) / 4 || 1));
  const xstep = [1, 2, 5, 10].map((m) => m * step).find((s) => (x1 - x0) / s <= 6) ?? step * 10;
  for (let v = Math.ceil(x0 / xstep) * xstep; v <= x1; v += xstep) {
    cv.line(px(v), T, px(v), H - B, grey);
    cv.text(px(v) - 4 * fmtTick(v).length, H - B + 8, fmtTick(v), black);
  }
  cv.line(L, T, L, H - B, black);
  cv.line(L, H - B, W - R, H - B, black);
  cv.text((L + W - R) / 2 - 4 * xLabel.length, H - 20, xLabel, black);
  cv.text(8, T, yLabel, black);
  for (const s of series) {
    for (let i = 1; i < s.x.length; i++) {
      if (s.y[i - 1] > 0 && s.y[i] > 0) {
        cv.line(px(s.x[i - 1]), py(s.y[i - 1]), px(s.x[i]), py(s.y[i]), s.color);
      }
    }
  }
  writePng(path, W, H, 3, cv.px);
}

/** The loss curve of a training log (train-log.jsonl: the mean loss of each logging window). */
export function plotTrainingLog(logPath: string, pngPath: string): void {
  // evaluation records share the log; only the loss records are plotted here
  const rows = Deno.readTextFileSync(logPath).split("\n").filter(Boolean).map((l) =>
    JSON.parse(l) as { step: number; loss?: number }
  ).filter((r): r is { step: number; loss: number } => typeof r.loss === "number");
  plotLogY(
    pngPath,
    [{ x: rows.map((r) => r.step), y: rows.map((r) => r.loss), color: [20, 60, 160] }],
    "step",
    "loss",
  );
}
