import assert from "node:assert/strict";
import {
  decodeTokens,
  encodePrompt,
  normalizePrompt,
  tokenize,
  tokenizerSpec,
  VOCAB_SIZE,
} from "../model/tokenizer.ts";

interface Case {
  prompt: string;
  max_length: number;
  normalized: string;
  tokens?: number[];
  error?: "empty" | "too_long";
  bytes?: number;
}

const cases: Case[] = JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/tokenizer_cases.json", import.meta.url)),
);

function errorOf(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    return e;
  }
  throw new Error("expected an error");
}

Deno.test("every fixture case", () => {
  assert.ok(cases.length >= 20, `${cases.length} cases`);
  let errors = 0;
  for (const c of cases) {
    const what = JSON.stringify(c.prompt);
    assert.equal(normalizePrompt(c.prompt), c.normalized, `normalize ${what}`);
    if (c.error) {
      errors++;
      const e = errorOf(() => tokenize([c.prompt], c.max_length));
      assert.ok(!e.message.includes("\n"), e.message);
      assert.ok(e.message.includes(`max_length ${c.max_length}`), `${what}: ${e.message}`);
      if (c.error === "empty") {
        assert.match(e.message, /^prompt is empty/, what);
      } else {
        assert.equal(c.error, "too_long");
        assert.equal(new TextEncoder().encode(c.normalized).length, c.bytes);
        assert.ok(e.message.includes(`${c.bytes} bytes`), `${what}: ${e.message}`);
      }
      continue;
    }
    const t = tokenize([c.prompt], c.max_length);
    assert.equal(t.n, 1);
    assert.equal(t.length, c.max_length);
    assert.deepEqual([...t.tokens], c.tokens, what);
    assert.deepEqual([...t.mask], c.tokens!.map((x) => (x !== 0 ? 1 : 0)), what);
    assert.deepEqual([...encodePrompt(c.prompt, c.max_length)], c.tokens);
    assert.equal(decodeTokens(t.tokens), c.normalized);
  }
  assert.ok(errors > 0 && errors < cases.length);
});

Deno.test("batches are [n, L] row-major", () => {
  const t = tokenize(["seven", "7", "big nine"], 8);
  assert.equal(t.tokens.length, 24);
  assert.deepEqual([...t.tokens.subarray(0, 8)], [116, 102, 119, 102, 111, 0, 0, 0]);
  assert.deepEqual([...t.tokens.subarray(8, 16)], [56, 0, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...t.tokens.subarray(16)], [99, 106, 104, 33, 111, 106, 111, 102]);
  assert.deepEqual([...t.mask.subarray(8, 16)], [1, 0, 0, 0, 0, 0, 0, 0]);
  assert.ok(t.mask instanceof Float32Array && t.tokens instanceof Int32Array);
  const e = errorOf(() => tokenize(["ok", "   "], 8));
  assert.match(e.message, /^prompt is empty.*\(prompt 2 of 2\)$/);
  const long = errorOf(() => tokenize(["nine hundred"], 8));
  assert.equal(
    long.message,
    'prompt "nine hundred" is 12 bytes in UTF-8, over the limit max_length 8',
  );
  // every byte value maps into the vocabulary
  const all = tokenize(["\u00ff\u{10ffff}"], 8);
  assert.ok([...all.tokens].every((x) => x >= 0 && x < VOCAB_SIZE));
  assert.equal(tokenize([], 4).tokens.length, 0);
  assert.equal(tokenizerSpec(8).max_length, 8);
  assert.equal(tokenizerSpec(8).vocab_size, 257);
});
