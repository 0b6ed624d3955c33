// The page's start image and the mask painted on it. An uploaded PNG or JPEG is decoded by the
// browser and converted as the command line reads a file (io/rgba_image.ts: on white, area-scaled,
// centre-cropped, the model's channels); the view shows that conversion, what the sampler starts
// from, at the model's size. A brush paints the mask over it: painted = repainted (inpainting),
// nothing painted = the whole image redrawn from the strength on (image-to-image).

import { checkImageFileSize } from "../io/image_header.ts";
import { browserDecoder } from "./browser_decoder.ts";
import { rgbaToSquare } from "../io/rgba_image.ts";
import { fitSquare } from "../io/resize_area.ts";
import { toSigned } from "../io/image_set.ts";
import { toByte } from "../io/pixels.ts";

/** A decoded upload: its name and 8-bit RGBA pixels. */
export interface Upload {
  name: string;
  width: number;
  height: number;
  rgba: ArrayLike<number>;
}

/**
 * Decodes an uploaded file as a chosen folder's images are (web/browser_decoder.ts): bounded by its
 * size and its header's pixel count before it is decoded, the command line's limits; each error
 * one line naming the file.
 */
export async function decodeUpload(file: File): Promise<Upload> {
  const fail = (why: string) => new Error(`cannot read image '${file.name}': ${why}`);
  try {
    checkImageFileSize(file.size);
    return { name: file.name, ...await browserDecoder(new Uint8Array(await file.arrayBuffer())) };
  } catch (e) {
    throw fail((e as Error).message);
  }
}

/** The mask's drawing size: finer than any model, so a brush stroke area-averages smoothly. */
const MASK_SIZE = 256;

export class StartImage {
  upload: Upload | null = null;
  /** whether anything is painted on the mask */
  painted = false;
  private readonly paint: CanvasRenderingContext2D;

  constructor(
    private readonly view: HTMLCanvasElement,
    private readonly mask: HTMLCanvasElement,
    /** the brush's radius, in the mask's pixels */
    private readonly radius: () => number,
    private readonly onPaint: () => void,
  ) {
    mask.width = mask.height = MASK_SIZE;
    this.paint = mask.getContext("2d", { willReadFrequently: true })!;
    let last: [number, number] | null = null;
    const at = (e: PointerEvent): [number, number] => {
      const r = mask.getBoundingClientRect();
      return [
        (e.clientX - r.left) / r.width * MASK_SIZE,
        (e.clientY - r.top) / r.height * MASK_SIZE,
      ];
    };
    mask.addEventListener("pointerdown", (e) => {
      if (!this.upload) return;
      mask.setPointerCapture(e.pointerId);
      last = at(e);
      this.stroke(last, last);
    });
    mask.addEventListener("pointermove", (e) => {
      if (!last) return;
      const p = at(e);
      this.stroke(last, p);
      last = p;
    });
    const end = () => void (last = null);
    mask.addEventListener("pointerup", end);
    mask.addEventListener("pointercancel", end);
  }

  private stroke(a: [number, number], b: [number, number]): void {
    const g = this.paint;
    g.strokeStyle = g.fillStyle = "rgb(255, 40, 40)";
    g.lineCap = "round";
    g.lineWidth = 2 * this.radius();
    g.beginPath();
    g.moveTo(...a);
    g.lineTo(...b);
    g.stroke();
    if (!this.painted) {
      this.painted = true;
      this.onPaint();
    }
  }

  clearMask(): void {
    this.paint.clearRect(0, 0, MASK_SIZE, MASK_SIZE);
    this.painted = false;
  }

  clear(): void {
    this.upload = null;
    this.clearMask();
  }

  /** The start image as the model reads it: [C, size, size] in [-1, 1]; shown in the view. */
  planes(size: number, channels: 1 | 3): Float32Array {
    const u = this.upload!;
    const x = toSigned(rgbaToSquare(u.rgba, u.width, u.height, size, channels));
    this.view.width = this.view.height = size;
    const img = new ImageData(size, size);
    const n = size * size;
    for (let i = 0; i < n; i++) {
      for (let c = 0; c < 3; c++) img.data[4 * i + c] = toByte(x[(channels === 1 ? 0 : c) * n + i]);
      img.data[4 * i + 3] = 255;
    }
    this.view.getContext("2d")!.putImageData(img, 0, 0);
    return x;
  }

  /** The painted mask at the model's size, [size, size]: the painted share of each pixel. */
  maskPlane(size: number): Float32Array | null {
    if (!this.painted) return null;
    const d = this.paint.getImageData(0, 0, MASK_SIZE, MASK_SIZE).data;
    const alpha = Float32Array.from(
      { length: MASK_SIZE * MASK_SIZE },
      (_, i) => d[4 * i + 3] / 255,
    );
    return fitSquare(alpha, 1, 1, MASK_SIZE, MASK_SIZE, size);
  }
}
