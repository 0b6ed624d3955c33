// The byte tokenizer of docs/spec.md §4: lower-case, trim, collapse white-space runs to one space,
// take the UTF-8 bytes; token = byte + 1; pad with 0 up to L; mask = (token ≠ 0).

/** Token ids run 0 … 256: 0 is padding, byte b is b + 1. */
export const VOCAB_SIZE = 257;
export const PAD_TOKEN = 0;

const encoder = new TextEncoder();

/** Lower-cases, trims and collapses every run of (Unicode) white space to one space. */
export function normalizePrompt(prompt: string): string {
  return prompt.toLowerCase().trim().replace(/\s+/gu, " ");
}

function describe(prompt: string): string {
  const s = JSON.stringify(prompt);
  return s.length > 60 ? s.slice(0, 57) + '…"' : s;
}

/**
 * Token ids of one prompt, padded with 0 to `maxLength`. Throws for an empty prompt (after
 * normalization) and for one longer than `maxLength` bytes; both messages name max_length.
 */
export function encodePrompt(prompt: string, maxLength: number): Int32Array {
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new Error(`tokenizer: max_length must be a positive integer, got ${maxLength}`);
  }
  if (typeof prompt !== "string") throw new Error(`tokenizer: prompt must be a string`);
  const norm = normalizePrompt(prompt);
  if (norm.length === 0) {
    throw new Error(
      `prompt is empty after normalization (${
        describe(prompt)
      }); prompts need 1 to max_length ${maxLength} bytes (for an unconditional sample, give any prompt with guidance 0)`,
    );
  }
  const bytes = encoder.encode(norm);
  if (bytes.length > maxLength) {
    throw new Error(
      `prompt ${
        describe(norm)
      } is ${bytes.length} bytes in UTF-8, over the limit max_length ${maxLength}`,
    );
  }
  const out = new Int32Array(maxLength);
  for (let i = 0; i < bytes.length; i++) out[i] = bytes[i] + 1;
  return out;
}

export interface Tokenized {
  /** [n, L] token ids */
  tokens: Int32Array;
  /** [n, L]: 1 where token ≠ 0 */
  mask: Float32Array;
  n: number;
  length: number;
}

/** Tokenizes a batch of prompts to [n, maxLength] ids and masks. */
export function tokenize(prompts: readonly string[], maxLength: number): Tokenized {
  const n = prompts.length;
  const tokens = new Int32Array(n * maxLength);
  const mask = new Float32Array(n * maxLength);
  for (let i = 0; i < n; i++) {
    let row: Int32Array;
    try {
      row = encodePrompt(prompts[i], maxLength);
    } catch (e) {
      const msg = (e as Error).message;
      // counted from 1, as a user counts the prompts they gave
      throw new Error(n > 1 ? `${msg} (prompt ${i + 1} of ${n})` : msg);
    }
    tokens.set(row, i * maxLength);
    for (let j = 0; j < maxLength; j++) mask[i * maxLength + j] = row[j] !== PAD_TOKEN ? 1 : 0;
  }
  return { tokens, mask, n, length: maxLength };
}

/** The prompt text of a row of token ids (padding dropped). */
export function decodeTokens(tokens: ArrayLike<number>): string {
  const bytes: number[] = [];
  for (let i = 0; i < tokens.length; i++) if (tokens[i] !== PAD_TOKEN) bytes.push(tokens[i] - 1);
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/** The tokenizer settings for checkpoint metadata (`tokenizer` key, as JSON). */
export function tokenizerSpec(maxLength: number): Record<string, unknown> {
  return {
    collapse_whitespace: true,
    kind: "utf8-bytes",
    lowercase: true,
    max_length: maxLength,
    pad: PAD_TOKEN,
    token: "byte+1",
    trim: true,
    vocab_size: VOCAB_SIZE,
  };
}
