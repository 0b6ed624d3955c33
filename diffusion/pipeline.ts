// A checkpoint ready to draw: its model (the EMA weights unless asked for the raw ones), the noise
// schedule and class names it trained with, and generate() with the recommended defaults. Built
// from a checkpoint's contents, so it works on bytes (a web page) as on files (load_pipeline.ts).
// LoRA adapters (model/lora.ts) are applied to it with a multiplier each, after their base has
// been checked against its weights.

import {
  checkpointClassNames,
  type CheckpointContents,
  modelFromCheckpoint,
  parseCheckpoint,
  trainStageOf,
} from "../model/checkpoint_bytes.ts";
import type { PixArt } from "../model/pixart.ts";
import {
  halfWeightCount,
  type HalfWeights,
  sampleWeightPrecision,
  useHalfWeights,
} from "../model/half_weights.ts";
import {
  checkLoraBase,
  type Lora,
  type LoraContents,
  loraFromContents,
  parseLora,
  weightsSha256,
} from "../model/lora.ts";
import { modelConfigFromJson } from "../model/checkpoint_bytes.ts";
import { MNIST_WORDS } from "../io/captions.ts";
import {
  DEFAULT_GUIDANCE,
  DEFAULT_SAMPLER,
  DEFAULT_STEPS,
  generate,
  type GenerateOptions,
} from "./generate.ts";
import { checkpointSchedule, type Schedule } from "./schedule.ts";
import type { WordTable } from "../io/word_table.ts";

export interface PipelineOptions {
  /** sample with the raw weights even when the checkpoint has EMA weights */
  raw?: boolean;
  /** a words model's table (model.word_table), which the checkpoint names by its hash */
  words?: WordTable | null;
  /**
   * which linear weights sampling holds in f16 (model/half_weights.ts): default
   * `sampleWeightPrecision()`, every one where the adapter has shader-f16, else those exactly f16
   */
  halfWeights?: HalfWeights;
}

/** The training config a checkpoint recorded (the keys sampling and evaluation read). */
export interface RecordedTrainConfig {
  data?: { source?: string; holdout?: number; label_field?: string; skip_bad_images?: boolean };
  train?: { seed?: number };
  model?: { in_channels?: number };
}

/** An adapter a pipeline applies: its file's name, its weights on the device and its multiplier. */
export interface PipelineLora {
  name: string;
  lora: Lora;
  scale: number;
}

export class Pipeline {
  #loras: PipelineLora[] = [];
  #sha256: Promise<string> | null = null;

  private constructor(
    /** the checkpoint's file (or the name it was given) */
    readonly name: string,
    readonly ck: CheckpointContents,
    readonly model: PixArt,
    /** which weights `model` holds: an exported file records what it kept */
    readonly weights: "ema" | "raw",
    readonly classNames: readonly string[],
    readonly schedule: Schedule,
    readonly trainConfig: RecordedTrainConfig | null,
  ) {}

  static fromCheckpoint(ck: CheckpointContents, name: string, o: PipelineOptions = {}): Pipeline {
    // the metadata is read before the weights go to the GPU, so that its errors leak no memory
    const classNames = checkpointClassNames(ck.metadata, name) ?? MNIST_WORDS;
    const schedule = checkpointSchedule(ck.metadata, `checkpoint '${name}'`);
    const trainConfig = ck.metadata.train_config ? JSON.parse(ck.metadata.train_config) : null;
    if (o.raw && !ck.ema && ck.metadata.weights === "ema") {
      // an export holds its EMA weights alone: --raw would draw them and call them raw
      throw new Error(
        `--raw: '${name}' holds only its EMA weights (an export): use the training checkpoint ` +
          `it came from, ${ck.metadata.exported_from ?? "in its run's folder"}`,
      );
    }
    const model = modelFromCheckpoint(ck, name, !o.raw, o.words ?? null);
    useHalfWeights(model, o.halfWeights ?? sampleWeightPrecision());
    const kept = ck.ema ? (o.raw ? "raw" : "ema") : ck.metadata.weights;
    return new Pipeline(
      name,
      ck,
      model,
      kept === "ema" ? "ema" : "raw",
      classNames,
      schedule,
      trainConfig,
    );
  }

  /** From a checkpoint file's bytes (e.g. fetched by a web page). */
  static fromBytes(bytes: Uint8Array, name: string, o: PipelineOptions = {}): Pipeline {
    return Pipeline.fromCheckpoint(parseCheckpoint(bytes, name), name, o);
  }

  get step(): number {
    return this.ck.step;
  }

  /**
   * "NAME: stage S, step N[, EMA weights][, K f16 weights][, LoRA FILE × SCALE …]", S the stage
   * that trained it (a stage-3 checkpoint holds a stage-2 model)
   */
  describe(): string {
    const half = halfWeightCount(this.model);
    return `${this.name}: stage ${trainStageOf(this.ck)}, step ${this.step}` +
      (this.weights === "ema" ? ", EMA weights" : "") + (half ? `, ${half} f16 weights` : "") +
      this.#loras.map((l) => `, LoRA ${l.name} × ${l.scale}`).join("");
  }

  /** The SHA-256 of the weights the model holds (model/lora.ts weightsSha256), computed once. */
  weightsSha256(): Promise<string> {
    const src = this.weights === "ema" && this.ck.ema ? this.ck.ema : this.ck.params;
    return this.#sha256 ??= weightsSha256(this.ck.model, src);
  }

  /** The adapters applied, in order. */
  get loras(): readonly PipelineLora[] {
    return this.#loras;
  }

  /**
   * Applies an adapter (its EMA weights when it has them) with a multiplier, after checking that
   * it was trained on this model's weights: any other base is a one-line error. Sampling adds
   * scale·(alpha / r)·B(A x) to every layer it adapts; several adapters add up.
   */
  async addLora(contents: LoraContents, name: string, scale = 1): Promise<void> {
    if (!Number.isFinite(scale)) throw new Error(`LoRA '${name}': scale ${scale} is not a number`);
    checkLoraBase(contents, name, await this.weightsSha256(), this.name);
    const lora = loraFromContents(contents);
    this.#loras.push({ name, lora, scale });
    this.#apply();
  }

  /** An adapter from its file's bytes (e.g. a file given to the web page). */
  addLoraBytes(bytes: Uint8Array, name: string, scale = 1): Promise<void> {
    return this.addLora(parseLora(bytes, name, modelConfigFromJson), name, scale);
  }

  /** Changes the multiplier of the adapter at `index` (0 leaves the model as it is). */
  setLoraScale(index: number, scale: number): void {
    const l = this.#loras[index];
    if (!l) throw new Error(`no LoRA adapter at ${index}: ${this.#loras.length} applied`);
    if (!Number.isFinite(scale)) {
      throw new Error(`LoRA '${l.name}': scale ${scale} is not a number`);
    }
    l.scale = scale;
    this.#apply();
  }

  /** Removes every adapter (the model is its own again). */
  clearLoras(): void {
    for (const l of this.#loras) l.lora.dispose();
    this.#loras = [];
    this.#apply();
  }

  #apply(): void {
    this.model.lora = this.#loras.map((l) => ({ lora: l.lora, scale: l.scale }));
  }

  /**
   * One image per prompt, [n, C, H, W] values about [-1, 1]. Defaults: the sampler and steps of
   * the config's `sample` section (DEFAULT_SAMPLER, DEFAULT_STEPS), the recommended guidance,
   * seed 0, 64 images per batch.
   */
  generate(prompts: string[], o: Partial<GenerateOptions> = {}): Promise<Float32Array> {
    if (this.#disposed) {
      throw new Error("the pipeline was disposed: load it again (loadPipeline) to draw");
    }
    return generate(this.model, this.schedule, prompts, this.classNames, {
      sampler: DEFAULT_SAMPLER,
      steps: DEFAULT_STEPS,
      guidance: DEFAULT_GUIDANCE,
      seed: 0,
      batch: 64,
      ...o,
    });
  }

  #disposed = false;

  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    this.clearLoras();
    this.model.dispose();
  }
}
