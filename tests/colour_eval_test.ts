// The colour-word evaluation (eval/colour_eval.ts): the drawing's colour leaves out the white
// background, a sample is read as its nearest prototype, and the scores count what was read
// against what was asked.

import assert from "node:assert/strict";
import { styleCaption } from "../io/emoji_set.ts";
import {
  COLOURS,
  colourStyleOf,
  drawingColour,
  heartCaption,
  nearestColour,
  novelColourCaptions,
  scoreColours,
  seenColourCaptions,
} from "../eval/colour_eval.ts";

/** An S×S image in [-1, 1] of a centred square of `rgb` (0–255) on white. */
function square(rgb: number[], S = 8): Float32Array {
  const img = new Float32Array(3 * S * S).fill(1);
  for (let y = 2; y < S - 2; y++) {
    for (let x = 2; x < S - 2; x++) {
      for (let c = 0; c < 3; c++) img[(c * S + y) * S + x] = rgb[c] / 127.5 - 1;
    }
  }
  return img;
}

const PROTOS: Record<string, number[]> = {
  red: [220, 40, 40],
  orange: [245, 140, 30],
  yellow: [250, 210, 40],
  green: [60, 170, 70],
  blue: [50, 110, 220],
  purple: [140, 70, 180],
  brown: [120, 80, 50],
  black: [30, 30, 30],
};
const prototypes = COLOURS.map((c) => PROTOS[c].map((v) => v / 255));

Deno.test("the drawing's colour leaves out the white background", () => {
  const c = drawingColour(square([220, 40, 40]), 8);
  assert.deepEqual(c.map((v) => Math.round(v * 255)), [220, 40, 40]);
  assert.deepEqual(drawingColour(new Float32Array(3 * 64).fill(1), 8), [1, 1, 1]);
  // a sample past [-1, 1] is read as its PNG shows it: (0.6, −1.8, −1.8) as (0.8, 0, 0)
  const over = new Float32Array(3 * 64).fill(-1.8).fill(0.6, 0, 64);
  assert.deepEqual(drawingColour(over, 8).map((v) => Math.round(v * 100) / 100), [0.8, 0, 0]);
});

Deno.test("samples are read as their nearest prototype and scored against the colour asked for", () => {
  assert.equal(nearestColour([0.85, 0.2, 0.15], prototypes), 0);
  assert.equal(nearestColour([0.1, 0.1, 0.12], prototypes), 7);
  // two captions, two samples each: red asked, drawn red then blue; blue asked, drawn blue twice
  const images = Float32Array.from([
    ...square(PROTOS.red),
    ...square(PROTOS.blue),
    ...square(PROTOS.blue),
    ...square([40, 100, 230]),
  ]);
  const s = scoreColours(images, 8, ["red", "blue"], 2, prototypes);
  assert.equal(s.samples, 4);
  assert.equal(s.accuracy, 0.75);
  assert.equal(s.confusion[0][0], 1);
  assert.equal(s.confusion[0][4], 1);
  assert.equal(s.confusion[4][4], 2);
});

Deno.test("colour captions: the shapes the set has in each colour, the objects it has not", () => {
  const seen = seenColourCaptions();
  assert.equal(seen.length, 24);
  assert.ok(seen.some((e) => e.caption === "large purple square" && e.colour === "purple"));
  const novel = novelColourCaptions(new Set(["red apple", "green apple", "blue book"]));
  assert.ok(!novel.some((e) => ["red apple", "green apple", "blue book"].includes(e.caption)));
  assert.ok(novel.some((e) => e.caption === "blue apple" && e.colour === "blue"));
  assert.equal(novel.length, 6 * 8 - 3);
});

Deno.test("colour captions in a style: each carries the style's suffix, and a folder's style is the one whose hearts it has", () => {
  const noto = seenColourCaptions();
  const twitter = seenColourCaptions("twitter");
  assert.deepEqual(
    twitter.map((e) => [e.caption, e.colour, e.shape]),
    noto.map((e) => [styleCaption(e.caption, "twitter"), e.colour, e.shape]),
  );
  assert.equal(noto.filter((e) => e.shape === "heart").length, 8);
  const known = new Set([styleCaption("red apple", "twitter"), "blue apple"]);
  const novel = novelColourCaptions(known, "twitter");
  assert.equal(novel.length, 6 * 8 - 1);
  assert.ok(novel.some((e) => e.caption === styleCaption("blue apple", "twitter")));

  const hearts = (style: "noto" | "twitter") => COLOURS.map((c) => heartCaption(c, style));
  assert.equal(colourStyleOf(new Set(hearts("noto"))), "noto");
  assert.equal(colourStyleOf(new Set(hearts("twitter"))), "twitter");
  // a folder of both styles is measured in the default one
  assert.equal(colourStyleOf(new Set([...hearts("twitter"), ...hearts("noto")])), "noto");
  // seven hearts are not enough, in either style
  assert.equal(
    colourStyleOf(new Set([...hearts("noto").slice(1), ...hearts("twitter").slice(0, 7)])),
    null,
  );
  assert.equal(colourStyleOf(new Set(["grey cloud"])), null);
});
