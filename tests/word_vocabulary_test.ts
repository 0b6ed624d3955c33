import assert from "node:assert/strict";
import { EMOJI_STYLES, type EmojiEntry, emojiRows } from "../io/emoji_set.ts";
import { roundToHalf } from "../io/safetensors_bytes.ts";
import { parseWordTable, wordTableBytes } from "../io/word_table.ts";
import { tokenizeWords, wordTokens } from "../model/word_tokenizer.ts";
import {
  asciiFold,
  buildWordTable,
  fallbackVector,
  isPlainWord,
  isPunctuation,
  type PackageVectors,
  randomWordVector,
  winkPackageVectors,
} from "../model/word_vocabulary.ts";

const DIM = 4;

/** A package of vectors in frequency order, with numbers and junk among the frequent entries. */
function fakePackage(): PackageVectors & { json: unknown } {
  const words = [
    "the",
    ",",
    ".",
    "1990", // a number: never one of the frequent words
    "of",
    ":",
    "'",
    "’", // read as "'": never a row of its own
    "--", // two characters of punctuation: the tokenizer never produces it
    "u.s.", // a dot inside: neither
    "face",
    "red",
    "heart",
    "flag",
    "seven",
    "cote",
    "push",
    "pin",
    "hand",
    "waving",
    "smiling",
    "with",
    "halo",
    "skin",
    "tone",
    "medium",
    "light",
    "dark",
    "twitter",
    "style",
    "ivoire",
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "eight",
    "nine",
    "ten",
    "men",
    "room",
    "keycap",
    "sel",
    "fie",
  ];
  const vectors: Record<string, number[]> = {};
  words.forEach((w, i) => {
    const v = Array.from({ length: DIM }, (_, k) => Math.cos(i * 1.3 + k) * (1 + i / 20));
    const norm = Math.hypot(...v);
    vectors[w] = [...v, norm, i];
  });
  const json = { precision: 8, size: words.length, dimensions: DIM, words, vectors };
  return { ...winkPackageVectors(json, "fake.json"), json };
}

const e = (
  name: string,
  short_name: string,
  unified: string,
  sort_order: number,
  extra: Partial<EmojiEntry> = {},
): EmojiEntry => ({
  name,
  short_name,
  unified,
  image: `${unified.toLowerCase()}.png`,
  category: "Smileys & Emotion",
  subcategory: "face-smiling",
  sort_order,
  has_img_google: true,
  has_img_twitter: true,
  ...extra,
});

/** Emoji whose names need every fallback rule. */
const ENTRIES: EmojiEntry[] = [
  e("WAVING HAND SIGN", "wave", "1F44B", 1, {
    skin_variations: {
      "1F3FC": { unified: "1F44B-1F3FC", image: "1f44b-1f3fc.png", has_img_google: true },
    },
  }),
  e("HEAVY BLACK HEART", "heart", "2764-FE0F", 2),
  e("Côte d’Ivoire Flag", "flag-ci", "1F1E8-1F1EE", 3, { subcategory: "country-flag" }),
  e("KEYCAP 7", "seven", "37-FE0F-20E3", 4),
  e("PUSHPIN", "pushpin", "1F4CC", 5),
  e("SELFIE", "selfie", "1F933", 6),
  e("MENS SYMBOL", "mens", "1F6B9", 7),
  e("SMILING FACE WITH HALO", "innocent", "1F607", 8),
];

Deno.test("word vocabulary: frequent plain words, every caption piece, fallbacks by rule", async () => {
  const pkg = fakePackage();
  const captions = EMOJI_STYLES.flatMap((s) => emojiRows(ENTRIES, s).rows.map((r) => r.text));
  assert.ok(captions.includes("flag: côte d’ivoire, twitter style"));
  const t = buildWordTable(pkg, captions, 3);
  // the 3 most frequent plain words, then the package's punctuation and the captions' words, in
  // the package's order; then what the package lacks, in code-unit order
  assert.deepEqual(t.words.slice(0, 6), ["the", ",", ".", "of", ":", "'"]);
  assert.equal(t.frequent, 3);
  for (const w of ["1990", "’", "--", "u.s.", "sel", "fie"]) assert.ok(!t.words.includes(w), w);
  assert.deepEqual(t.fallbacks, {
    "'d": "random",
    "'ll": "random",
    "'m": "random",
    "'re": "random",
    "'s": "random",
    "'ve": "random",
    "0": "number:zero",
    "1": "number:one",
    "10": "number:ten",
    "2": "number:two",
    "3": "number:three",
    "4": "number:four",
    "5": "number:five",
    "6": "number:six",
    "7": "number:seven",
    "8": "number:eight",
    "9": "number:nine",
    "côte": "fold:cote",
    "d'ivoire": "random",
    "n't": "random",
    "pushpin": "compound:push+pin",
    // in so small a package every word is common, so "sel" + "fie" pass for parts (the real
    // package's 30,000 most frequent words hold neither; the next test checks that rule)
    "selfie": "compound:sel+fie",
  });
  assert.deepEqual(t.counts, { fold: 1, number: 11, compound: 2, random: 8 });
  const table = await parseWordTable(
    wordTableBytes(t.words, t.vectors, t.dim, { fallbacks: JSON.stringify(t.fallbacks) }),
    "t",
  );
  // every caption of both styles tokenizes, and each keeps every word
  const tok = tokenizeWords(captions, table, 16);
  assert.equal(tok.n, captions.length);
  assert.deepEqual(
    wordTokens("waving hand: medium-light skin tone, twitter style", table).map((i) =>
      table.words[i - 1]
    ),
    ["waving", "hand", ":", "medium", "light", "skin", "tone", ",", "twitter", "style"],
  );
  assert.deepEqual(
    wordTokens("men’s room", table).map((i) => table.words[i - 1]),
    ["men", "'s", "room"],
  );
  // the vectors: the package's, a fold's and a numeral's copied, a compound's the scaled mean
  const row = (w: string) => [...table.vectors.subarray(table.index.get(w)! * DIM).slice(0, DIM)];
  const pkgRow = (w: string) => [...Float32Array.from(pkg.vector(w)!)].map(half);
  assert.deepEqual(row("heart"), pkgRow("heart"));
  assert.deepEqual(row("côte"), pkgRow("cote"));
  assert.deepEqual(row("7"), pkgRow("seven"));
  const [p, q] = [pkg.vector("push")!, pkg.vector("pin")!];
  const [np, nq] = [Math.hypot(...Array.from(p)), Math.hypot(...Array.from(q))];
  const mean = Array.from({ length: DIM }, (_, k) => (p[k] / np + q[k] / nq) / 2);
  const scale = (np + nq) / 2 / Math.hypot(...mean);
  assert.deepEqual(row("pushpin"), mean.map((x) => half(x * scale)));
});

Deno.test("word vocabulary: the fallbacks are deterministic, distinct and at the median norm", () => {
  const pkg = fakePackage();
  const captions = emojiRows(ENTRIES).rows.map((r) => r.text);
  const a = buildWordTable(pkg, captions, 10);
  const b = buildWordTable(fakePackage(), [...captions].reverse(), 10);
  assert.deepEqual(a.words, b.words);
  assert.deepEqual(a.vectors, b.vectors);
  const bytes = (t: typeof a) => wordTableBytes(t.words, t.vectors, t.dim, {});
  assert.deepEqual(bytes(a), bytes(b));
  // a random vector depends on the spelling alone
  const r = randomWordVector("selfie", 100, 5);
  assert.deepEqual(r, randomWordVector("selfie", 100, 5));
  assert.notDeepEqual(r, randomWordVector("selfies", 100, 5));
  assert.ok(Math.abs(Math.hypot(...r) - 5) < 1e-4);
  // roughly isotropic: mean near 0, unrelated to another word's
  const s = randomWordVector("keycap", 100, 5);
  const cos = r.reduce((acc, x, i) => acc + x * s[i], 0) / 25;
  assert.ok(Math.abs(cos) < 0.4, `${cos}`);
  // the median norm of the table's package rows
  const known = (w: string) => pkg.vector(w);
  const { vector, rule } = fallbackVector("zzz", known, () => true, DIM, 2.5);
  assert.equal(rule, "random");
  assert.ok(Math.abs(Math.hypot(...vector) - 2.5) < 1e-5);
  // compound parts are 3 letters or more and among the common words
  assert.equal(fallbackVector("pushpin", known, (w) => w !== "pin", DIM, 1).rule, "random");
  assert.equal(fallbackVector("pushpin", known, () => true, DIM, 1).rule, "compound:push+pin");
});

Deno.test("word vocabulary: which package entries can be rows", () => {
  assert.ok(isPlainWord("heart"));
  assert.ok(isPlainWord("t-shirt"));
  assert.ok(isPlainWord("o'clock"));
  assert.ok(isPlainWord("mp3"));
  for (const w of ["1990", "u.s.", "Heart", "'s", "--", ",", "a b", "x-"]) {
    assert.ok(!isPlainWord(w), w);
  }
  for (const w of [",", "'", "(", "#", "€"]) assert.ok(isPunctuation(w), w);
  for (const w of ["’", "--", "a", "7", " "]) assert.ok(!isPunctuation(w), w);
  assert.equal(asciiFold("åland"), "aland");
  assert.equal(asciiFold("türkiye"), "turkiye");
  assert.equal(asciiFold("ørsted"), "orsted");
  assert.throws(
    () => winkPackageVectors({ dimensions: 4, words: [] }, "x.json"),
    /x\.json: not the layout of wink-embeddings/,
  );
  const bad = winkPackageVectors({ dimensions: 2, words: ["a"], vectors: { a: [1, null] } }, "y");
  assert.throws(() => bad.vector("a"), /y: the vector of 'a' is not 2 finite numbers/);
});

/** x as an F16 row holds it (through f32, as the table is built). */
const half = (x: number) => roundToHalf(Math.fround(x));
