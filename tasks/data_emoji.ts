// deno task data:emoji — writes the emoji image folder (io/emoji_set.ts) from the npm package
// emoji-datasource-google, read from Deno's npm cache.
//
// The package is 74 MB, so it is pinned here rather than in deno.json's imports, and recorded in
// the task's own lock file (tasks/data_emoji.lock): `deno task` installs every package of
// deno.json and deno.lock, so it would otherwise be downloaded for every test run.

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { fail, parseCli } from "./cli.ts";
import { writeEmojiSet } from "../io/emoji_set.ts";

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
let packageDir = a.package as string | undefined;
if (!packageDir) {
  // imported at run time with a computed specifier, so that `deno check` and `deno task` leave
  // the 74 MB package alone; Deno fetches it into its npm cache on first use
  const spec = `${PACKAGE}/package.json`;
  await import(spec, { with: { type: "json" } });
  packageDir = dirname(fileURLToPath(import.meta.resolve(spec)));
}
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
