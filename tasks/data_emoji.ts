// deno task data:emoji — writes the emoji image folder (tasks/emoji_set.ts) from the npm package
// emoji-datasource-google, read from Deno's npm cache.
//
// The package is 74 MB, so it is pinned here rather than in deno.json's imports, and recorded in
// the task's own lock file (tasks/data_emoji.lock): `deno task` installs every package of
// deno.json and deno.lock, so it would otherwise be downloaded for every test run.

// imported so that Deno fetches the package into its cache before the task runs (same pin as
// PACKAGE below)
// deno-lint-ignore no-import-prefix
import "npm:emoji-datasource-google@16.0.0/package.json" with { type: "json" };
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { fail, parseCli } from "./cli.ts";
import { writeEmojiSet } from "./emoji_set.ts";

const USAGE = `
Writes an image folder of emoji with captions, for --data: images/, metadata.jsonl, README.md.

  deno task data:emoji [--out DIR]

  --out DIR       output folder (default data/emoji)
  --package DIR   an unpacked emoji-datasource-google package instead of the npm one
`;

const PACKAGE = "npm:emoji-datasource-google@16.0.0";

const a = parseCli(Deno.args, {
  out: { type: "string" },
  package: { type: "string" },
}, USAGE);
const out = (a.out as string) ?? "data/emoji";
const packageDir = (a.package as string) ??
  dirname(fileURLToPath(import.meta.resolve(`${PACKAGE}/package.json`)));
try {
  const s = writeEmojiSet(packageDir, out);
  console.error(
    `wrote ${s.images} emoji images from ${s.packageName}@${s.packageVersion} to ${out}: ` +
      `${s.categories} categories, ${s.subcategories} subcategories, longest caption ` +
      `${s.longestCaptionBytes} bytes; ${s.missing} without a Google image left out`,
  );
} catch (e) {
  fail((e as Error).message.split("\n")[0]);
}
