// The word tokenizer: a prompt as rows of the word table (io/word_table.ts), for a caption encoder
// on frozen pretrained word vectors. The rules follow how GloVe's corpus was tokenized (Stanford's
// tokenizer, lower-cased), so a prompt's words meet the vectors they were trained as:
//
// 1. lower-case, trim, collapse white space (model/tokenizer.ts's normalizePrompt); Unicode NFC,
//    so "é" is one letter; "’" and "ʼ" written as "'";
// 2. split into words — runs of letters, digits and apostrophes, joined by single hyphens — and
//    single punctuation characters (anything else but white space);
// 3. a word in the table is one token. Otherwise a hyphenated word splits into its parts (without
//    the hyphens); a clitic is split off as GloVe's corpus has it ("men's" → "men" "'s", "don't"
//    → "do" "n't"); apostrophes at either end become "'" punctuation;
// 4. punctuation not in the table is dropped; a word not in the table is a one-line error naming
//    it and the three nearest words of the table.
//
// Token id = row + 1; 0 is padding, as the byte tokenizer's.

import { MAX_WORD_LENGTH, type WordTable } from "../io/word_table.ts";
import { normalizePrompt, PAD_TOKEN, type Tokenized } from "./tokenizer.ts";

/** What the rules above are, as a checkpoint records them: a model reads prompts only by these. */
export const WORD_RULES = "pixart-webgpu words 1: lower-case, NFC, ' for ’, words and single " +
  "punctuation, unknown hyphenated words split, GloVe clitics split, unknown punctuation dropped";

/** GloVe's clitics, split off a word the table lacks. */
export const CLITICS: readonly string[] = ["n't", "'s", "'m", "'re", "'ve", "'ll", "'d"];

/** One piece of a prompt: a word (must be in the table) or a punctuation character (dropped if
 * the table lacks it). */
export interface Piece {
  text: string;
  word: boolean;
}

const WORD_OR_CHAR = /[\p{L}\p{M}\p{N}']+(?:-[\p{L}\p{M}\p{N}']+)*|[^\s\p{L}\p{M}\p{N}']/gu;
const IS_WORD = /^[\p{L}\p{M}\p{N}']/u;
const HAS_LETTER_OR_DIGIT = /[\p{L}\p{N}]/u;

/**
 * A prompt as the tokenizer sees it: normalised, composed, apostrophes as "'", without variation
 * selectors (U+FE00–FE0F: "❤️" is ❤ and U+FE0F, a combining mark that would read as a word of its
 * own or glue itself to the next). No caption of the data has one, so no tokenization changes.
 */
export function promptText(prompt: string): string {
  return normalizePrompt(prompt).normalize("NFC").replace(/[’ʼ]/g, "'").replace(
    /[\uFE00-\uFE0F]/g,
    "",
  );
}

/** One unhyphenated word the table lacks, its clitic and end apostrophes split off. */
function splitWord(w: string, has: (w: string) => boolean, out: Piece[]): void {
  if (has(w)) {
    out.push({ text: w, word: true });
    return;
  }
  let lead = 0;
  while (lead < w.length && w[lead] === "'") lead++;
  for (let i = 0; i < lead; i++) out.push({ text: "'", word: false });
  let rest = w.slice(lead);
  const tail: Piece[] = [];
  // closing quotes first, so that a quoted "'don't'" still splits its clitic
  while (rest.endsWith("'") && !has(rest)) {
    tail.push({ text: "'", word: false });
    rest = rest.slice(0, -1);
  }
  const clitic = CLITICS.find((c) => rest.length > c.length && rest.endsWith(c));
  if (clitic && !has(rest)) {
    tail.unshift({ text: clitic, word: true });
    rest = rest.slice(0, -clitic.length);
  }
  if (rest) out.push({ text: rest, word: true });
  out.push(...tail);
}

/**
 * The pieces of a prompt, with `has` saying which words the table holds (rule 3 asks it whether
 * to split). The data step that builds the table runs the same function over its captions.
 */
export function promptPieces(prompt: string, has: (w: string) => boolean): Piece[] {
  const out: Piece[] = [];
  for (const [m] of promptText(prompt).matchAll(WORD_OR_CHAR)) {
    if (!IS_WORD.test(m)) out.push({ text: m, word: false });
    else if (m.includes("-") && !has(m)) {
      for (const part of m.split("-")) splitWord(part, has, out);
    } else splitWord(m, has, out);
  }
  return out;
}

/** The optimal-string-alignment edit distance (a swap of neighbours counts one), capped. */
function editDistance(a: string, b: string, cap: number): number {
  if (Math.abs(a.length - b.length) > cap) return cap + 1;
  let prev2 = new Array<number>(b.length + 1).fill(0);
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = new Array<number>(b.length + 1);
    cur[0] = i;
    let best = i;
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d = Math.min(d, prev2[j - 2] + 1);
      }
      cur[j] = d;
      best = Math.min(best, d);
    }
    if (best > cap) return cap + 1;
    [prev2, prev] = [prev, cur];
  }
  return prev[b.length];
}

/** The `k` words of the table nearest to `word` by edit distance; ties go to the earlier row. */
export function nearestWords(word: string, table: WordTable, k = 3): string[] {
  const best: { w: string; d: number }[] = [];
  let cap = Infinity;
  for (const w of table.words) {
    if (!HAS_LETTER_OR_DIGIT.test(w)) continue;
    const d = editDistance(word, w, Number.isFinite(cap) ? cap : Math.max(word.length, w.length));
    if (best.length === k && d >= best[k - 1].d) continue;
    best.push({ w, d });
    best.sort((x, y) => x.d - y.d); // stable: earlier rows first among equals
    if (best.length > k) best.pop();
    if (best.length === k) cap = best[k - 1].d;
  }
  return best.map((b) => b.w);
}

/** The token ids (row + 1) of one prompt; a word the table lacks is a one-line error. */
export function wordTokens(prompt: string, table: WordTable): number[] {
  if (typeof prompt !== "string") throw new Error(`tokenizer: prompt must be a string`);
  const has = (w: string) => table.index.has(w);
  const ids: number[] = [];
  for (const p of promptPieces(prompt, has)) {
    const row = table.index.get(p.text);
    if (row !== undefined) ids.push(row + 1);
    else if (p.word) {
      const size = `${table.words.length.toLocaleString("en")} words`;
      // a table holds no word longer than MAX_WORD_LENGTH: a longer one (pasted text without
      // spaces) is named by its start, and not compared with every word, which takes seconds
      if (p.text.length > MAX_WORD_LENGTH) {
        throw new Error(
          `word '${p.text.slice(0, 40)}…' (${p.text.length} characters) is not in the model's ` +
            `vocabulary (${size}), whose words are at most ${MAX_WORD_LENGTH} characters: put ` +
            `spaces between words`,
        );
      }
      const near = nearestWords(p.text, table).map((w) => `'${w}'`).join(", ");
      throw new Error(
        `word '${p.text}' is not in the model's vocabulary (${size}); nearest: ${near}`,
      );
    }
  }
  return ids;
}

/**
 * The prompt without the words the table lacks — each removed whole, as written (a hyphenated
 * word, a clitic's word), so the rest reads exactly as it did — and the words removed: for a user
 * who would rather draw the rest of a prompt than reword it (sample --skip-unknown-words).
 */
export function withoutUnknownWords(
  prompt: string,
  table: WordTable,
): { prompt: string; removed: string[] } {
  const has = (w: string) => table.index.has(w);
  const removed: string[] = [];
  const kept = promptText(prompt).replace(WORD_OR_CHAR, (m) => {
    if (promptPieces(m, has).every((p) => !p.word || has(p.text))) return m;
    removed.push(m);
    return " ";
  });
  return { prompt: normalizePrompt(kept), removed };
}

/** A prompt of more tokens than max_length: a caption's fix is not an unknown word's. */
export class TooManyTokensError extends Error {}

function describe(prompt: string): string {
  const s = JSON.stringify(prompt);
  return s.length > 60 ? s.slice(0, 57) + '…"' : s;
}

/** Tokenizes a batch of prompts to [n, maxLength] word ids (0-padded) and masks. */
export function tokenizeWords(
  prompts: readonly string[],
  table: WordTable,
  maxLength: number,
): Tokenized {
  if (!Number.isInteger(maxLength) || maxLength < 1) {
    throw new Error(`tokenizer: max_length must be a positive integer, got ${maxLength}`);
  }
  const n = prompts.length;
  const tokens = new Int32Array(n * maxLength);
  const mask = new Float32Array(n * maxLength);
  for (let i = 0; i < n; i++) {
    const where = n > 1 ? ` (prompt ${i + 1} of ${n})` : ""; // counted from 1
    let ids: number[];
    try {
      ids = wordTokens(prompts[i], table);
    } catch (e) {
      throw new Error(`${(e as Error).message}${where}`);
    }
    if (ids.length === 0) {
      throw new Error(
        `prompt is empty after tokenizing (${describe(prompts[i])}); prompts need 1 to ` +
          `max_length ${maxLength} words (for an unconditional sample, give any prompt with guidance 0)${where}`,
      );
    }
    if (ids.length > maxLength) {
      throw new TooManyTokensError(
        `prompt ${describe(promptText(prompts[i]))} is ${ids.length} tokens, over the limit ` +
          `max_length ${maxLength}${where}`,
      );
    }
    tokens.set(ids, i * maxLength);
    mask.fill(1, i * maxLength, i * maxLength + ids.length);
  }
  return { tokens, mask, n, length: maxLength };
}

/** The tokenizer settings for checkpoint metadata (`tokenizer` key, as JSON). */
export function wordTokenizerSpec(table: WordTable, maxLength: number): Record<string, unknown> {
  return {
    dim: table.dim,
    kind: "words",
    max_length: maxLength,
    pad: PAD_TOKEN,
    rules: WORD_RULES,
    sha256: table.sha256,
    size: table.words.length,
    token: "row+1",
  };
}
