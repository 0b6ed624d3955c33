// The page's RunStore (train/run_store.ts): where a run in this tab keeps its checkpoints, log and
// samples. Checkpoints are safetensors bytes, the same file the command line writes; the newest
// `keep` stay in memory for download, and the newest is also handed to a keeper — the page's is
// IndexedDB (web/kept_runs.ts) — before the save counts as done, so a tab that is closed,
// reloaded or loses its GPU keeps every checkpoint it reported saved. The log and the sample
// strips go to the page as they come.

import {
  encodeSafetensors,
  parseSafetensors,
  type SafetensorsFile,
} from "../io/safetensors_bytes.ts";
import { checkpointFile } from "../model/checkpoint_bytes.ts";
import type { CheckpointData, RunStore, SampleImages } from "../train/run_store.ts";

/** A run as IndexedDB keeps it: its newest checkpoint, its log and what it was. */
export interface SavedRun {
  id: string;
  /** what the page lists it as ("tiny, stage 1, digits") */
  label: string;
  /** Date.now() of the last save */
  saved: number;
  step: number;
  checkpoint: { name: string; bytes: Uint8Array };
  log: Record<string, unknown>[];
}

export interface StoreListener {
  log?(record: Record<string, unknown>): void;
  samples?(step: number, s: SampleImages): void;
  /** a checkpoint is written (in memory, and where it could be, in IndexedDB) */
  checkpoint?(name: string, step: number): void;
  /** the keeper refused a write (no storage, quota): the checkpoint is only in memory */
  notKept?(name: string, reason: string): void;
  /** the keeper stored it: the run's newest checkpoint outlives the tab */
  kept?(name: string): void;
}

/** Keeps a run's newest checkpoint beyond the tab (resolves once it is stored to last). */
export type Keeper = (run: SavedRun) => Promise<void>;

export class BrowserRunStore implements RunStore {
  readonly where = "this tab";
  /** checkpoints in memory by name, oldest first (this run's and one it resumes) */
  readonly #checkpoints = new Map<string, Uint8Array>();
  readonly #log: Record<string, unknown>[] = [];
  config: unknown = null;

  /**
   * A store for run `id` (its key where it is kept), listed as `label`; `from`: a kept run or a
   * checkpoint file to continue, which becomes the store's first checkpoint; `keeper`: where the
   * newest checkpoint is kept beyond the tab.
   */
  constructor(
    readonly id: string,
    readonly label: string,
    private readonly listener: StoreListener = {},
    from?: { name: string; bytes: Uint8Array; log?: Record<string, unknown>[] },
    private readonly keeper: Keeper = () => Promise.reject(new Error("nothing keeps it")),
  ) {
    if (from) {
      this.#checkpoints.set(from.name, from.bytes);
      for (const r of from.log ?? []) this.#log.push(r); // no spread: a long log overflows it
    }
  }

  checkpoints(): string[] {
    return [...this.#checkpoints.keys()];
  }

  /** A checkpoint's bytes (what a download saves). */
  bytes(name: string): Uint8Array {
    const b = this.#checkpoints.get(name);
    if (!b) throw new Error(`no checkpoint '${name}' in ${this.where}`);
    return b;
  }

  readCheckpointFile(name: string): SafetensorsFile {
    return parseSafetensors(this.bytes(name), name);
  }

  checkpointName(step: number): string {
    return checkpointFile(step);
  }

  async writeCheckpoint(step: number, ck: CheckpointData, keep: number): Promise<string> {
    const name = this.checkpointName(step);
    const bytes = encodeSafetensors(ck.tensors, ck.metadata, { dtype: "F32" });
    this.#checkpoints.delete(name);
    this.#checkpoints.set(name, bytes);
    if (keep > 0) {
      for (const old of [...this.#checkpoints.keys()].slice(0, -keep)) {
        this.#checkpoints.delete(old);
      }
    }
    let refused: string | null = null;
    try {
      const run: SavedRun = {
        id: this.id,
        label: this.label,
        saved: Date.now(),
        step,
        checkpoint: { name, bytes },
        log: this.#log,
      };
      await this.keeper(run);
    } catch (e) {
      refused = (e as Error).message ?? String(e);
    }
    if (refused === null) this.listener.kept?.(name);
    else this.listener.notKept?.(name, refused);
    this.listener.checkpoint?.(name, step);
    return name;
  }

  writeConfig(config: unknown): void {
    this.config = config;
  }

  appendLog(record: Record<string, unknown>): void {
    this.#log.push(record);
    this.listener.log?.(record);
  }

  /** The log so far (records in order). */
  get log(): readonly Record<string, unknown>[] {
    return this.#log;
  }

  trimLog(step: number): number {
    const before = this.#log.length;
    const kept = this.#log.filter((r) => !(typeof r.step === "number" && r.step > step));
    this.#log.length = 0;
    for (const r of kept) this.#log.push(r);
    return before - kept.length;
  }

  writeSamples(step: number, s: SampleImages): Promise<string> {
    this.listener.samples?.(step, s);
    return Promise.resolve("the sample strip");
  }

  plotLog(): void {
    // the page plots each log record as it comes
  }

  close(): void {}
}
