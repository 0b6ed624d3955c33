// Per-image captions against the text encoder's limit, checked once before training starts rather
// than when a batch happens to draw the long one. The limit is on UTF-8 bytes of the caption as
// the tokenizer normalises it, so the normaliser is a parameter: the trainer passes
// model/tokenizer.ts's normalizePrompt, and no second copy of its rules lives here.

import type { ImageSet } from "./image_set.ts";

export interface CaptionLengthOptions {
  /** the tokenizer's normalisation (lower-case, trim, collapse white space) */
  normalize: (caption: string) => string;
  /** cut long captions at a word boundary instead of stopping (data.truncate_captions) */
  truncate: boolean;
  /** the warning line that counts truncated captions (default: standard error) */
  log?: (line: string) => void;
}

const encoder = new TextEncoder();

/**
 * The longest prefix of `text` within `maxBytes` UTF-8 bytes that ends at a word boundary (before
 * a space); a first word longer than the limit is cut after its last whole character instead.
 */
export function truncateAtWord(text: string, maxBytes: number): string {
  if (encoder.encode(text).length <= maxBytes) return text;
  let bytes = 0, end = 0, lastSpace = -1;
  for (const ch of text) {
    const n = encoder.encode(ch).length;
    if (bytes + n > maxBytes) break;
    if (ch === " ") lastSpace = end;
    bytes += n;
    end += ch.length;
  }
  // a space right after the cut means the cut already falls between words
  if (text[end] === " ") return text.slice(0, end).trimEnd();
  return lastSpace > 0 ? text.slice(0, lastSpace).trimEnd() : text.slice(0, end);
}

/**
 * Checks that every caption of `set`, normalised, fits in `maxBytes` UTF-8 bytes. A longer one is
 * an error naming its file, or, with `truncate`, is cut at a word boundary (the set returned
 * holds the cut, normalised captions) and counted in one warning line. Sets without per-image
 * captions are returned unchanged.
 */
export function checkCaptionLengths(
  set: ImageSet,
  maxBytes: number,
  o: CaptionLengthOptions,
): ImageSet {
  if (!set.captions) return set;
  const log = o.log ?? ((line: string) => console.error(line));
  const name = (i: number) => set.files?.[i] ?? `image ${i}`;
  const bytes = set.captions.map((c) => encoder.encode(o.normalize(c)).length);
  const over = bytes.flatMap((b, i) => (b > maxBytes ? [i] : []));
  if (over.length === 0) return set;
  const first = over[0];
  if (!o.truncate) {
    const more = over.length > 1 ? ` (and ${over.length - 1} more)` : "";
    throw new Error(
      `the caption of '${name(first)}' is ${bytes[first]} bytes${more}, over the text limit ` +
        `of ${maxBytes} (model.text_len): shorten it, raise model.text_len, or set ` +
        `data.truncate_captions: true to cut long captions at a word`,
    );
  }
  const captions = set.captions.slice();
  for (const i of over) captions[i] = truncateAtWord(o.normalize(captions[i]), maxBytes);
  log(
    `warning: cut ${over.length} caption(s) to ${maxBytes} bytes at a word boundary ` +
      `(data.truncate_captions), first of '${name(first)}': "${captions[first]}"`,
  );
  return { ...set, captions };
}
