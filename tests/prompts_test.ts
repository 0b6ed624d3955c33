// Prompt files: what is written beside a grid reads back as the same prompts, one per line.

import assert from "node:assert/strict";
import { escapePrompt, parsePrompts, promptsText } from "../io/prompts.ts";

Deno.test("a grid's prompts file reads back as the same prompts, whatever they hold", () => {
  const prompts = ["seven", "blue heart", "a | b", "two\nlines", "back\\slash", "7"];
  const text = promptsText(prompts);
  assert.equal(text.split("\n").length, prompts.length + 1, "one line per prompt");
  assert.deepEqual(parsePrompts(text), prompts);
  assert.equal(escapePrompt("a | b"), "a \\| b");
  // a hand-written file may put several prompts on a line with "|"
  assert.deepEqual(parsePrompts("seven | 3\n\n  dog face  \n"), ["seven", "3", "dog face"]);
});
