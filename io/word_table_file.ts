// Reading a word table file (io/word_table.ts) from disk: its header first, so a file whose
// header is hostile or whose size does not match its vectors is refused before it is read whole.

import { errnoText } from "./errors.ts";
import { readSafetensorsHeader } from "./safetensors.ts";
import { checkTableShape, parseWordTable, WORD_VECTORS, type WordTable } from "./word_table.ts";

/** Reads and checks a word table file; errors are one line naming it. */
export async function readWordTable(path: string): Promise<WordTable> {
  const fail = (m: string): never => {
    throw new Error(`word table ${path}: ${m}`);
  };
  let size = 0;
  try {
    size = Deno.statSync(path).size;
  } catch (e) {
    fail(`cannot read it (${errnoText(e)}): write it with \`deno task data:words\``);
  }
  let header;
  try {
    header = readSafetensorsHeader(path);
  } catch (e) {
    fail((e as Error).message.replace(/^(safetensors|checkpoint) [^:]*: /, ""));
  }
  const t = header!.tensors.get(WORD_VECTORS);
  if (t && t.shape.length === 2) {
    checkTableShape(t.shape[0], t.shape[1], fail);
    const expected = header!.dataStart + t.offsets[1];
    if (size !== expected) fail(`${size} bytes where its header describes ${expected}: corrupt`);
  }
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (e) {
    return fail(`cannot read it (${errnoText(e)})`);
  }
  return parseWordTable(bytes, path);
}

/** Whether writing `bytes` to `path` would replace a file there that holds other bytes. */
export function replacesOtherBytes(path: string, bytes: Uint8Array): boolean {
  let old: Uint8Array;
  try {
    old = Deno.readFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
  return old.length !== bytes.length || old.some((b, i) => b !== bytes[i]);
}
