// The Train view's live loss curve: the loss of each logging window (the records the trainer
// appends to its log) against the step, on a log scale as `deno task plot` draws it, redrawn as
// each record arrives.

export class LossPlot {
  readonly #points: { step: number; loss: number }[] = [];

  constructor(private readonly canvas: HTMLCanvasElement, private readonly steps: number) {}

  add(step: number, loss: number): void {
    if (!(loss > 0) || !Number.isFinite(loss)) return;
    this.#points.push({ step, loss });
    this.draw();
  }

  draw(): void {
    const c = this.canvas, g = c.getContext("2d")!;
    const W = c.width, H = c.height, left = 48, right = 8, top = 8, bottom = 22;
    g.clearRect(0, 0, W, H);
    g.font = "11px system-ui, sans-serif";
    g.fillStyle = "#666";
    g.strokeStyle = "#ccc";
    g.strokeRect(left, top, W - left - right, H - top - bottom);
    const pts = this.#points;
    if (!pts.length) return;
    // reduce, not a spread: a long run's points would overflow the call stack
    const lo = Math.log10(pts.reduce((m, p) => Math.min(m, p.loss), Infinity));
    const hi = Math.log10(pts.reduce((m, p) => Math.max(m, p.loss), -Infinity));
    const span = Math.max(hi - lo, 0.05);
    const x = (s: number) => left + (s / Math.max(1, this.steps)) * (W - left - right);
    const y = (l: number) =>
      top + (1 - (Math.log10(l) - lo + span * 0.05) / (span * 1.1)) * (H - top - bottom);
    // the top and bottom losses, and the step axis's ends
    g.textAlign = "right";
    g.fillText(
      10 ** hi >= 0.01 ? (10 ** hi).toFixed(3) : (10 ** hi).toExponential(1),
      left - 4,
      y(10 ** hi) + 4,
    );
    g.fillText(
      10 ** lo >= 0.01 ? (10 ** lo).toFixed(3) : (10 ** lo).toExponential(1),
      left - 4,
      y(10 ** lo) + 4,
    );
    g.textAlign = "left";
    g.fillText("0", left, H - 6);
    g.textAlign = "right";
    g.fillText(`step ${this.steps}`, W - right, H - 6);
    g.strokeStyle = "rgb(20, 60, 160)";
    g.lineWidth = 1.5;
    g.beginPath();
    pts.forEach((p, i) => (i ? g.lineTo(x(p.step), y(p.loss)) : g.moveTo(x(p.step), y(p.loss))));
    g.stroke();
  }
}
