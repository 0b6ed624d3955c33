// pixart-webgpu: PixArt-α on WebGPU — the public API.

// the engine: tensors, autograd, ops, optimiser, random numbers
export * from "./kernels/mod.ts";

// the model
export { checkModelConfig, DEFAULT_MODEL, type ModelConfig, numTokens } from "./model/config.ts";
export {
  type Condition,
  type ForwardOptions,
  PixArt,
  pixartForward,
  pixartSpecs,
} from "./model/pixart.ts";
export { encodeText, textEncoderSpecs } from "./model/text_encoder.ts";
export { initParams, Params, type ParamSpec } from "./model/params.ts";
export { normalizePrompt, tokenize } from "./model/tokenizer.ts";
export {
  modelFromCheckpoint,
  newestCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "./model/checkpoint.ts";

// diffusion
export { linearSchedule, type Schedule, timePoints } from "./diffusion/schedule.ts";
export { epsLoss, minSnrWeight, qSample } from "./diffusion/ddpm.ts";
export {
  ancestralStep,
  sampleAncestral,
  sampleDdim,
  sampleDpmSolver,
  type SamplerName,
  SAMPLERS,
} from "./diffusion/samplers.ts";
export { dynamicThreshold } from "./diffusion/threshold.ts";
export { generate, type GenerateOptions } from "./diffusion/generate.ts";

// evaluation: the classifier, prompt accuracy and FID, captioned sets
export {
  accuracy,
  Classifier,
  type ClassifierConfig,
  loadOrTrainClassifier,
  trainClassifier,
} from "./eval/classifier.ts";
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
export { loadIdx, loadMnistNpm, loadSource, prepareImages } from "./io/data.ts";
export { loadImageFolder } from "./io/image_folder.ts";
export { checkCaptionLengths } from "./io/caption_length.ts";
export { readSafetensors, writeSafetensors } from "./io/safetensors.ts";
export { decodePng, encodePng, imageGrid, writeImageGrid } from "./io/png.ts";
