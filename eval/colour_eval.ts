// Does a model follow its colour words? Samples of "<colour> <object>" are read for the colour they
// show — the mean of the pixels that are not the white background, nearest to one of eight colour
// prototypes — and scored against the colour asked for. The prototypes are the folder's own real
// images of "<colour> heart", so the instrument is the data's idea of each colour; its accuracy on
// the folder's other real colour images (circles, squares) is reported beside the samples', as the
// caption evaluation reports its classifier's accuracy on real images. Two caption sets: colours on
// shapes the data has (the model may have memorised them), and colours on objects the data never
// shows in that colour ("blue apple", "purple dog face"): whether a colour word composes.
//
// A folder of another drawing style (`deno task data:emoji --style twitter`) captions every image
// with the style's suffix ("red heart, twitter style"): its hearts are found under that caption,
// and the seen and novel captions ask for that style, so such a folder measures colour words in
// its own drawings.

import { EMOJI_STYLES, type EmojiStyle, styleCaption } from "../io/emoji_set.ts";

/** The eight colours scored, in the order of tables and confusion matrices. */
export const COLOURS = [
  "red",
  "orange",
  "yellow",
  "green",
  "blue",
  "purple",
  "brown",
  "black",
] as const;
export type Colour = typeof COLOURS[number];

/** A colour caption: what it asks for, and whether it is a heart (the prototypes' shape). */
export interface ColourCaption {
  caption: string;
  colour: Colour;
  shape: "heart" | "circle" | "square";
}

/** "<colour> heart" in a style: the caption of a prototype. */
export function heartCaption(colour: Colour, style: EmojiStyle = "noto"): string {
  return styleCaption(`${colour} heart`, style);
}

/** Captions with colour words on shapes the emoji set draws in each colour, in a style. */
export function seenColourCaptions(style: EmojiStyle = "noto"): ColourCaption[] {
  const name = (caption: string) => styleCaption(caption, style);
  return COLOURS.flatMap((c): ColourCaption[] => [
    { caption: heartCaption(c, style), colour: c, shape: "heart" },
    {
      caption: name(c === "black" ? "medium black circle" : `large ${c} circle`),
      colour: c,
      shape: "circle",
    },
    {
      caption: name(c === "black" ? "black large square" : `large ${c} square`),
      colour: c,
      shape: "square",
    },
  ]);
}

/** Objects the emoji set draws in one colour (or none), to ask for in every other colour. */
export const NOVEL_OBJECTS = ["apple", "dog face", "star", "book", "car", "fish"] as const;

/** "<colour> <object>" for the novel objects in a style, leaving out any caption in `known`. */
export function novelColourCaptions(
  known: ReadonlySet<string>,
  style: EmojiStyle = "noto",
): { caption: string; colour: Colour }[] {
  return NOVEL_OBJECTS.flatMap((o) =>
    COLOURS.map((c) => ({ caption: styleCaption(`${c} ${o}`, style), colour: c }))
      .filter((e) => !known.has(e.caption))
  );
}

/**
 * The style whose eight "<colour> heart" captions are all among `captions` (the first in
 * EMOJI_STYLES order, Noto, where a folder holds several); null where none is complete.
 */
export function colourStyleOf(captions: ReadonlySet<string>): EmojiStyle | null {
  return EMOJI_STYLES.find((s) => COLOURS.every((c) => captions.has(heartCaption(c, s)))) ?? null;
}

/** A pixel counts as the drawing when some channel is this far below white (values in [0, 1]). */
const BACKGROUND = 0.12;

/**
 * The mean colour [r, g, b] in [0, 1] of an image's drawing: its pixels that differ from white
 * (composited backgrounds are white). `image` is [C, S, S], C = 3, read as a PNG shows it:
 * clipped to [-1, 1], as the other evaluations read samples. A blank image (no such pixel) is
 * white.
 */
export function drawingColour(image: ArrayLike<number>, S: number): [number, number, number] {
  const n = S * S, sum = [0, 0, 0];
  let count = 0;
  for (let i = 0; i < n; i++) {
    const rgb = [0, 1, 2].map((c) => (Math.min(1, Math.max(-1, image[c * n + i])) + 1) / 2);
    if (Math.min(...rgb) > 1 - BACKGROUND) continue;
    for (let c = 0; c < 3; c++) sum[c] += rgb[c];
    count++;
  }
  if (count === 0) return [1, 1, 1];
  return [sum[0] / count, sum[1] / count, sum[2] / count];
}

/** The index of the prototype nearest to `rgb` (Euclidean, in [0, 1] sRGB). */
export function nearestColour(rgb: readonly number[], prototypes: readonly number[][]): number {
  let best = 0, bestD = Infinity;
  prototypes.forEach((p, k) => {
    const d = (p[0] - rgb[0]) ** 2 + (p[1] - rgb[1]) ** 2 + (p[2] - rgb[2]) ** 2;
    if (d < bestD) [best, bestD] = [k, d];
  });
  return best;
}

export interface ColourScore {
  /** share of samples read as the colour asked for; chance is 1/8 */
  accuracy: number;
  samples: number;
  /** rows: the colour asked for; columns: the colour read (COLOURS order) */
  confusion: number[][];
}

/** Scores `images` [n·K, 3, S, S], K per caption, against their captions' colours. */
export function scoreColours(
  images: Float32Array,
  S: number,
  colours: readonly Colour[],
  perCaption: number,
  prototypes: readonly number[][],
): ColourScore {
  const per = 3 * S * S;
  const confusion = COLOURS.map(() => COLOURS.map(() => 0));
  let hits = 0;
  colours.forEach((c, i) => {
    for (let k = 0; k < perCaption; k++) {
      const j = i * perCaption + k;
      const read = nearestColour(
        drawingColour(images.subarray(j * per, (j + 1) * per), S),
        prototypes,
      );
      const want = COLOURS.indexOf(c);
      confusion[want][read]++;
      if (read === want) hits++;
    }
  });
  const samples = colours.length * perCaption;
  return { accuracy: samples ? hits / samples : 0, samples, confusion };
}
