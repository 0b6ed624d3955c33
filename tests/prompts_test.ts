// Prompt files: what is written beside a grid reads back as the same prompts, one per line.

import assert from "node:assert/strict";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  escapePrompt,
  parsePrompts,
  PROMPTS_FILE_MAX_BYTES,
  promptsText,
  readPromptsFile,
} from "../io/prompts.ts";

Deno.test("a grid's prompts file reads back as the same prompts, whatever they hold", () => {
  const prompts = ["seven", "blue heart", "a | b", "two\nlines", "back\\slash", "7"];
  const text = promptsText(prompts);
  assert.equal(text.split("\n").length, prompts.length + 1, "one line per prompt");
  assert.deepEqual(parsePrompts(text), prompts);
  assert.equal(escapePrompt("a | b"), "a \\| b");
  // a hand-written file may put several prompts on a line with "|"
  assert.deepEqual(parsePrompts("seven | 3\n\n  dog face  \n"), ["seven", "3", "dog face"]);
});

Deno.test("a prompts file must be a regular text file of bounded size", () => {
  for (const device of ["/dev/zero", "/dev/null"]) {
    if (!existsSync(device)) continue;
    assert.throws(
      () => readPromptsFile(device),
      new RegExp(
        `^Error: prompts file '${device}' is not a regular file: pass a text file, one prompt per line$`,
      ),
    );
  }
  const dir = Deno.makeTempDirSync({ prefix: "pixart-prompts-" });
  try {
    const big = join(dir, "big.txt");
    writeFileSync(big, "seven\n".repeat((PROMPTS_FILE_MAX_BYTES / 6) + 1));
    assert.throws(
      () => readPromptsFile(big),
      /^Error: prompts file '.*big\.txt' is over 1 MiB \(\d+ bytes\): split it into smaller files$/,
    );
    const ok = join(dir, "ok.txt");
    writeFileSync(ok, "seven | 3\n");
    assert.deepEqual(readPromptsFile(ok), ["seven", "3"]);
    // a file saved in another encoding ("côte" in Windows-1252) names its line, not a U+FFFD
    const latin = join(dir, "latin.txt");
    writeFileSync(latin, Uint8Array.from([0x61, 0x0a, 0x63, 0xf4, 0x74, 0x65, 0x0a]));
    assert.throws(
      () => readPromptsFile(latin),
      /^Error: prompts file '.*latin\.txt' line 2: not UTF-8 text \(byte 0xf4 at byte 2 of the line\): save the file as UTF-8$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
