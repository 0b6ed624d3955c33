// Warm-up: compile (and, on first use per adapter, time the variants of) every kernel a step
// needs before the step runs, reporting progress.
//
// The step is first run dry: its host code runs, its dispatches are only collected. Shapes whose
// variant has not been timed on this adapter are timed (kernels/tune.ts), then each kernel still
// to compile is created concurrently (createComputePipelineAsync: a GPU driver compiles on several
// threads) and run once on one workgroup of scratch buffers, because a CPU adapter (lavapipe)
// compiles a pipeline when it first executes, on its one queue thread. `onProgress` hears each
// kernel as it finishes, so a command line can show a line while a fresh machine compiles.

import { clearTape, tapeLength } from "./autograd.ts";
import { device } from "./device.ts";
import {
  collectKernels,
  createPipelines,
  type Kernel,
  startProfile,
  stopProfile,
  sync,
} from "./runtime.ts";
import { tidy } from "./tensor.ts";
import { pendingTuning, tunePending } from "./tune.ts";

export interface WarmUpProgress {
  /** "tune": timing the variants of a shape; "compile": compiling the step's kernels */
  phase: "tune" | "compile";
  done: number;
  total: number;
  /** the kernel or shape that finished last */
  name: string;
}

export interface WarmUpStats {
  /** kernels the step uses */
  kernels: number;
  /** of them, compiled by this warm-up (the rest had already run) */
  compiled: number;
  /** shapes whose variants were timed */
  tuned: number;
  ms: number;
}

/** Dry-runs `step` (synchronous; see collectKernels), leaving no tape and no tensors behind. */
function collect(step: () => unknown): Kernel[] {
  const tape0 = tapeLength();
  return collectKernels(() => {
    tidy(() => {
      step();
    });
    if (tapeLength() > tape0) clearTape();
  });
}

/** GPU ms of one recorded run: timestamp queries where the adapter has them, else wall clock. */
async function timeRun(run: () => void): Promise<number> {
  if (device().features.has("timestamp-query")) {
    startProfile();
    try {
      run();
    } catch (e) {
      await stopProfile();
      throw e;
    }
    const totals = await stopProfile();
    let ms = 0;
    for (const { ms: m } of totals.values()) ms += m;
    return ms;
  }
  await sync();
  const t = performance.now();
  run();
  await sync();
  return performance.now() - t;
}

/**
 * Compiles every kernel `step` dispatches (timing the variants of untimed shapes first, where
 * tuning is on), before it runs for real. `step` must be synchronous and must not change host
 * state that matters: it runs with its dispatches dropped (an optimiser's step counter does not
 * advance, but a data loader it calls would), so anything it computes once and caches would be
 * cached unwritten: warm up with a throwaway ε function of PixArt.guidedEps (its caption path and
 * packed weights), not the one that samples afterwards.
 */
export async function warmUp(
  step: () => unknown,
  opts: { onProgress?: (p: WarmUpProgress) => void } = {},
): Promise<WarmUpStats> {
  const t0 = performance.now();
  let ks = collect(step);
  let tuned = 0;
  if (pendingTuning() > 0) {
    tuned = await tunePending(timeRun, {
      onProgress: (p) =>
        opts.onProgress?.({ phase: "tune", done: p.done, total: p.total, name: p.key }),
    });
    // the timed choices may run other kernels
    ks = collect(step);
  }
  const todo = ks.filter((k) => !k.ran);
  await createPipelines(todo);
  const total = todo.length;
  let done = 0;
  const scratch = new Scratch();
  try {
    const waits: Promise<void>[] = [];
    for (const k of todo) {
      scratch.run(k);
      k.ran = true;
      waits.push(
        device().queue.onSubmittedWorkDone().then(() => {
          done++;
          opts.onProgress?.({ phase: "compile", done, total, name: k.name });
        }),
      );
    }
    await Promise.all(waits);
    await sync();
  } finally {
    scratch.dispose();
  }
  return { kernels: ks.length, compiled: total, tuned, ms: performance.now() - t0 };
}

/**
 * Buffers for running a kernel on one workgroup: zero-filled, one per writable binding (a
 * writable binding may not alias another), one shared by the read-only ones. Zero sizes make the
 * kernels that read their sizes return at once; the others index within the first workgroup's
 * range, and out-of-range accesses are clamped by the WebGPU implementation.
 */
class Scratch {
  private readonly bytes = 1 << 16;
  private readonly readOnly: GPUBuffer;
  private readonly writable: GPUBuffer[] = [];
  constructor() {
    this.readOnly = this.make();
  }
  private make(): GPUBuffer {
    return device().createBuffer({
      size: this.bytes,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
  }
  run(k: Kernel): void {
    const dev = device();
    const bindings = [...k.code.matchAll(/@binding\((\d+)\)\s*var<storage,\s*(read_write|read)>/g)]
      .map((m) => ({ binding: Number(m[1]), write: m[2] === "read_write" }));
    let w = 0;
    const entries = bindings.map(({ binding, write }) => {
      let buffer = this.readOnly;
      if (write) {
        if (w === this.writable.length) this.writable.push(this.make());
        buffer = this.writable[w++];
      }
      return { binding, resource: { buffer } };
    });
    const enc = dev.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(k.pipeline);
    pass.setBindGroup(
      0,
      dev.createBindGroup({ layout: k.pipeline.getBindGroupLayout(0), entries }),
    );
    pass.dispatchWorkgroups(1);
    pass.end();
    dev.queue.submit([enc.finish()]);
  }
  dispose(): void {
    this.readOnly.destroy();
    for (const b of this.writable) b.destroy();
  }
}
