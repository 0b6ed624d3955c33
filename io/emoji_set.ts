// The emoji image folder: the 64×64 Noto Color Emoji PNGs of the npm package
// emoji-datasource-google, captioned with their names, as an image folder with metadata.jsonl
// (io/image_folder.ts). `deno task data:emoji` (tasks/data_emoji.ts) runs it on the package
// itself; the tests run it on a small fake package of the same layout.
//
// A second style, Twemoji (emoji-datasource-twitter, the same emoji.json and layout), makes its
// own folder with the same file names, captioned "<name>, twitter style": the plain name is the
// Noto drawing, so a model trained on both draws either, Noto by default.
//
// Captions are the package's emoji names, lower-cased, in the style of Unicode CLDR's short
// names ("waving hand: medium skin tone"). The package names single-character emoji by their
// Unicode character names, some of which describe the glyph of 1990s fonts rather than the
// picture (❤️ is "HEAVY BLACK HEART", ☀️ "BLACK SUN WITH RAYS") or say nothing of it
// ("SQUARED CJK UNIFIED IDEOGRAPH-7121"); ALIASES, keyed by the package's unique short name,
// gives those CLDR's name instead.

import { join } from "node:path";

/** The fields of an entry of the package's emoji.json that the set uses. */
export interface EmojiEntry {
  name: string;
  unified: string;
  image: string;
  short_name: string;
  category: string;
  subcategory: string;
  sort_order: number;
  has_img_google: boolean;
  has_img_twitter?: boolean;
  /** skin-tone variants by tone code points ("1F3FD", or "1F3FB-1F3FF" for two people) */
  skin_variations?: Record<
    string,
    { unified: string; image: string; has_img_google: boolean; has_img_twitter?: boolean }
  >;
}

/** The drawings a folder can hold: Google's Noto Color Emoji (the default) or Twitter's Twemoji. */
export type EmojiStyle = "noto" | "twitter";
export const EMOJI_STYLES: readonly EmojiStyle[] = ["noto", "twitter"];

export interface EmojiStyleInfo {
  /** the npm package of the drawings, pinned */
  package: string;
  /** the 64×64 PNGs inside it */
  imageDir: string;
  /** emoji.json's flag for "this set draws it" */
  flag: "has_img_google" | "has_img_twitter";
  /** what the README calls the drawings */
  artwork: string;
  /** their licence, for the README */
  licence: string;
}

export const EMOJI_STYLE_INFO: Readonly<Record<EmojiStyle, EmojiStyleInfo>> = {
  noto: {
    package: "emoji-datasource-google@16.0.0",
    imageDir: "img/google/64",
    flag: "has_img_google",
    artwork: "Google's Noto Color Emoji",
    licence: "Noto Emoji, Copyright Google Inc., Apache License 2.0\n" +
      "  (https://github.com/googlefonts/noto-emoji/blob/main/LICENSE)",
  },
  twitter: {
    package: "emoji-datasource-twitter@16.0.0",
    imageDir: "img/twitter/64",
    flag: "has_img_twitter",
    artwork: "Twitter's Twemoji",
    licence: "Twemoji, Copyright Twitter, Inc. and other contributors, Creative Commons\n" +
      "  Attribution 4.0 International (CC-BY 4.0, https://creativecommons.org/licenses/by/4.0/;\n" +
      "  https://github.com/jdecked/twemoji/blob/v15.0.2/LICENSE-GRAPHICS); the images are unchanged",
  },
};

/** A caption in a style: the plain name for Noto, "<name>, twitter style" for Twemoji. */
export function styleCaption(caption: string, style: EmojiStyle): string {
  return style === "noto" ? caption : `${caption}, ${style} style`;
}

/** CLDR's names of the five Fitzpatrick modifiers, by code point. */
export const SKIN_TONES: Readonly<Record<string, string>> = {
  "1F3FB": "light skin tone",
  "1F3FC": "medium-light skin tone",
  "1F3FD": "medium skin tone",
  "1F3FE": "medium-dark skin tone",
  "1F3FF": "dark skin tone",
};

const button = (meaning: string) => `japanese "${meaning}" button`;

/** CLDR's name where the package's misleads or is opaque, by the package's short name. */
export const ALIASES: Readonly<Record<string, string>> = {
  // "black" and "white" in Unicode names mean filled and outlined glyphs, "heavy" a bold one
  heart: "red heart",
  sunny: "sun",
  phone: "telephone",
  relaxed: "smiling face",
  point_up: "index pointing up",
  point_up_2: "backhand index pointing up",
  point_down: "backhand index pointing down",
  point_left: "backhand index pointing left",
  point_right: "backhand index pointing right",
  spades: "spade suit",
  clubs: "club suit",
  hearts: "heart suit",
  diamonds: "diamond suit",
  recycle: "recycling symbol",
  scissors: "scissors",
  black_joker: "joker",
  white_check_mark: "check mark button",
  heavy_check_mark: "check mark",
  heavy_multiplication_x: "multiply",
  heavy_plus_sign: "plus",
  heavy_minus_sign: "minus",
  heavy_division_sign: "divide",
  eight_pointed_black_star: "eight-pointed star",
  question: "red question mark",
  grey_question: "white question mark",
  exclamation: "red exclamation mark",
  grey_exclamation: "white exclamation mark",
  o: "hollow red circle",
  star: "star",
  arrow_right: "right arrow",
  arrow_left: "left arrow",
  arrow_up: "up arrow",
  arrow_down: "down arrow",
  fast_forward: "fast-forward button",
  rewind: "fast reverse button",
  arrow_double_up: "fast up button",
  arrow_double_down: "fast down button",
  arrow_forward: "play button",
  arrow_backward: "reverse button",
  // letters, keycaps and Japanese signs named by their code points
  hash: "keycap: #",
  keycap_ten: "keycap: 10",
  a: "a button (blood type)",
  b: "b button (blood type)",
  ab: "ab button (blood type)",
  o2: "o button (blood type)",
  parking: "p button",
  koko: button("here"),
  sa: button("service charge"),
  u7121: button("free of charge"),
  u6307: button("reserved"),
  u7981: button("prohibited"),
  u7a7a: button("vacancy"),
  u5408: button("passing grade"),
  u6e80: button("no vacancy"),
  u6709: button("not free of charge"),
  u6708: button("monthly amount"),
  u7533: button("application"),
  u5272: button("discount"),
  u55b6: button("open for business"),
  ideograph_advantage: button("bargain"),
  accept: button("acceptable"),
  congratulations: button("congratulations"),
  secret: button("secret"),
  // names that say something else than the picture shows
  imp: "angry face with horns",
  rage: "enraged face",
  triumph: "face with steam from nose",
  dizzy_face: "face with crossed-out eyes",
  hugging_face: "smiling face with open hands",
  moyai: "moai",
  hocho: "kitchen knife",
  gun: "water pistol",
  computer: "laptop",
  minidisc: "computer disk",
  blue_car: "sport utility vehicle",
  pouch: "clutch bag",
  school_satchel: "backpack",
  izakaya_lantern: "red paper lantern",
  "8ball": "pool 8 ball",
  dart: "bullseye",
  smoking: "cigarette",
  no_entry_sign: "prohibited",
  octagonal_sign: "stop sign",
  put_litter_in_its_place: "litter in bin sign",
  mens: "men's room",
  womens: "women's room",
  atm: "atm sign",
  scooter: "kick scooter",
  probing_cane: "white cane",
  // people: the gender-neutral CLDR name, matching the "man …" and "woman …" variants
  runner: "person running",
  surfer: "person surfing",
  swimmer: "person swimming",
  walking: "person walking",
  bicyclist: "person biking",
  mountain_bicyclist: "person mountain biking",
  rowboat: "person rowing boat",
  bath: "person taking bath",
  sleeping_accommodation: "person in bed",
  massage: "person getting massage",
  haircut: "person getting haircut",
  no_good: "person gesturing no",
  ok_woman: "person gesturing ok",
  information_desk_person: "person tipping hand",
  raising_hand: "person raising hand",
  person_with_pouting_face: "person pouting",
  bow: "person bowing",
  face_palm: "person facepalming",
  shrug: "person shrugging",
  dancers: "people with bunny ears",
  dancer: "woman dancing",
  santa: "santa claus",
  mrs_claus: "mrs. claus",
  guardsman: "guard",
  man_with_gua_pi_mao: "person with skullcap",
  man_with_turban: "person wearing turban",
  person_in_tuxedo: "person in tuxedo",
  bride_with_veil: "person with veil",
  person_with_headscarf: "woman with headscarf",
  person_with_blond_hair: "person: blond hair",
  bearded_person: "person: beard",
  // hands, which come in every skin tone: the "sign" of their Unicode names dropped
  wave: "waving hand",
  "+1": "thumbs up",
  "-1": "thumbs down",
  ok_hand: "ok hand",
  clap: "clapping hands",
  open_hands: "open hands",
  facepunch: "oncoming fist",
  i_love_you_hand_sign: "love-you gesture",
  "spock-hand": "vulcan salute",
  middle_finger: "middle finger",
  crossed_fingers: "crossed fingers",
  pray: "folded hands",
  raised_hands: "raising hands",
  // the skin-tone swatches themselves
  "skin-tone-2": "light skin tone",
  "skin-tone-3": "medium-light skin tone",
  "skin-tone-4": "medium skin tone",
  "skin-tone-5": "medium-dark skin tone",
  "skin-tone-6": "dark skin tone",
};

/** The caption of an emoji without a skin tone. */
export function baseCaption(e: EmojiEntry): string {
  const alias = ALIASES[e.short_name];
  if (alias) return alias;
  const name = e.name.toLowerCase();
  // "Andorra Flag" → "flag: andorra", "KEYCAP 7" → "keycap: 7", as CLDR writes them
  const flag = /^(.+) flag$/.exec(name);
  if (flag && /-flag$/.test(e.subcategory)) return `flag: ${flag[1]}`;
  const keycap = /^keycap ([^:]+)$/.exec(name);
  if (keycap) return `keycap: ${keycap[1]}`;
  return name;
}

/**
 * The caption of an emoji in a skin tone (`tones` as the package's skin_variations keys:
 * "1F3FD", or "1F3FB-1F3FF" for two people), in CLDR's order: after the base name and a colon;
 * after the person of "man: red hair" (→ "man: light skin tone, red hair"); after the people of
 * "kiss: woman, man" (→ "kiss: woman, man, light skin tone"); a tone shared by both people is
 * named once.
 */
export function emojiCaption(e: EmojiEntry, tones?: string): string {
  const base = baseCaption(e);
  if (!tones) return base;
  const names = [...new Set(tones.split("-").map((t) => SKIN_TONES[t]))];
  if (names.some((n) => n === undefined)) {
    throw new Error(`emoji ${e.unified}: unknown skin tone '${tones}'`);
  }
  const colon = base.indexOf(": ");
  if (colon < 0) return `${base}: ${names.join(", ")}`;
  const [who, what] = [base.slice(0, colon), base.slice(colon + 2)];
  // "kiss: woman, man" lists people; "man: red hair" one person's feature
  const people = /^(man|woman|person|people)(, (man|woman|person|people))*$/.test(what);
  return people ? `${base}, ${names.join(", ")}` : `${who}: ${names.join(", ")}, ${what}`;
}

/** One row of metadata.jsonl. */
export interface EmojiRow {
  file_name: string;
  text: string;
  category: string;
  subcategory: string;
  /** the class for stage 1: the subcategory */
  label: string;
  /** the drawings' style; absent in the Noto folder, which is as it was before styles */
  style?: EmojiStyle;
}

export interface EmojiSetSummary {
  style: EmojiStyle;
  images: number;
  /** emoji (and variants) the style's set has no image for, left out */
  missing: number;
  categories: number;
  subcategories: number;
  /** the longest caption, in UTF-8 bytes */
  longestCaptionBytes: number;
  longestCaption: string;
  packageName: string;
  packageVersion: string;
}

/**
 * The file an emoji folder holds to say `deno task data:emoji` wrote it (hidden, so the image
 * folder's listing skips it): the task rewrites only such a folder or an empty one.
 */
export const EMOJI_SET_MARKER = ".pixart-emoji-set";

/** An image's name in the package: a plain file name, never a path out of its folder. */
const IMAGE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*\.png$/;

/**
 * The rows of the set in a style, in the package's sort order, and how many images the style's
 * set lacks.
 */
export function emojiRows(
  entries: EmojiEntry[],
  style: EmojiStyle = "noto",
): { rows: EmojiRow[]; missing: number } {
  const flag = EMOJI_STYLE_INFO[style].flag;
  const rows: EmojiRow[] = [];
  let missing = 0;
  const sorted = [...entries].sort((a, b) => a.sort_order - b.sort_order);
  for (const e of sorted) {
    const variants: [string | undefined, Pick<EmojiEntry, "image" | typeof flag>][] = [
      [undefined, e],
      ...Object.entries(e.skin_variations ?? {}),
    ];
    for (const [tones, v] of variants) {
      if (!IMAGE_NAME.test(v.image) || v.image.includes("..")) {
        throw new Error(
          `emoji.json: '${e.short_name}' names the image ${JSON.stringify(v.image)}, which is ` +
            `not a file name in the package's image folder: use the genuine package`,
        );
      }
      if (!v[flag]) {
        missing++;
        continue;
      }
      const row: EmojiRow = {
        file_name: `images/${v.image}`,
        text: styleCaption(emojiCaption(e, tones), style),
        category: e.category,
        subcategory: e.subcategory,
        label: e.subcategory,
      };
      if (style !== "noto") row.style = style;
      rows.push(row);
    }
  }
  return { rows, missing };
}

function readme(s: EmojiSetSummary): string {
  if (s.style !== "noto") return styleReadme(s);
  return `# Emoji images with captions

${
    s.images.toLocaleString("en")
  } emoji images, 64×64 RGBA PNG, from the npm package \`${s.packageName}@${s.packageVersion}\`
(\`img/google/64/\`: Google's Noto Color Emoji), written by \`deno task data:emoji\`.

- \`images/\`: the PNGs, named by their code points as in the package.
- \`metadata.jsonl\`: one line per image: \`file_name\`, \`text\` (the caption: the emoji's name,
  lower-case, in Unicode CLDR's style, e.g. "waving hand: medium skin tone"), \`category\`
  (${s.categories}), \`subcategory\` (${s.subcategories}) and \`label\` (= subcategory, the class of
  class-conditional training; \`data.label_field: category\` picks the ${s.categories} categories instead).

Longest caption: ${s.longestCaptionBytes} bytes ("${s.longestCaption}"). Left out for want of a
Google image: ${s.missing}.

## Licences

- Images: Noto Emoji, Copyright Google Inc., Apache License 2.0
  (https://github.com/googlefonts/noto-emoji/blob/main/LICENSE).
- Names and categories: the package's emoji data, MIT licence (Copyright Cal Henderson).
`;
}

/** The README of a folder in another style than Noto's. */
function styleReadme(s: EmojiSetSummary): string {
  const info = EMOJI_STYLE_INFO[s.style];
  return `# Emoji images with captions: ${info.artwork}

${
    s.images.toLocaleString("en")
  } emoji images, 64×64 RGBA PNG, from the npm package \`${s.packageName}@${s.packageVersion}\`
(\`${info.imageDir}/\`: ${info.artwork}), written by \`deno task data:emoji --style ${s.style}\`.
The same emoji as the Noto folder (\`deno task data:emoji\`), under the same file names, drawn
another way: name this folder in a config's \`data.extra_sources\` beside the Noto one as
\`data.source\` to train on both drawings.

- \`images/\`: the PNGs, named by their code points as in the package.
- \`metadata.jsonl\`: one line per image: \`file_name\`, \`text\` (the caption: the emoji's name,
  lower-case, in Unicode CLDR's style, then ", ${s.style} style", e.g. "waving hand: medium skin
  tone, ${s.style} style"; the name alone is the Noto drawing), \`category\` (${s.categories}),
  \`subcategory\` (${s.subcategories}), \`label\` (= subcategory) and \`style\` ("${s.style}").

Longest caption: ${s.longestCaptionBytes} bytes ("${s.longestCaption}"). Left out for want of an
image in this style: ${s.missing}.

## Licences

- Images: ${info.licence}.
- Names and categories: the package's emoji data, MIT licence (Copyright Cal Henderson).
`;
}

/**
 * Refuses an output folder that is not empty and not an emoji folder this task wrote (its marker),
 * or one of another style: rewriting it must not replace a user's files.
 */
export function checkEmojiOutput(outDir: string, style: EmojiStyle): void {
  let entries: string[];
  try {
    if (!Deno.statSync(outDir).isDirectory) {
      throw new Error(`--out '${outDir}' is a file: name a new or empty folder, e.g. data/emoji`);
    }
    entries = [...Deno.readDirSync(outDir)].map((e) => e.name);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return;
    throw e;
  }
  if (entries.length === 0) return;
  let marker: { style?: unknown } | null = null;
  try {
    marker = JSON.parse(Deno.readTextFileSync(join(outDir, EMOJI_SET_MARKER)));
  } catch { /* no marker: not a folder this task wrote */ }
  if (typeof marker !== "object" || marker === null) {
    throw new Error(
      `--out '${outDir}' is not empty and is not an emoji folder this task wrote (it has no ` +
        `${EMOJI_SET_MARKER}): name a new or empty folder, e.g. data/emoji`,
    );
  }
  if (marker.style !== style) {
    throw new Error(
      `--out '${outDir}' holds the ${marker.style} emoji folder: write the ${style} one to ` +
        `another folder, e.g. data/emoji-${style}`,
    );
  }
}

/**
 * Writes the set in a style from an unpacked package folder of that style (emoji.json,
 * package.json, and the images: img/google/64/ for Noto, img/twitter/64/ for Twemoji) to
 * `outDir`: images/, metadata.jsonl, README.md and the marker. `outDir` must be new, empty or an
 * emoji folder of the same style this wrote.
 */
export function writeEmojiSet(
  packageDir: string,
  outDir: string,
  style: EmojiStyle = "noto",
): EmojiSetSummary {
  checkEmojiOutput(outDir, style);
  const read = (f: string) => JSON.parse(Deno.readTextFileSync(join(packageDir, f)));
  const pkg = read("package.json") as { name: string; version: string };
  const entries = read("emoji.json") as EmojiEntry[];
  const { rows, missing } = emojiRows(entries, style);
  if (rows.length === 0) throw new Error(`${packageDir}: emoji.json has no emoji with an image`);
  Deno.mkdirSync(join(outDir, "images"), { recursive: true });
  // first, so that a write cut short leaves a folder the task may write again
  Deno.writeTextFileSync(
    join(outDir, EMOJI_SET_MARKER),
    JSON.stringify({ written_by: "deno task data:emoji", style, package: pkg.name }) + "\n",
  );
  const imgDir = join(packageDir, ...EMOJI_STYLE_INFO[style].imageDir.split("/"));
  for (const r of rows) {
    const src = join(imgDir, r.file_name.slice("images/".length));
    try {
      Deno.copyFileSync(src, join(outDir, r.file_name));
    } catch (e) {
      throw new Error(`${src}: cannot copy (${(e as Error).message}): is the package complete?`);
    }
  }
  Deno.writeTextFileSync(
    join(outDir, "metadata.jsonl"),
    rows.map((r) => JSON.stringify(r)).join("\n") + "\n",
  );
  const encoder = new TextEncoder();
  const longest = rows.reduce(
    (a, r) => encoder.encode(r.text).length > encoder.encode(a).length ? r.text : a,
    "",
  );
  const summary: EmojiSetSummary = {
    style,
    images: rows.length,
    missing,
    categories: new Set(rows.map((r) => r.category)).size,
    subcategories: new Set(rows.map((r) => r.subcategory)).size,
    longestCaptionBytes: encoder.encode(longest).length,
    longestCaption: longest,
    packageName: pkg.name,
    packageVersion: pkg.version,
  };
  Deno.writeTextFileSync(join(outDir, "README.md"), readme(summary));
  return summary;
}
