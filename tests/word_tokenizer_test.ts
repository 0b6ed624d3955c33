import assert from "node:assert/strict";
import { parseWordTable, type WordTable, wordTableBytes } from "../io/word_table.ts";
import {
  nearestWords,
  promptPieces,
  tokenizeWords,
  withoutUnknownWords,
  WORD_RULES,
  wordTokenizerSpec,
  wordTokens,
} from "../model/word_tokenizer.ts";

const WORDS = [
  "the",
  "red",
  "heart",
  ":",
  ",",
  "'",
  "(",
  ")",
  '"',
  "'s",
  "n't",
  "do",
  "men",
  "room",
  "medium",
  "light",
  "skin",
  "tone",
  "t-shirt",
  "purple",
  "purpose",
  "pure",
  "hello",
  "flag",
  "côte",
  "d'ivoire",
  "waving",
  "hand",
  "kiss",
  "woman",
  "man",
  "café",
  "7",
  "keycap",
  "o'clock",
];

async function table(words = WORDS): Promise<WordTable> {
  const v = Float32Array.from({ length: words.length * 2 }, (_, i) => i / 10);
  return await parseWordTable(wordTableBytes(words, v, 2, {}), "t");
}

const ids = (t: WordTable, ...w: string[]) => w.map((x) => t.index.get(x)! + 1);

Deno.test("word tokenizer: emoji names with ':', ',', '’', hyphens, accents and clitics", async () => {
  const t = await table();
  const cases: [string, string[]][] = [
    ["  Waving   Hand: Medium-Light Skin Tone ", [
      "waving",
      "hand",
      ":",
      "medium",
      "light",
      "skin",
      "tone",
    ]],
    ["kiss: woman, man", ["kiss", ":", "woman", ",", "man"]],
    // a hyphenated word the table holds stays whole
    ["red T-Shirt", ["red", "t-shirt"]],
    // ’ is read as '; the table's "d'ivoire" stays whole, and a decomposed é is composed
    ["flag: co\u0302te d’ivoire", ["flag", ":", "côte", "d'ivoire"]],
    ["CAFÉ", ["café"]],
    // an emoji's variation selector is no word, and does not glue itself to the next one
    ["the red \u2764\uFE0F heart", ["the", "red", "heart"]],
    ["\u2764\uFE0Fhand", ["hand"]],
    // GloVe's clitics split off a word the table lacks; a word the table has is kept whole
    ["men’s room", ["men", "'s", "room"]],
    ["don't", ["do", "n't"]],
    ["o'clock", ["o'clock"]],
    // apostrophes at the ends are quotes
    ["'hello'", ["'", "hello", "'"]],
    // and a quoted word still splits its clitic
    ["'don't'", ["'", "do", "n't", "'"]],
    ["the 'men's' room", ["the", "'", "men", "'s", "'", "room"]],
    // punctuation the table lacks is dropped; digits are words
    ["red heart!!! ☺ (7)", ["red", "heart", "(", "7", ")"]],
    ['"keycap: 7"', ['"', "keycap", ":", "7", '"']],
    ["heart-heart", ["heart", "heart"]],
  ];
  for (const [prompt, words] of cases) {
    assert.deepEqual(wordTokens(prompt, t), ids(t, ...words), prompt);
  }
  // the pieces themselves, with which are words
  assert.deepEqual(promptPieces("men's (red)", (w) => w === "red"), [
    { text: "men", word: true },
    { text: "'s", word: true },
    { text: "(", word: false },
    { text: "red", word: true },
    { text: ")", word: false },
  ]);
  assert.deepEqual(
    promptPieces("teachers' desk", () => false).map((p) => p.text),
    ["teachers", "'", "desk"],
  );
});

Deno.test("word tokenizer: a word outside the table names the nearest words", async () => {
  const t = await table();
  assert.throws(
    () => wordTokens("a purpel heart", t),
    (e: Error) => {
      assert.equal(e.message.split("\n").length, 1);
      // "a" is the first piece the table lacks
      assert.match(e.message, /^word 'a' is not in the model's vocabulary \(35 words\); nearest: /);
      return true;
    },
  );
  assert.throws(
    () => wordTokens("purpel heart", t),
    new Error(
      "word 'purpel' is not in the model's vocabulary (35 words); nearest: 'purple', 'pure', " +
        "'purpose'",
    ),
  );
  // nearness counts a swap of neighbours as one edit; ties go to the earlier (more frequent) row
  assert.deepEqual(nearestWords("haert", t), ["heart", "hand", "the"]); // 1, 3, 4 edits
  assert.deepEqual(nearestWords("men", t, 2), ["men", "man"]);
  // punctuation is never offered
  assert.ok(!nearestWords(",", t).includes(","));
  // a word longer than any a table may hold is named by its start, on a line of bounded length
  const long = "x".repeat(5000);
  assert.throws(
    () => wordTokens(`red ${long} heart`, t),
    new Error(
      `word '${"x".repeat(40)}…' (5000 characters) is not in the model's vocabulary (35 words), ` +
        `whose words are at most 100 characters: put spaces between words`,
    ),
  );
  // up to that length the nearest words are named as for any other word
  assert.throws(() => wordTokens("x".repeat(100), t), /\(35 words\); nearest: /);
  // a table of thousands of words answers in a moment
  const many = Array.from({ length: 5000 }, (_, i) => `w${i.toString(36)}x`);
  const big = await table([...many, "purple"]);
  assert.deepEqual(nearestWords("purpel", big, 1), ["purple"]);
});

Deno.test("word tokenizer: batches, padding, mask, empty and too-long prompts", async () => {
  const t = await table();
  const b = tokenizeWords(["red heart", "the red heart, red"], t, 5);
  assert.equal(b.n, 2);
  assert.equal(b.length, 5);
  assert.deepEqual([...b.tokens], [
    ...ids(t, "red", "heart"),
    0,
    0,
    0,
    ...ids(t, "the", "red", "heart", ",", "red"),
  ]);
  assert.deepEqual([...b.mask], [1, 1, 0, 0, 0, 1, 1, 1, 1, 1]);
  assert.throws(
    () => tokenizeWords(["red", "!!!"], t, 5),
    /^Error: prompt is empty after tokenizing \("!!!"\); prompts need 1 to max_length 5 words .*\(prompt 2 of 2\)$/,
  );
  assert.throws(() => tokenizeWords(["   "], t, 5), /empty after tokenizing/);
  assert.throws(
    () => tokenizeWords(["the red heart, the red heart"], t, 5),
    new Error(`prompt "the red heart, the red heart" is 7 tokens, over the limit max_length 5`),
  );
  assert.throws(() => tokenizeWords(["red"], t, 0), /max_length must be a positive integer/);
  assert.throws(() => tokenizeWords(["red", "blue"], t, 4), /word 'blue' .*\(prompt 2 of 2\)$/);
  const spec = wordTokenizerSpec(t, 16);
  assert.deepEqual(spec, {
    dim: 2,
    kind: "words",
    max_length: 16,
    pad: 0,
    rules: WORD_RULES,
    sha256: t.sha256,
    size: 35,
    token: "row+1",
  });
  assert.match(t.sha256, /^[0-9a-f]{64}$/);
});

Deno.test("withoutUnknownWords: the words the table lacks come out whole, the rest reads as before", async () => {
  const t = await table();
  const cases: [string, string[], string[]][] = [
    // prompt, the words removed, the tokens of what is left
    ["a red heart emoji!", ["a", "emoji"], ["red", "heart"]],
    // a hyphenated word goes whole when a part is unknown; one the table splits stays
    ["red-hot heart-heart", ["red-hot"], ["heart", "heart"]],
    // a clitic and a quote go with their word; a known word's clitic split stays
    ["kittens' don't men's", ["kittens'"], ["do", "n't", "men", "'s"]],
    ["Men’s Room: Medium-Light", [], ["men", "'s", "room", ":", "medium", "light"]],
  ];
  for (const [prompt, removed, words] of cases) {
    const out = withoutUnknownWords(prompt, t);
    assert.deepEqual(out.removed, removed, prompt);
    assert.deepEqual(wordTokens(out.prompt, t), ids(t, ...words), prompt);
  }
  // a prompt of known words reads exactly as it did
  for (const prompt of ["kiss: woman, man", "flag: co\u0302te d’ivoire", "'don't' (7)"]) {
    assert.deepEqual(wordTokens(withoutUnknownWords(prompt, t).prompt, t), wordTokens(prompt, t));
  }
  // nothing known left: the tokenizer's own empty-prompt error, not a silent null caption
  assert.throws(
    () => tokenizeWords([withoutUnknownWords("emoji", t).prompt], t, 8),
    /^Error: prompt is empty after tokenizing/,
  );
});
