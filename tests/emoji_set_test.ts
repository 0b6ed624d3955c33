import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ALIASES,
  baseCaption,
  emojiCaption,
  type EmojiEntry,
  writeEmojiSet,
} from "../io/emoji_set.ts";
import { loadImageFolder } from "../io/image_folder.ts";
import { encodePng } from "../io/png.ts";

function entry(e: Partial<EmojiEntry> & { name: string; short_name: string }): EmojiEntry {
  const unified = e.unified ?? "1F600";
  return {
    unified,
    image: `${unified.toLowerCase()}.png`,
    category: "Smileys & Emotion",
    subcategory: "face-smiling",
    sort_order: 0,
    has_img_google: true,
    ...e,
  };
}

const variant = (unified: string, has = true) => ({
  unified,
  image: `${unified.toLowerCase()}.png`,
  has_img_google: has,
});

/** A package folder laid out like emoji-datasource-google, with four emoji. */
function fakePackage(): string {
  const dir = Deno.makeTempDirSync({ prefix: "emoji_pkg_" });
  const entries: EmojiEntry[] = [
    entry({
      name: "WAVING HAND SIGN",
      short_name: "wave",
      unified: "1F44B",
      category: "People & Body",
      subcategory: "hand-fingers-open",
      sort_order: 170,
      skin_variations: {
        "1F3FD": variant("1F44B-1F3FD"),
        "1F3FF": variant("1F44B-1F3FF", false), // no Google image: left out
      },
    }),
    entry({
      name: "HEAVY BLACK HEART",
      short_name: "heart",
      unified: "2764-FE0F",
      subcategory: "heart",
      sort_order: 144,
    }),
    entry({
      name: "Andorra Flag",
      short_name: "flag-ad",
      unified: "1F1E6-1F1E9",
      category: "Flags",
      subcategory: "country-flag",
      sort_order: 1651,
    }),
    entry({
      name: "KISS: WOMAN, MAN",
      short_name: "woman-kiss-man",
      unified: "1F469-200D-2764-FE0F-200D-1F48B-200D-1F468",
      category: "People & Body",
      subcategory: "family",
      sort_order: 510,
      skin_variations: {
        "1F3FB-1F3FE": variant("1F469-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FE"),
      },
    }),
  ];
  Deno.writeTextFileSync(join(dir, "emoji.json"), JSON.stringify(entries));
  Deno.writeTextFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "emoji-datasource-google", version: "16.0.0" }),
  );
  // an RGBA image each, its colour from its position in the list
  const img = join(dir, "img", "google", "64");
  Deno.mkdirSync(img, { recursive: true });
  let k = 0;
  for (const e of entries) {
    for (const v of [e, ...Object.values(e.skin_variations ?? {})]) {
      const px = new Uint8Array(4 * 4 * 4);
      for (let i = 0; i < 16; i++) px.set([40 * k, 200, 10, 255], i * 4);
      if (v.has_img_google) Deno.writeFileSync(join(img, v.image), encodePng(4, 4, 4, px));
      k++;
    }
  }
  return dir;
}

Deno.test("emoji captions: lower-case names, CLDR aliases, flags, keycaps, skin tones", () => {
  assert.equal(baseCaption(entry({ name: "BLUE HEART", short_name: "blue_heart" })), "blue heart");
  assert.equal(baseCaption(entry({ name: "HEAVY BLACK HEART", short_name: "heart" })), "red heart");
  assert.equal(ALIASES.sunny, "sun");
  const flag = entry({
    name: "Côte d’Ivoire Flag",
    short_name: "flag-ci",
    subcategory: "country-flag",
  });
  assert.equal(baseCaption(flag), "flag: côte d’ivoire");
  assert.equal(
    baseCaption(entry({ name: "PIRATE FLAG", short_name: "pirate_flag", subcategory: "flag" })),
    "pirate flag",
  );
  assert.equal(baseCaption(entry({ name: "KEYCAP 7", short_name: "seven" })), "keycap: 7");
  const wave = entry({ name: "WAVING HAND SIGN", short_name: "wave" });
  assert.equal(emojiCaption(wave), "waving hand");
  assert.equal(emojiCaption(wave, "1F3FD"), "waving hand: medium skin tone");
  // a person's feature comes after the tone; people listed come before it
  const redHair = entry({ name: "MAN: RED HAIR", short_name: "red_haired_man" });
  assert.equal(emojiCaption(redHair, "1F3FB"), "man: light skin tone, red hair");
  const kiss = entry({ name: "KISS: WOMAN, MAN", short_name: "woman-kiss-man" });
  assert.equal(
    emojiCaption(kiss, "1F3FB-1F3FE"),
    "kiss: woman, man, light skin tone, medium-dark skin tone",
  );
  // two people of one tone: the tone once
  const hands = entry({ name: "PEOPLE HOLDING HANDS", short_name: "people_holding_hands" });
  assert.equal(emojiCaption(hands, "1F3FC-1F3FC"), "people holding hands: medium-light skin tone");
  assert.equal(
    emojiCaption(hands, "1F3FC-1F3FF"),
    "people holding hands: medium-light skin tone, dark skin tone",
  );
  assert.throws(() => emojiCaption(hands, "1F3FA"), /unknown skin tone '1F3FA'/);
});

Deno.test("emoji set: a fake package to an image folder that loads", () => {
  const pkg = fakePackage();
  const out = join(Deno.makeTempDirSync({ prefix: "emoji_out_" }), "emoji");
  const s = writeEmojiSet(pkg, out);
  assert.deepEqual([s.images, s.missing, s.categories, s.subcategories], [6, 1, 3, 4]);
  assert.equal(s.longestCaption, "kiss: woman, man, light skin tone, medium-dark skin tone");
  assert.equal(s.longestCaptionBytes, 56);
  const rows = Deno.readTextFileSync(join(out, "metadata.jsonl")).trim().split("\n")
    .map((l) => JSON.parse(l));
  // in the package's sort order, variants after their emoji; the dark-skinned wave has no image
  assert.deepEqual(rows.map((r) => r.text), [
    "red heart",
    "waving hand",
    "waving hand: medium skin tone",
    "kiss: woman, man",
    "kiss: woman, man, light skin tone, medium-dark skin tone",
    "flag: andorra",
  ]);
  assert.deepEqual(rows[0], {
    file_name: "images/2764-fe0f.png",
    text: "red heart",
    category: "Smileys & Emotion",
    subcategory: "heart",
    label: "heart",
  });
  assert.equal(rows[2].file_name, "images/1f44b-1f3fd.png");
  assert.equal(rows[2].label, "hand-fingers-open");
  // the images are the package's bytes
  for (const r of rows) {
    const name = r.file_name.slice("images/".length);
    assert.deepEqual(
      Deno.readFileSync(join(out, r.file_name)),
      Deno.readFileSync(join(pkg, "img", "google", "64", name)),
    );
  }
  const readme = Deno.readTextFileSync(join(out, "README.md"));
  assert.match(readme, /emoji-datasource-google@16\.0\.0/);
  assert.match(readme, /Apache License 2\.0/);
  assert.match(readme, /MIT/);
  assert.match(readme, /6 emoji images/);
  assert.match(readme, /Google image: 1\./);
  // the folder loads: subcategories as classes, alpha composited on white
  const set = loadImageFolder(out, { size: 2, channels: 3, cacheDir: null, log: () => {} });
  assert.equal(set.n, 6);
  assert.deepEqual(set.classNames, ["country-flag", "family", "hand-fingers-open", "heart"]);
  assert.deepEqual([...set.labels], [3, 2, 2, 1, 1, 0]);
  assert.deepEqual(set.captions, rows.map((r) => r.text));
  // the heart was drawn fourth (k = 3) in the package: red 120
  assert.deepEqual(
    [set.images[0], set.images[4], set.images[8]],
    [120 / 255, 200 / 255, 10 / 255].map(Math.fround),
  );
  const byCategory = loadImageFolder(out, {
    size: 2,
    channels: 1,
    labelField: "category",
    cacheDir: null,
    log: () => {},
  });
  assert.deepEqual(byCategory.classNames, ["Flags", "People & Body", "Smileys & Emotion"]);
  Deno.removeSync(pkg, { recursive: true });
  Deno.removeSync(join(out, ".."), { recursive: true });
});

Deno.test("emoji set: a missing image file is an error naming it", () => {
  const pkg = fakePackage();
  Deno.removeSync(join(pkg, "img", "google", "64", "2764-fe0f.png"));
  const out = Deno.makeTempDirSync({ prefix: "emoji_out_" });
  assert.throws(
    () => writeEmojiSet(pkg, out),
    /2764-fe0f\.png: cannot copy .*is the package complete\?/,
  );
  Deno.removeSync(pkg, { recursive: true });
  Deno.removeSync(out, { recursive: true });
});
