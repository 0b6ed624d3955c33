// The output folder of a training run (the command line's RunStore, train/run_store.ts) and what
// it guarantees: one run at a time (a lock file that the operating system releases when its
// process dies), no rerun over an earlier run's work unless asked, checkpoints written atomically
// (a temporary file renamed into place), rotation that only deletes checkpoints this run wrote,
// and no leftovers of a save that was interrupted. Beside the checkpoints: config.json,
// train-log.jsonl, its plots (loss.png, accuracy.png) and the sample grids (sample-<step>.png
// with their prompts in sample-<step>.txt).

import { existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { checkpointFile, checkpointStep } from "../model/checkpoint.ts";
import { readSafetensors, writeSafetensors } from "../io/safetensors.ts";
import type { SafetensorsFile } from "../io/safetensors_bytes.ts";
import { writeImageGrid } from "../io/png.ts";
import { plotEvalAccuracy, plotTrainingLog } from "../io/plot.ts";
import { promptsText } from "../io/prompts.ts";
import { trimTrainingLog } from "../io/train_log.ts";
import type { CheckpointData, RunStore, SampleImages } from "./run_store.ts";

export interface OpenOptions {
  /** continue the run the folder holds */
  resume: boolean;
  /** start over: the run the folder holds is moved aside to a new `<folder>.old-N` first */
  fresh: boolean;
  log?: (line: string) => void;
}

const LOCK = ".lock";
const LOG = "train-log.jsonl";

/**
 * Whether `path` is the config.json a run writes (its resolved config: every section, its phases,
 * and the model's stage, which no --config file may hold), which a run stopped before its first
 * log line leaves alone in its folder: a rerun may replace it.
 */
function runsOwnConfig(path: string): boolean {
  try {
    if (statSync(path).size > 1 << 20) return false;
    const c = JSON.parse(readFileSync(path, "utf8"));
    return ["model", "diffusion", "train", "data", "sample"].every((k) =>
      typeof c?.[k] === "object" && c[k] !== null
    ) && Array.isArray(c.phases) && typeof c.model.stage === "number";
  } catch {
    return false;
  }
}

/** Whether a run writes a file of this name into its folder (besides its checkpoints). */
function runWrites(f: string): boolean {
  return f === LOG || f === "config.json" || f === "loss.png" || f === "accuracy.png" ||
    /^sample-\d+\.(png|txt)$/.test(f);
}

/** A training run's output folder, held for the life of the run. */
export class RunFolder implements RunStore {
  readonly #lock: Deno.FsFile;
  /** checkpoints written by this process, oldest first: the only ones rotation may delete */
  readonly #written: string[] = [];
  #closed = false;

  private constructor(readonly dir: string, lock: Deno.FsFile) {
    this.#lock = lock;
  }

  /**
   * Takes the folder for a run: creates it, locks it (a second run gets a one-line error naming
   * the holder), removes temporary files an interrupted save left, and refuses to start a new run
   * over an earlier one's checkpoints unless `resume` (continue it) or `fresh` (move it aside).
   */
  static async open(dir: string, o: OpenOptions): Promise<RunFolder> {
    const log = o.log ?? ((l: string) => console.error(l));
    if (existsSync(dir) && !Deno.statSync(dir).isDirectory) {
      throw new Error(`--out '${dir}' is a file, not a folder: pass a folder for the run's output`);
    }
    // a run is its checkpoints, or the files of one that stopped before its first save
    const holdsRun = (d: string) =>
      existsSync(d) && readdirSync(d).some((f) => runWrites(f) || checkpointStep(f) !== null);
    if (o.fresh && holdsRun(dir)) {
      if (o.resume) throw new Error("--fresh and --resume exclude each other: pick one");
      const aside = freeName(dir);
      // a running holder keeps its lock: refuse rather than move a live run; ours is held until
      // the folder has moved, so that no other run takes it in between
      const held = await RunFolder.#lockOrFail(dir, () => {});
      held.truncateSync(0);
      try {
        renameSync(dir, aside);
      } finally {
        held.close();
      }
      log(`moved the earlier run in '${dir}' aside to '${aside}'`);
    }
    Deno.mkdirSync(dir, { recursive: true });
    const lock = await RunFolder.#lockOrFail(dir, log);
    const folder = new RunFolder(dir, lock);
    try {
      folder.#removeLeftovers(log);
      const existing = folder.checkpoints();
      if (!o.resume && existing.length) {
        throw new Error(
          `'${dir}' already holds a run (${basename(existing.at(-1)!)}): pass --resume to ` +
            `continue it, --out DIR for a new run, or --fresh to move it aside and start over`,
        );
      }
      // a new run would append to the log of one that saved nothing: its curve would double back
      if (!o.resume && existsSync(join(dir, LOG))) {
        throw new Error(
          `'${dir}' holds the log of an earlier run that saved no checkpoint: pass --fresh to ` +
            `move it aside and start over, or --out DIR for a new run`,
        );
      }
      // nor write over files of those names that are not a run's (a config.json of the user's)
      const clash = o.resume
        ? undefined
        : readdirSync(dir).find((f) =>
          runWrites(f) && !(f === "config.json" && runsOwnConfig(join(dir, f)))
        );
      if (clash) {
        throw new Error(
          `'${dir}' holds ${clash}, which a new run would write over: pass --out DIR for the ` +
            `run, or --fresh to move the folder aside`,
        );
      }
    } catch (e) {
      folder.close();
      throw e;
    }
    return folder;
  }

  /** Locks `<dir>/.lock` (writing our pid into it) or fails naming the process that holds it. */
  static async #lockOrFail(dir: string, log: (l: string) => void): Promise<Deno.FsFile> {
    const path = join(dir, LOCK);
    const file = await Deno.open(path, { read: true, write: true, create: true });
    const before = new TextDecoder().decode(await Deno.readFile(path)).trim();
    if (!(await file.tryLock(true))) {
      file.close();
      throw new Error(
        `'${dir}' is in use by another training run (${before || "pid unknown"}): wait for it ` +
          `to finish, or pass another --out`,
      );
    }
    // a lock file whose process is gone: its holder died without removing it
    if (before) log(`note: taking over '${path}' from a run that is no longer running (${before})`);
    await file.truncate(0);
    await file.write(new TextEncoder().encode(`pid ${Deno.pid}`));
    return file;
  }

  #logEndChecked = false;

  /** "\n" when the log's last line was cut short (a crash mid-write); checked once, as every
   * record this run appends ends its own line. */
  #lineStart(): string {
    if (this.#logEndChecked) return "";
    this.#logEndChecked = true;
    if (!existsSync(this.logPath)) return "";
    const f = Deno.openSync(this.logPath, { read: true });
    try {
      const size = f.statSync().size;
      if (size === 0) return "";
      f.seekSync(size - 1, Deno.SeekMode.Start);
      const last = new Uint8Array(1);
      f.readSync(last);
      return last[0] === 10 ? "" : "\n";
    } finally {
      f.close();
    }
  }

  /** Temporary files of a save that was interrupted (io/safetensors.ts writes `.name.tmp`). */
  #removeLeftovers(log: (l: string) => void): void {
    for (const f of readdirSync(this.dir)) {
      if (f.startsWith(".") && f.endsWith(".tmp")) {
        rmSync(join(this.dir, f));
        log(`removed '${join(this.dir, f)}', left by an interrupted save`);
      }
    }
  }

  /** The folder's checkpoints, oldest (lowest step) first. */
  checkpoints(): string[] {
    return readdirSync(this.dir).filter((f) => checkpointStep(f) !== null)
      .sort((a, b) => checkpointStep(a)! - checkpointStep(b)!).map((f) => join(this.dir, f));
  }

  get where(): string {
    return `'${this.dir}'`;
  }

  readCheckpointFile(path: string): SafetensorsFile {
    return readSafetensors(path);
  }

  checkpointName(step: number): string {
    return join(this.dir, checkpointFile(step));
  }

  writeCheckpoint(step: number, ck: CheckpointData, keep: number): Promise<string> {
    const path = this.checkpointName(step);
    writeSafetensors(path, ck.tensors, ck.metadata, { dtype: "F32" });
    this.#wrote(path, keep);
    return Promise.resolve(path);
  }

  writeConfig(config: unknown): void {
    Deno.writeTextFileSync(this.path("config.json"), JSON.stringify(config, null, 2));
  }

  /** sample-<step>.png, 8 to a row, and its prompts in sample-<step>.txt. */
  writeSamples(step: number, s: SampleImages): Promise<string> {
    const png = this.path(`sample-${step}.png`);
    writeImageGrid(png, s.images, s.prompts.length, s.channels, s.size, s.size);
    Deno.writeTextFileSync(png.replace(/\.png$/, ".txt"), promptsText(s.prompts));
    return Promise.resolve(png);
  }

  plotLog(): void {
    plotTrainingLog(this.logPath, this.path("loss.png"));
    plotEvalAccuracy(this.logPath, this.path("accuracy.png"));
  }

  /** Notes a checkpoint this run wrote, and deletes the oldest of those beyond the newest `keep`. */
  #wrote(path: string, keep: number): void {
    if (!this.#written.includes(path)) this.#written.push(path);
    if (keep <= 0) return;
    while (this.#written.length > keep) {
      const old = this.#written.shift()!;
      if (existsSync(old)) rmSync(old);
    }
  }

  get logPath(): string {
    return join(this.dir, LOG);
  }

  /** Drops log records after `step` (a resumed run redoes them), and the sample grids drawn
   * after it, whose weights no checkpoint holds; returns how many records. */
  trimLog(step: number): number {
    for (const f of readdirSync(this.dir)) {
      const m = /^sample-(\d+)\.(png|txt)$/.exec(f);
      if (m && Number(m[1]) > step) rmSync(this.path(f));
    }
    return trimTrainingLog(this.logPath, step);
  }

  appendLog(record: Record<string, unknown>): void {
    // a line cut short by a crash is ended first, so the record is a line of its own
    Deno.writeTextFileSync(this.logPath, this.#lineStart() + JSON.stringify(record) + "\n", {
      append: true,
    });
  }

  path(name: string): string {
    return join(this.dir, name);
  }

  /** Releases the lock (the process's exit would too). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#lock.truncateSync(0);
      this.#lock.unlockSync();
    } finally {
      this.#lock.close();
    }
  }
}

/** `<dir>.old-1`, `<dir>.old-2`, …: the first name not taken. */
function freeName(dir: string): string {
  const base = join(dirname(dir), basename(dir));
  for (let k = 1;; k++) if (!existsSync(`${base}.old-${k}`)) return `${base}.old-${k}`;
}
