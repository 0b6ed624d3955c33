// The samples on the page: one canvas per image at its native size (CSS scales it up), its prompt
// under it. Canvases are repainted after every sampler step and once more with the final values.

import { toByte } from "../io/pixels.ts";

export class SampleGrid {
  private canvases: HTMLCanvasElement[] = [];
  /** the sampler step each canvas shows, so a late read never paints over a newer one */
  private shown: number[] = [];

  constructor(
    private readonly root: HTMLElement,
    private readonly channels: number,
    private readonly size: number,
  ) {}

  /** Empties the grid and lays out one blank tile per prompt, `cols` to a row. */
  reset(prompts: readonly string[], cols: number): void {
    this.root.replaceChildren();
    this.root.style.setProperty("--cols", String(cols));
    this.canvases = prompts.map((p) => {
      const fig = document.createElement("figure");
      const canvas = document.createElement("canvas");
      canvas.width = canvas.height = this.size;
      const cap = document.createElement("figcaption");
      cap.textContent = p;
      fig.append(canvas, cap);
      this.root.append(fig);
      return canvas;
    });
    this.shown = prompts.map(() => -1);
  }

  /** Paints images first, first + 1, … from [B, C, S, S] values in [-1, 1], as of `step`. */
  paint(first: number, values: Float32Array, step: number): void {
    const C = this.channels, S = this.size, per = C * S * S;
    for (let b = 0; b < values.length / per; b++) {
      const k = first + b;
      if (this.shown[k] > step) continue;
      this.shown[k] = step;
      const img = new ImageData(S, S);
      for (let i = 0; i < S * S; i++) {
        for (let c = 0; c < 3; c++) {
          img.data[4 * i + c] = toByte(values[b * per + (C === 1 ? 0 : c) * S * S + i]);
        }
        img.data[4 * i + 3] = 255;
      }
      this.canvases[k].getContext("2d")!.putImageData(img, 0, 0);
    }
  }
}
