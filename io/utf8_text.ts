// UTF-8 text read strictly: a byte that is not UTF-8 is an error naming its line, not U+FFFD in
// a caption or a prompt.

/**
 * A file's bytes as UTF-8 text; bytes that are not UTF-8 are an error naming their line, rather
 * than U+FFFD in a caption.
 */
export function utf8Text(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch (whole) {
    let start = 0;
    for (let line = 1; start <= bytes.length; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const row = bytes.subarray(start, end);
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(row);
      } catch {
        const at = firstBadByte(row);
        throw new Error(
          `${path} line ${line}: not UTF-8 text (byte 0x${row[at].toString(16)} at byte ${
            at + 1
          } of the line): save the file as UTF-8`,
        );
      }
      start = end + 1;
    }
    throw whole; // every line is UTF-8, so the whole failed for another reason
  }
}

/** The index of the first byte of `row` that does not start a valid UTF-8 sequence. */
function firstBadByte(row: Uint8Array): number {
  const cont = (b: number | undefined, lo = 0x80, hi = 0xbf) =>
    b !== undefined && b >= lo && b <= hi;
  for (let i = 0; i < row.length;) {
    const c = row[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // the second byte's range rules out overlong forms, surrogates and code points past U+10FFFF
    const n = c >= 0xc2 && c <= 0xdf
      ? 2
      : c >= 0xe0 && c <= 0xef
      ? 3
      : c >= 0xf0 && c <= 0xf4
      ? 4
      : 0;
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    if (n === 0 || !cont(row[i + 1], lo, hi)) return i;
    for (let k = 2; k < n; k++) if (!cont(row[i + k])) return i;
    i += n;
  }
  return 0;
}
