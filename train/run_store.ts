// Where a training run keeps what it writes — checkpoints, its log, its config, sample grids —
// and finds the checkpoints it resumes from. The trainer sees only this interface, so the same
// loop writes to a folder on disk (train/run_folder.ts: atomic writes, a lock, rotation) or to the
// web page's storage (web/browser_run_store.ts: memory and IndexedDB, downloads).

import type { SafetensorsFile, TensorInput } from "../io/safetensors_bytes.ts";

/** A checkpoint ready to write: its tensors by name and its metadata (model/checkpoint_bytes.ts). */
export interface CheckpointData {
  tensors: Record<string, TensorInput>;
  metadata: Record<string, string>;
}

/** Sample images to keep beside a checkpoint: [n, C, S, S] in [-1, 1], one prompt each. */
export interface SampleImages {
  images: Float32Array;
  prompts: readonly string[];
  channels: number;
  size: number;
}

export interface RunStore {
  /** Where the run is, for messages: "'output/tiny'" (a folder), "this tab's storage". */
  readonly where: string;
  /** The run's checkpoints by name (what messages show: a path), oldest first. */
  checkpoints(): string[];
  /**
   * One of `checkpoints()`, read as safetensors (a model's checkpoint or a LoRA run's adapter,
   * which the trainer parses): a one-line error names it when it cannot be.
   */
  readCheckpointFile(name: string): SafetensorsFile;
  /** The name the checkpoint of `step` is written under. */
  checkpointName(step: number): string;
  /**
   * Writes the checkpoint of `step` so that it is whole or absent, then deletes the oldest of
   * this run's own checkpoints beyond the newest `keep` (0 keeps all). Resolves, with its name,
   * once it is stored to last.
   */
  writeCheckpoint(step: number, ck: CheckpointData, keep: number): Promise<string>;
  /** The run's resolved config (config.json). */
  writeConfig(config: unknown): void;
  /** One record of the training log (a logging window's loss, or an evaluation). */
  appendLog(record: Record<string, unknown>): void;
  /** Drops log records after `step` (a resumed run redoes them), and what else was written
   * after it; returns how many records. */
  trimLog(step: number): number;
  /** Keeps the sample images of `step`; resolves with where they went. */
  writeSamples(step: number, samples: SampleImages): Promise<string>;
  /** Redraws the plots of the log (loss, evaluation accuracy) where the store keeps plots. */
  plotLog(): void;
  /** Ends the run's hold on the store (a folder's lock). */
  close(): void;
}
