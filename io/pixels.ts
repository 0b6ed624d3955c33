// Image values to pixel bytes, shared by the PNG writer and the web page's canvases (no file
// access here).

/** Maps a value in [-1, 1] to a byte like torchvision's save_image: round((x+1)/2·255), clamped. */
export function toByte(x: number): number {
  const v = Math.floor(((x + 1) / 2) * 255 + 0.5);
  return v > 255 ? 255 : v >= 0 ? v : 0; // NaN → 0
}
