// The captions of class-labelled data sets (docs/spec.md §1): a digit is drawn with its word or its
// numeral ("seven" or "7"), a Fashion-MNIST item with its class name, other sets with the
// config's data.captions.

export const MNIST_WORDS = [
  "zero",
  "one",
  "two",
  "three",
  "four",
  "five",
  "six",
  "seven",
  "eight",
  "nine",
] as const;

export const FASHION_MNIST_CLASSES = [
  "t-shirt/top",
  "trouser",
  "pullover",
  "dress",
  "coat",
  "sandal",
  "shirt",
  "sneaker",
  "bag",
  "ankle boot",
] as const;

/**
 * The caption for one label. With `captions` (one per class, e.g. Fashion-MNIST's names or a
 * config's `data.captions`) it is `captions[label]`; otherwise the label is a digit and the
 * caption is its numeral ("7") with probability `numeralFraction` (the spec's 0.5), otherwise its
 * word ("seven"), drawn from `rng`.
 */
export function captionFor(
  label: number,
  rng: () => number,
  captions?: readonly string[] | null,
  numeralFraction = 0.5,
): string {
  if (captions) {
    const c = captions[label];
    if (c === undefined) {
      throw new Error(`no caption for label ${label} (${captions.length} given)`);
    }
    return c;
  }
  if (!Number.isInteger(label) || label < 0 || label > 9) {
    throw new Error(`digit captions need a label in 0..9, got ${label}`);
  }
  // words below 1 − f: at f = 0.5 the same draws give the same captions as before the option
  return rng() < 1 - numeralFraction ? MNIST_WORDS[label] : String(label);
}

/** captionFor over a batch of labels. */
export function captionsFor(
  labels: ArrayLike<number>,
  rng: () => number,
  captions?: readonly string[] | null,
): string[] {
  return Array.from({ length: labels.length }, (_, i) => captionFor(labels[i], rng, captions));
}

/** Every caption a label may get: ["seven", "7"] for a digit, [captions[label]] otherwise. */
export function captionChoices(label: number, captions?: readonly string[] | null): string[] {
  if (captions) return [captions[label]];
  return [MNIST_WORDS[label], String(label)];
}

/**
 * Default per-class captions for a data source: Fashion-MNIST's class names when the source path
 * mentions "fashion", otherwise null (digits: word or numeral).
 */
export function defaultCaptions(source: string): readonly string[] | null {
  return /fashion/i.test(source) ? FASHION_MNIST_CLASSES : null;
}
