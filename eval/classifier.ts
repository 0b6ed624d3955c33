// A small CNN image classifier trained with this engine, for evaluating generated images: the
// accuracy with which a sample shows the class its prompt asked for, and the Fréchet distance
// between the penultimate features of samples and of held-out data (an FID in this classifier's
// feature space rather than Inception's, whose weights this project does not bundle).
//
// Architecture, for [B, C, S, S] inputs in [-1, 1] (S = 32 by default): four 3×3 convolutions
// (pad 1; strides 1, 2, 2, 2; 16, 32, 64, 64 channels) each followed by ReLU, the (S/8)² × 64 map
// flattened into a 128-wide ReLU layer (the features), and a linear layer to the logits. Image
// folders get wider ones (FOLDER_CLASSIFIER: 128 channels last, 256 features).
// Activations stay channels-last ([B, H, W, C]) between the convolutions, so the stack needs no
// permutes. Choices measured on MNIST (4 epochs, held-out accuracy): global average pooling
// instead of the flattened hidden layer trained far slower (92.9% against 96.6%), and a
// LayerNorm over channels after each convolution slowed it further (90.8%); neither is used, so
// evaluation also needs no batch statistics.

import {
  conv2d,
  linear,
  noGrad,
  permute,
  reshape,
  softmax,
  type Tensor,
  tensor,
  tidy,
  unary,
} from "../kernels/mod.ts";
import { initParams, Params, type ParamSpec } from "../model/params.ts";
import { readSafetensors, type TensorInput, writeSafetensors } from "../io/safetensors.ts";

export interface ClassifierConfig {
  /** input channels (1 or 3) */
  channels: number;
  numClasses: number;
  /** input side S (a multiple of 8; default 32) */
  imageSize?: number;
  /** output channels of the four convolutions (default 16, 32, 64, 64) */
  widths?: number[];
  /** the feature size: the hidden layer's width (default 128) */
  hidden?: number;
}

/** The value of `format` in a classifier file's metadata. */
export const CLASSIFIER_FORMAT = "pixart-webgpu-classifier";
export const DEFAULT_WIDTHS: readonly number[] = [16, 32, 64, 64];
const STRIDES = [1, 2, 2, 2];
const KSIZE = 3;
/** the input side over the side of the last convolution's map */
const REDUCTION = 8;

export function fullConfig(cfg: ClassifierConfig): Required<ClassifierConfig> {
  const widths = [...(cfg.widths ?? DEFAULT_WIDTHS)];
  const imageSize = cfg.imageSize ?? 32;
  const hidden = cfg.hidden ?? 128;
  const posInt = (v: unknown) => Number.isInteger(v) && (v as number) >= 1;
  if (!posInt(cfg.channels)) throw new Error(`classifier: bad channel count ${cfg.channels}`);
  if (!posInt(cfg.numClasses) || cfg.numClasses < 2) {
    throw new Error(`classifier: need at least 2 classes, got ${cfg.numClasses}`);
  }
  if (!posInt(imageSize) || imageSize % REDUCTION !== 0) {
    throw new Error(`classifier: image size must be a multiple of ${REDUCTION}, got ${imageSize}`);
  }
  if (widths.length !== STRIDES.length || !widths.every(posInt) || !posInt(hidden)) {
    throw new Error(
      `classifier: widths must be ${STRIDES.length} positive integers, got [${widths}]; hidden ${hidden}`,
    );
  }
  return { channels: cfg.channels, numClasses: cfg.numClasses, imageSize, widths, hidden };
}

/**
 * Parameter names, shapes and initialisations: He-normal convolutions ([O, C, 3, 3], as torch's
 * Conv2d) and hidden layer, Xavier-uniform logits, zero biases. The hidden layer's input is the
 * last map flattened in (row, column, channel) order.
 */
export function classifierSpecs(cfg: ClassifierConfig): ParamSpec[] {
  const { channels, numClasses, imageSize, widths, hidden } = fullConfig(cfg);
  const specs: ParamSpec[] = [];
  let cin = channels;
  widths.forEach((w, i) => {
    const fanIn = cin * KSIZE * KSIZE;
    specs.push({
      name: `conv${i + 1}.weight`,
      shape: [w, cin, KSIZE, KSIZE],
      init: { normal: Math.sqrt(2 / fanIn) },
    });
    specs.push({ name: `conv${i + 1}.bias`, shape: [w], init: "zeros" });
    cin = w;
  });
  const flat = cin * (imageSize / REDUCTION) ** 2;
  specs.push({
    name: "hidden.weight",
    shape: [hidden, flat],
    init: { normal: Math.sqrt(2 / flat) },
  });
  specs.push({ name: "hidden.bias", shape: [hidden], init: "zeros" });
  specs.push({ name: "fc.weight", shape: [numClasses, hidden], init: "xavier" });
  specs.push({ name: "fc.bias", shape: [numClasses], init: "zeros" });
  return specs;
}

export class Classifier {
  readonly config: Required<ClassifierConfig>;
  readonly params: Params;
  /** the metadata of the file it was loaded from or saved to (empty for a new one) */
  metadata: Record<string, string> = {};

  private constructor(config: Required<ClassifierConfig>, params: Params) {
    this.config = config;
    this.params = params;
  }

  static init(cfg: ClassifierConfig, seed: number): Classifier {
    const full = fullConfig(cfg);
    return new Classifier(full, initParams(classifierSpecs(full), seed));
  }

  /** The size of the feature vector. */
  get featureDim(): number {
    return this.config.hidden;
  }

  /** x [B, C, S, S] → logits [B, K] and the penultimate features [B, F]. */
  forward(x: Tensor): { logits: Tensor; features: Tensor } {
    const { channels: C, imageSize: S } = this.config;
    if (x.rank !== 4 || x.shape[1] !== C || x.shape[2] !== S || x.shape[3] !== S) {
      throw new Error(`classifier: input must be [B, ${C}, ${S}, ${S}], got [${x.shape}]`);
    }
    const P = this.params;
    const B = x.shape[0];
    // channels-last; with one channel that is the same memory
    let h = C === 1 ? reshape(x, [B, S, S, 1]) : permute(x, [0, 2, 3, 1]);
    for (let i = 1; i <= STRIDES.length; i++) {
      const w = P.get(`conv${i}.weight`), b = P.get(`conv${i}.bias`);
      h = unary("relu", conv2d(h, w, b, STRIDES[i - 1], 1, "nhwc"));
    }
    const flat = reshape(h, [B, h.size / B]);
    const features = unary("relu", linear(flat, P.get("hidden.weight"), P.get("hidden.bias")));
    const logits = linear(features, P.get("fc.weight"), P.get("fc.bias"));
    return { logits, features };
  }

  /**
   * Class probabilities and features of n images [n, C, S, S] (values in [-1, 1]), without
   * gradients, `batch` images at a time.
   */
  async predict(
    images: Float32Array,
    n: number,
    batch = 256,
  ): Promise<{ probs: Float32Array; features: Float32Array; featureDim: number }> {
    const { channels: C, numClasses: K, imageSize: S } = this.config;
    const F = this.featureDim;
    checkImages(images.length, n, C, S, "predict");
    const size = C * S * S;
    const probs = new Float32Array(n * K);
    const features = new Float32Array(n * F);
    for (let start = 0; start < n; start += batch) {
      const B = Math.min(batch, n - start);
      const [p, f] = tidy(() =>
        noGrad(() => {
          const x = tensor(images.subarray(start * size, (start + B) * size), [B, C, S, S]);
          const out = this.forward(x);
          return [softmax(out.logits), out.features];
        })
      );
      probs.set(await p.read(), start * K);
      features.set(await f.read(), start * F);
      p.dispose();
      f.dispose();
    }
    return { probs, features, featureDim: F };
  }

  /**
   * Writes the parameters (their [O, C, k, k] conv layout, as torch's Conv2d) and the config to a
   * safetensors file, atomically; `metadata` is stored beside them.
   */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    const tensors: Record<string, TensorInput> = {};
    for (const [name, t] of this.params.map) {
      tensors[name] = { shape: t.shape, data: await t.read() };
    }
    const meta = {
      ...metadata,
      format: CLASSIFIER_FORMAT,
      config: JSON.stringify(this.config),
    };
    writeSafetensors(path, tensors, meta);
    this.metadata = meta;
  }

  /** Reads a file written by `save`; a missing, corrupt or foreign file is a one-line error. */
  static load(path: string): Classifier {
    const fail = (why: string): never => {
      throw new Error(`cannot load classifier ${path}: ${why}`);
    };
    let file: ReturnType<typeof readSafetensors>;
    try {
      file = readSafetensors(path);
    } catch (e) {
      const msg = (e as Error).message.split("\n")[0];
      if (msg.includes("not found")) fail("no such file");
      // the reader's message names the file; keep only the reason
      fail(msg.replace(/^(safetensors|checkpoint) .*?: /, ""));
    }
    const meta = file!.metadata;
    if (meta.format !== CLASSIFIER_FORMAT) {
      fail(`not a classifier file (format ${JSON.stringify(meta.format ?? null)})`);
    }
    let cfg: Required<ClassifierConfig>;
    try {
      cfg = fullConfig(JSON.parse(meta.config ?? "null") ?? {});
    } catch (e) {
      fail(`bad config metadata: ${(e as Error).message}`);
    }
    const specs = classifierSpecs(cfg!);
    const params = new Params();
    try {
      for (const s of specs) {
        const t = file!.tensors.get(s.name);
        if (!t) fail(`tensor '${s.name}' is missing`);
        if (t!.shape.length !== s.shape.length || t!.shape.some((d, k) => d !== s.shape[k])) {
          fail(`tensor '${s.name}' is [${t!.shape}], expected [${s.shape}]`);
        }
        if (!(t!.data instanceof Float32Array)) fail(`tensor '${s.name}' is not floating-point`);
        params.set(s.name, tensor(t!.data, s.shape));
      }
      const extra = [...file!.tensors.keys()].filter((k) => !specs.some((s) => s.name === k));
      if (extra.length) fail(`unexpected tensor '${extra[0]}'`);
    } catch (e) {
      params.dispose();
      throw e;
    }
    const clf = new Classifier(cfg!, params);
    clf.metadata = { ...meta };
    return clf;
  }

  dispose(): void {
    this.params.dispose();
  }
}

export function checkImages(length: number, n: number, C: number, S: number, what: string): void {
  if (!Number.isInteger(n) || n < 1 || n * C * S * S !== length) {
    throw new Error(
      `classifier ${what}: ${length} values are not ${n} images of ${C}×${S}×${S}`,
    );
  }
}
