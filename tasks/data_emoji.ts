// deno task data:emoji — writes an emoji image folder (io/emoji_set.ts) from the npm package of
// its style: emoji-datasource-google (Noto, the default) or emoji-datasource-twitter (Twemoji),
// read from Deno's npm cache.
//
// The packages are 74 MB each, so they are pinned here rather than in deno.json's imports, and
// recorded in the task's own lock file (tasks/data_emoji.lock): `deno task` installs every package
// of deno.json and deno.lock, so they would otherwise be downloaded for every test run.

import { fail, parseCli } from "./cli.ts";
import { npmPackageDir } from "./npm_package.ts";
import { EMOJI_STYLE_INFO, EMOJI_STYLES, type EmojiStyle, writeEmojiSet } from "../io/emoji_set.ts";

const USAGE = `
Writes an image folder of emoji with captions, for --data: images/, metadata.jsonl, README.md.

  deno task data:emoji [--style noto|twitter] [--out DIR]

  --style S       noto (Google's Noto Color Emoji, the default: captions are the names) or
                  twitter (Twemoji: captions "<name>, twitter style", the same file names)
  --out DIR       output folder (default data/emoji for noto, data/emoji-twitter for twitter): new,
                  empty, or a folder this task wrote in the same style
  --package DIR   an unpacked package of the style (emoji-datasource-google or -twitter) instead
                  of the npm one
`;

const a = parseCli(Deno.args, {
  out: { type: "string" },
  package: { type: "string" },
  style: { type: "string" },
}, USAGE);
const style = (a.style as string | undefined) ?? "noto";
if (!EMOJI_STYLES.includes(style as EmojiStyle)) {
  fail(`--style must be one of ${EMOJI_STYLES.join(", ")}, got '${style}'`);
}
const s = style as EmojiStyle;
const out = (a.out as string) ?? (s === "noto" ? "data/emoji" : `data/emoji-${s}`);
const info = EMOJI_STYLE_INFO[s];
try {
  const packageDir = (a.package as string | undefined) ?? await npmPackageDir(info.package);
  const r = writeEmojiSet(packageDir, out, s);
  console.error(
    `wrote ${r.images} ${s} emoji images from ${r.packageName}@${r.packageVersion} to ${out}: ` +
      `${r.categories} categories, ${r.subcategories} subcategories, longest caption ` +
      `${r.longestCaptionBytes} bytes; ${r.missing} without an image in this style left out`,
  );
} catch (e) {
  fail((e as Error).message.split("\n")[0]);
}
