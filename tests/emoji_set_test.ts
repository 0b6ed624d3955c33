import assert from "node:assert/strict";
import { join } from "node:path";
import {
  ALIASES,
  baseCaption,
  EMOJI_SET_MARKER,
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
    has_img_twitter: true,
    ...e,
  };
}

const variant = (unified: string, has = true, hasTwitter = true) => ({
  unified,
  image: `${unified.toLowerCase()}.png`,
  has_img_google: has,
  has_img_twitter: hasTwitter,
});

/**
 * A package folder laid out like emoji-datasource-google and -twitter (the same emoji.json), with
 * four emoji, each style's images in its own colours.
 */
function fakePackage(edit: (entries: EmojiEntry[]) => void = () => {}): string {
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
        // no Twemoji: left out of that style
        "1F3FB-1F3FE": variant(
          "1F469-1F3FB-200D-2764-FE0F-200D-1F48B-200D-1F468-1F3FE",
          true,
          false,
        ),
      },
    }),
  ];
  edit(entries);
  Deno.writeTextFileSync(join(dir, "emoji.json"), JSON.stringify(entries));
  Deno.writeTextFileSync(
    join(dir, "package.json"),
    JSON.stringify({ name: "emoji-datasource-google", version: "16.0.0" }),
  );
  // an RGBA image each, its colour from its position in the list (blue 10 in the Google set,
  // 90 in the Twitter one)
  for (const [style, blue] of [["google", 10], ["twitter", 90]] as const) {
    const img = join(dir, "img", style, "64");
    Deno.mkdirSync(img, { recursive: true });
    let k = 0;
    for (const e of entries) {
      for (const v of [e, ...Object.values(e.skin_variations ?? {})]) {
        const px = new Uint8Array(4 * 4 * 4);
        for (let i = 0; i < 16; i++) px.set([40 * k, 200, blue, 255], i * 4);
        const has = style === "google" ? v.has_img_google : v.has_img_twitter;
        if (has && /^[\w.-]+$/.test(v.image)) {
          Deno.writeFileSync(join(img, v.image), encodePng(4, 4, 4, px));
        }
        k++;
      }
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

Deno.test("emoji set: the Twemoji style, the same file names, captions '<name>, twitter style'", () => {
  const pkg = fakePackage();
  const root = Deno.makeTempDirSync({ prefix: "emoji_out_" });
  const noto = writeEmojiSet(pkg, join(root, "noto"));
  const tw = writeEmojiSet(pkg, join(root, "twitter"), "twitter");
  // the kiss in skin tones has no Twemoji, the dark-skinned wave no Noto image: each is left out
  // of one style only
  assert.deepEqual([noto.images, noto.missing, tw.images, tw.missing], [6, 1, 6, 1]);
  const rows = (d: string) =>
    Deno.readTextFileSync(join(root, d, "metadata.jsonl")).trim().split("\n").map((l) =>
      JSON.parse(l)
    );
  const [n, t] = [rows("noto"), rows("twitter")];
  // the Noto folder is as it was before styles: no style column, plain names
  assert.deepEqual(Object.keys(n[0]), ["file_name", "text", "category", "subcategory", "label"]);
  assert.deepEqual(t[0], { ...n[0], text: "red heart, twitter style", style: "twitter" });
  assert.deepEqual(t.map((r) => r.text), [
    "red heart, twitter style",
    "waving hand, twitter style",
    "waving hand: medium skin tone, twitter style",
    "waving hand: dark skin tone, twitter style",
    "kiss: woman, man, twitter style",
    "flag: andorra, twitter style",
  ]);
  // every Twemoji row has the file name of the Noto row of the same emoji, and the Twitter bytes
  for (const r of t) {
    const twin = n.find((x) => x.file_name === r.file_name);
    if (r.file_name === "images/1f44b-1f3ff.png") assert.equal(twin, undefined);
    else assert.equal(`${twin.text}, twitter style`, r.text);
    const name = r.file_name.slice("images/".length);
    assert.deepEqual(
      Deno.readFileSync(join(root, "twitter", r.file_name)),
      Deno.readFileSync(join(pkg, "img", "twitter", "64", name)),
    );
  }
  const readme = Deno.readTextFileSync(join(root, "twitter", "README.md"));
  assert.match(readme, /Twemoji/);
  assert.match(readme, /CC-BY 4\.0/);
  assert.match(readme, /deno task data:emoji --style twitter/);
  const set = loadImageFolder(join(root, "twitter"), {
    size: 2,
    channels: 3,
    cacheDir: null,
    log: () => {},
  });
  assert.equal(set.n, 6);
  // the Twitter heart: blue 90
  assert.equal(set.images[8], Math.fround(90 / 255));
  // a folder of one style is not rewritten in the other
  assert.throws(
    () => writeEmojiSet(pkg, join(root, "noto"), "twitter"),
    /holds the noto emoji folder: write the twitter one to another folder, e\.g\. data\/emoji-twitter/,
  );
  Deno.removeSync(pkg, { recursive: true });
  Deno.removeSync(root, { recursive: true });
});

Deno.test("emoji set: a non-empty --out that is not an emoji folder it wrote is refused", () => {
  const pkg = fakePackage();
  // a clone of a repository: its README must survive
  const clone = Deno.makeTempDirSync({ prefix: "emoji_clone_" });
  Deno.writeTextFileSync(join(clone, "README.md"), "# my project\n");
  assert.throws(
    () => writeEmojiSet(pkg, clone),
    (e: Error) => {
      assert.match(
        e.message,
        /^--out '.*' is not empty and is not an emoji folder this task wrote \(it has no \.pixart-emoji-set\): name a new or empty folder, e\.g\. data\/emoji$/,
      );
      return true;
    },
  );
  assert.equal(Deno.readTextFileSync(join(clone, "README.md")), "# my project\n");
  assert.deepEqual([...Deno.readDirSync(clone)].map((e) => e.name), ["README.md"]);
  // a file is no folder
  assert.throws(() => writeEmojiSet(pkg, join(clone, "README.md")), /is a file/);
  // an empty folder, and the task's own folder again, are written
  const empty = join(clone, "emoji");
  Deno.mkdirSync(empty);
  writeEmojiSet(pkg, empty);
  assert.ok(Deno.statSync(join(empty, EMOJI_SET_MARKER)).isFile);
  Deno.writeTextFileSync(join(empty, "metadata.jsonl"), "stale\n");
  const again = writeEmojiSet(pkg, empty);
  assert.equal(again.images, 6);
  assert.match(Deno.readTextFileSync(join(empty, "metadata.jsonl")), /^\{"file_name"/);
  Deno.removeSync(pkg, { recursive: true });
  Deno.removeSync(clone, { recursive: true });
});

Deno.test("emoji set: an emoji.json image that leaves the image folder is refused, nothing written", () => {
  for (const image of ["../../x.png", "a/b.png", "..png", "/etc/x.png", "x.png\u0000"]) {
    const pkg = fakePackage((entries) => {
      entries[1].image = image;
    });
    // the bytes the traversal would copy
    Deno.writeFileSync(join(pkg, "img", "x.png"), new Uint8Array([1, 2, 3]));
    const root = Deno.makeTempDirSync({ prefix: "emoji_out_" });
    const out = join(root, "a", "b");
    assert.throws(
      () => writeEmojiSet(pkg, out),
      (e: Error) => {
        assert.match(
          e.message,
          /^emoji\.json: 'heart' names the image ".*", which is not a file name/,
        );
        assert.ok(!e.message.includes("\n"));
        return true;
      },
      image,
    );
    assert.deepEqual([...Deno.readDirSync(root)], [], image);
    Deno.removeSync(pkg, { recursive: true });
    Deno.removeSync(root, { recursive: true });
  }
});
