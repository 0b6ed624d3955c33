// The image files this project reads, told apart by their first bytes (not their names): PNG and
// JPEG. No file access and no packages, so the web page checks an upload as the command line
// checks a file.

const PNG_SIGNATURE = [137, 80, 78, 71, 13, 10, 26, 10];

/** Whether `bytes` start with the PNG signature. */
export function isPng(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && PNG_SIGNATURE.every((b, i) => bytes[i] === b);
}

/** Whether `bytes` start with a JPEG's start-of-image marker and a marker after it. */
export function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}
