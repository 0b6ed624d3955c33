// One image file to model input: PNG (through pngjs: grey, grey+alpha, RGB, RGBA, palette, 1- to
// 16-bit) or JPEG (through jpeg-js), told apart by their first bytes; alpha composited on white;
// converted to 1 or 3 channels (io/rgba_image.ts); fitted to a square (io/resize_area.ts). Values
// in [0, 1].

import jpeg from "jpeg-js";
import { isJpeg, isPng } from "./image_format.ts";
import {
  checkImageFileSize,
  checkPixelCount,
  jpegOrientation,
  jpegSize,
  MAX_IMAGE_PIXELS,
} from "./image_header.ts";
import { readPngRgba } from "./png.ts";
import { fitSquare } from "./resize_area.ts";
import { compositeOnWhite, orientRgba, toChannels } from "./rgba_image.ts";
import { errnoText } from "./errors.ts";

export { LUMA_601, toChannels } from "./rgba_image.ts";

/** A decoded image: [3, height, width] RGB planes in [0, 1]. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

// jpeg-js refuses larger images instead of exhausting memory: the pixels PNG allows, in millions
const JPEG_LIMITS = { maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6, maxMemoryUsageInMB: 2048 };

/** An image file's bytes, refused unread when it is no file or too large (checkImageFileSize). */
export function readImageBytes(path: string): Uint8Array {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch (e) {
    throw new UnreadableFile(errnoText(e));
  }
  if (!st.isFile) throw new Error("not a file");
  checkImageFileSize(st.size);
  try {
    return Deno.readFileSync(path);
  } catch (e) {
    throw new UnreadableFile(errnoText(e));
  }
}

/** The system refused to read a file (permissions, a disk error): it may read next time. */
export class UnreadableFile extends Error {}

/** Decodes PNG or JPEG bytes; errors say what is wrong with the file (the caller names it). */
export function decodeImage(bytes: Uint8Array): RgbImage {
  if (isPng(bytes)) {
    // the file's own sample range, so 16-bit images keep their precision
    const img = readPngRgba(bytes, true);
    const max = img.colorType === 3 ? 255 : 2 ** img.depth - 1;
    const { width, height } = img;
    return { width, height, rgb: compositeOnWhite(img.data, width, height, max) };
  }
  if (isJpeg(bytes)) {
    checkPixelCount("jpeg", jpegSize(bytes));
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, ...JPEG_LIMITS });
    } catch (e) {
      throw new Error(`jpeg: ${String((e as Error).message ?? e)}`);
    }
    if (!(img.width > 0 && img.height > 0) || img.data.length < img.width * img.height * 4) {
      throw new Error("jpeg: no image data");
    }
    // a photo turned by its EXIF orientation, as a browser shows it
    const { data, width, height } = orientRgba(
      img.data,
      img.width,
      img.height,
      jpegOrientation(bytes),
    );
    return { width, height, rgb: compositeOnWhite(data, width, height, 255) };
  }
  throw new Error("not a PNG or JPEG file");
}

/** Decodes an image file's bytes to [channels, size, size] in [0, 1]. */
export function imageToSquare(bytes: Uint8Array, size: number, channels: 1 | 3): Float32Array {
  const img = decodeImage(bytes);
  return fitSquare(toChannels(img.rgb, channels), 1, channels, img.height, img.width, size);
}

/**
 * Reads an image file as model input, [channels, size, size] in [0, 1], converted as an image
 * folder's files are; with the file's own size. Errors are one line naming the file.
 */
export function readImageFile(
  path: string,
  size: number,
  channels: 1 | 3,
): { width: number; height: number; data: Float32Array } {
  const fail = (why: string) => new Error(`cannot read image '${path}': ${why}`);
  let bytes: Uint8Array;
  try {
    bytes = readImageBytes(path);
  } catch (e) {
    throw fail((e as Error).message);
  }
  let img: RgbImage;
  try {
    img = decodeImage(bytes);
  } catch (e) {
    throw fail((e as Error).message.split("\n")[0]);
  }
  const data = fitSquare(toChannels(img.rgb, channels), 1, channels, img.height, img.width, size);
  return { width: img.width, height: img.height, data };
}
