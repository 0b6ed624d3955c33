// This browser's image decoder for a folder the user chose (web/folder_images.ts): the file's
// header bounds it first (io/image_header.ts, the command line's limit), then createImageBitmap
// decodes it without colour management or premultiplying, and a canvas hands over its RGBA
// bytes. What differs from the command line's decoders: 8 bits a channel (a 16-bit PNG is
// rounded), and a canvas keeps partly transparent pixels premultiplied, which may move their
// colours by a level.

import { isJpeg, isPng } from "../io/image_format.ts";
import { checkPixelCount, jpegSize, pngSize } from "../io/image_header.ts";
import type { ImageDecoder } from "./folder_images.ts";

/** This browser's decoder: the header bounds the file, then createImageBitmap and a canvas. */
export const browserDecoder: ImageDecoder = async (bytes) => {
  const kind = isPng(bytes) ? "png" : isJpeg(bytes) ? "jpeg" : null;
  if (!kind) throw new Error("not a PNG or JPEG file");
  checkPixelCount(kind, kind === "png" ? pngSize(bytes) : jpegSize(bytes));
  let bitmap: ImageBitmap;
  try {
    bitmap = await createImageBitmap(new Blob([bytes as Uint8Array<ArrayBuffer>]), {
      premultiplyAlpha: "none",
      colorSpaceConversion: "none",
    });
  } catch (e) {
    throw new Error(`${kind}: this browser cannot decode it (${(e as Error).message})`);
  }
  try {
    const { width, height } = bitmap;
    const g = new OffscreenCanvas(width, height).getContext("2d", { willReadFrequently: true });
    // within the pixel limit, a side may still be past what this browser's canvas holds
    if (!g) {
      throw new Error(
        `${kind}: ${width}×${height} is more than this browser's canvas holds: resize it`,
      );
    }
    g.drawImage(bitmap, 0, 0);
    return { width, height, rgba: g.getImageData(0, 0, width, height).data };
  } finally {
    bitmap.close();
  }
};
