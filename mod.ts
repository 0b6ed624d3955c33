/**
 * pixart-webgpu: PixArt-α, the text-to-image diffusion transformer (Chen et al. 2023), from
 * scratch in TypeScript on WebGPU — WGSL kernels with autograd, the model, its three training
 * stages, DPM-Solver++/UniPC/DDIM/ancestral sampling and evaluation. It runs wherever WebGPU does: a
 * GPU, a laptop, a browser, or a CPU through Mesa.
 *
 * Draw with a bundled model (or a checkpoint file, or a training run's folder):
 *
 * ```ts
 * import { loadPipeline } from "./mod.ts";
 *
 * const pipe = await loadPipeline("digits");
 * const images = await pipe.generate(["seven", "3"], { guidance: 2.5 });
 * // two 1×32×32 images, values about [-1, 1]
 * if (images.length !== 2 * 32 * 32) throw new Error(`${images.length} values`);
 * pipe.dispose();
 * ```
 *
 * The engine alone (tensors, autograd, the ops, Adam) is `./kernels/mod.ts`.
 *
 * @module
 */

// the engine: tensors, autograd, ops, optimiser, random numbers
export * from "./kernels/mod.ts";

// the model
export {
  checkModelConfig,
  DEFAULT_MODEL,
  type ModelConfig,
  numTokens,
  withModelDefaults,
} from "./model/config.ts";
export {
  type Condition,
  type ForwardOptions,
  PixArt,
  pixartForward,
  pixartLayers,
  pixartSpecs,
} from "./model/pixart.ts";
export { bind, type Bound, module, param, specsOf } from "./model/layers.ts";
export { encodeText, textEncoderSpecs } from "./model/text_encoder.ts";
export { initParams, Params, type ParamSpec } from "./model/params.ts";
export { normalizePrompt, tokenize } from "./model/tokenizer.ts";
export {
  modelFromCheckpoint,
  newestCheckpoint,
  parseCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "./model/checkpoint.ts";
export {
  type AppliedLora,
  Lora,
  type LoraBase,
  type LoraContents,
  loraFromContents,
  loraLayers,
  type LoraSettings,
  mergeLora,
  parseLora,
  peftName,
  weightsSha256,
} from "./model/lora.ts";
export { readLora, saveLora } from "./model/lora_file.ts";

// diffusion
export {
  type LoadOptions,
  loadPipeline,
  type LoraSpec,
  parseLoraSpec,
} from "./diffusion/load_pipeline.ts";
export { Pipeline, type PipelineLora, type PipelineOptions } from "./diffusion/pipeline.ts";
export { BUNDLED_MODELS, type BundledModel } from "./model/bundled.ts";
export { linearSchedule, type Schedule, timePoints } from "./diffusion/schedule.ts";
export { epsLoss, minSnrWeight, qSample } from "./diffusion/ddpm.ts";
export {
  DEFAULT_STRENGTH,
  type EditOptions,
  repaintPath,
  samplerTimes,
  strengthStart,
} from "./diffusion/edit.ts";
export {
  ancestralStep,
  type Constrain,
  FAST_SAMPLERS,
  type FastOptions,
  fastTimePoints,
  type MultistepOptions,
  sampleAncestral,
  sampleDdim,
  sampleDpmSolver,
  sampleDpmSolver3m,
  SAMPLER_LABELS,
  type SamplerName,
  SAMPLERS,
  sampleUniPc,
  type UniPcOptions,
} from "./diffusion/samplers.ts";

export { generate, type GenerateOptions } from "./diffusion/generate.ts";

// evaluation: the classifier, prompt accuracy and FID, captioned sets
export { Classifier, type ClassifierConfig } from "./eval/classifier.ts";
export { type CaptionGap, captionGap, type CaptionGapOptions } from "./eval/caption_gap.ts";
export { accuracy, trainClassifier } from "./eval/classifier_training.ts";
export { loadOrTrainClassifier } from "./eval/classifier_cache.ts";
export { fid, frechetDistance, gaussianOf } from "./eval/fid.ts";
export {
  evalPrompts,
  evaluatePrompts,
  type PromptEvalResult,
  realReference,
} from "./eval/prompt_eval.ts";
export {
  type CaptionEval,
  type CaptionEvalResult,
  evaluateCaptions,
  prepareCaptionEval,
  scoreCaptionSamples,
} from "./eval/caption_eval.ts";

// files and data
export { type Config, loadConfig } from "./io/config.ts";
export { loadMnistNpm, loadSource } from "./io/data.ts";
export { loadIdx } from "./io/idx.ts";
export { prepareImages } from "./io/image_set.ts";
export { loadImageFolder } from "./io/image_folder.ts";
export { readImageFile } from "./io/image_file.ts";
export { checkCaptionLengths } from "./io/caption_length.ts";
export { readSafetensors, writeSafetensors } from "./io/safetensors.ts";
export { decodePng, encodePng, imageGrid, writeImageGrid } from "./io/png.ts";
