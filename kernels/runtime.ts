// Kernel compilation, dispatch and readback. All dispatches of a step go into one command encoder
// and one compute pass; `flush()` submits them. Pipelines and bind groups are cached, so a loop
// that repeats the same work builds nothing after its first iteration.

import { checkDevice, device, deviceInfo } from "./device.ts";
import { bufferId, pool } from "./pool.ts";
import { byteSize, type DType } from "./dtype.ts";

/** What a kernel binds for a tensor: its range of a buffer (see kernels/arena.ts). */
export interface BufferRange {
  buffer: GPUBuffer;
  offset: number;
  size: number;
}

/** What names its range of a buffer: a tensor (kernels/tensor.ts). */
export interface HasRange {
  readonly range: BufferRange;
}

/** What a kernel binds: a whole buffer, or a tensor's range of one. */
export type Binding = GPUBuffer | HasRange;

function rangeOf(b: Binding): BufferRange {
  return b instanceof GPUBuffer ? { buffer: b, offset: 0, size: b.size } : b.range;
}

export interface Kernel {
  name: string;
  code: string;
  /** the pipeline, created on first use (or ahead of it by warm-up's asynchronous compile) */
  pipeline: GPUComputePipeline;
  /** whether a dispatch of it has been submitted (a CPU adapter compiles on first execution) */
  ran: boolean;
}

const kernels = new Map<string, Kernel>();
const errors: string[] = [];

/** Reports errors the device found asynchronously (compile, validation), naming the kernel. */
function rethrowErrors(): void {
  if (errors.length) {
    const msg = errors.splice(0).join("; ");
    try {
      checkDevice(); // drain what the device reported about the same failure
    } catch { /* the scoped message above names the kernel */ }
    throw new Error(msg);
  }
  checkDevice();
}

function createPipeline(name: string, code: string): GPUComputePipeline {
  const dev = device();
  dev.pushErrorScope("validation");
  const module = dev.createShaderModule({ label: name, code });
  const pipeline = dev.createComputePipeline({
    label: name,
    layout: "auto",
    compute: { module, entryPoint: "main" },
  });
  dev.popErrorScope().then((e) => {
    if (e) errors.push(`WGSL kernel '${name}' failed to compile: ${e.message}`);
  });
  return pipeline;
}

class LazyKernel implements Kernel {
  ran = false;
  private made: GPUComputePipeline | null = null;
  constructor(readonly name: string, readonly code: string) {}
  get pipeline(): GPUComputePipeline {
    return this.made ??= createPipeline(this.name, this.code);
  }
  get created(): boolean {
    return this.made !== null;
  }
  /** Creates the pipeline without blocking (drivers may compile it on other threads). */
  async createAsync(): Promise<void> {
    if (this.made) return;
    const dev = device();
    dev.pushErrorScope("validation");
    const module = dev.createShaderModule({ label: this.name, code: this.code });
    let p: GPUComputePipeline | null = null;
    try {
      p = await dev.createComputePipelineAsync({
        label: this.name,
        layout: "auto",
        compute: { module, entryPoint: "main" },
      });
    } catch (e) {
      errors.push(`WGSL kernel '${this.name}' failed to compile: ${(e as Error).message}`);
    }
    const e = await dev.popErrorScope();
    if (e) errors.push(`WGSL kernel '${this.name}' failed to compile: ${e.message}`);
    this.made ??= p;
  }
}

/** Compiles (once) a compute shader whose entry point is `main`. */
export function kernel(name: string, code: string): Kernel {
  const hit = kernels.get(code);
  if (hit) return hit;
  const k = new LazyKernel(name, code);
  kernels.set(code, k);
  return k;
}

export function compiledKernelCount(): number {
  return kernels.size;
}

// ---- small buffers of sizes ---------------------------------------------------------------------
// Kernels that take their sizes from a buffer instead of WGSL constants compile once for every
// shape (on CPU adapters a compile costs more than many runs). It is a read-only storage buffer,
// not a uniform: lavapipe inlines the values of small uniform buffers into the shader and
// compiles it again for every new set of values, the very cost this avoids. The buffers are keyed
// by their contents and never written again, so a cached bind group always sees the same sizes.

const sizeBuffers = new Map<string, GPUBuffer>();
const MAX_SIZE_BUFFERS = 4096;

/** A storage buffer holding these u32 words (padded to 16 bytes); one per distinct content. */
export function sizeWords(words: readonly number[]): GPUBuffer {
  const key = words.join(",");
  let buf = sizeBuffers.get(key);
  if (!buf) {
    if (sizeBuffers.size >= MAX_SIZE_BUFFERS) {
      // destroying buffers a recorded command may still bind is unsafe: only forget them (the
      // garbage collector frees them once nothing refers to them)
      sizeBuffers.clear();
    }
    const data = new Uint32Array(Math.max(4, Math.ceil(words.length / 4) * 4));
    words.forEach((w, i) => {
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) {
        throw new Error(`sizeWords: ${w} is not a u32`);
      }
      data[i] = w;
    });
    buf = device().createBuffer({
      size: data.byteLength,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST,
    });
    device().queue.writeBuffer(buf, 0, data);
    sizeBuffers.set(key, buf);
  }
  return buf;
}

// ---- command recording ----------------------------------------------------------------------

let encoder: GPUCommandEncoder | null = null;
let pass: GPUComputePassEncoder | null = null;
let recorded: string[] = [];
/** Buffers that commands recorded since the last flush read or write. */
const pendingUse = new Set<GPUBuffer>();
/** Staging buffers of writes recorded as copies (writeBuffer), destroyed once submitted. */
let stagingBuffers: GPUBuffer[] = [];
export const counters = { dispatches: 0, submits: 0, readbacks: 0 };

const bindGroups = new Map<string, GPUBindGroup>();
const MAX_BIND_GROUPS = 8192;

function bindGroup(k: Kernel, ranges: BufferRange[]): GPUBindGroup {
  let key = k.name + "#" + kernelId(k);
  for (const r of ranges) {
    key += "," + bufferId(r.buffer);
    if (r.offset || r.size !== r.buffer.size) key += `@${r.offset}+${r.size}`;
  }
  let bg = bindGroups.get(key);
  if (!bg) {
    if (bindGroups.size >= MAX_BIND_GROUPS) bindGroups.clear();
    bg = device().createBindGroup({
      label: k.name,
      layout: k.pipeline.getBindGroupLayout(0),
      entries: ranges.map(({ buffer, offset, size }, binding) => ({
        binding,
        resource: { buffer, offset, size },
      })),
    });
    bindGroups.set(key, bg);
  }
  return bg;
}

const kernelIds = new WeakMap<Kernel, number>();
let nextKernelId = 1;
function kernelId(k: Kernel): number {
  let id = kernelIds.get(k);
  if (id === undefined) kernelIds.set(k, id = nextKernelId++);
  return id;
}

function currentPass(): GPUComputePassEncoder {
  if (!pass) {
    encoder ??= device().createCommandEncoder();
    pass = encoder.beginComputePass();
  }
  return pass;
}

/** Records one dispatch; `buffers` bind to @binding(0..n-1) of @group(0) in order. */
export function dispatch(k: Kernel, buffers: Binding[], x: number, y = 1, z = 1): void {
  const max = deviceInfo().workgroupsPerDimension;
  if (x > max || y > max || z > max) {
    throw new Error(`kernel '${k.name}': dispatch ${x}x${y}x${z} exceeds ${max} per dimension`);
  }
  if (x === 0 || y === 0 || z === 0) return;
  if (collecting) {
    collecting.add(k);
    return;
  }
  k.ran = true;
  const ranges = buffers.map(rangeOf);
  if (profiler) {
    profiledDispatch(k, ranges, x, y, z);
    return;
  }
  const p = currentPass();
  p.setPipeline(k.pipeline);
  p.setBindGroup(0, bindGroup(k, ranges));
  p.dispatchWorkgroups(x, y, z);
  for (const r of ranges) pendingUse.add(r.buffer);
  recorded.push(k.name);
  counters.dispatches++;
}

/** Records a buffer-to-buffer copy in stream order. */
export function copyBuffer(
  src: GPUBuffer,
  dst: GPUBuffer,
  bytes: number,
  srcOffset = 0,
  dstOffset = 0,
) {
  if (collecting) return;
  if (pass) {
    pass.end();
    pass = null;
  }
  encoder ??= device().createCommandEncoder();
  encoder.copyBufferToBuffer(src, srcOffset, dst, dstOffset, bytes);
  pendingUse.add(src);
  pendingUse.add(dst);
}

/** Records a copy of `bytes` (default: all of src) from one tensor's memory to another's. */
export function copyTensor(
  src: HasRange & { readonly size: number; readonly dtype?: DType },
  dst: HasRange,
  bytes = byteSize(src.size, src.dtype ?? "f32"),
): void {
  const a = src.range, b = dst.range;
  copyBuffer(a.buffer, b.buffer, bytes, a.offset, b.offset);
}

/** Submits everything recorded so far. */
export function flush(): void {
  if (!encoder) return;
  if (pass) pass.end();
  if (profiler && profiler.names.length) resolveProfile(encoder);
  const dev = device();
  const names = recorded;
  dev.pushErrorScope("validation");
  dev.queue.submit([encoder.finish()]);
  dev.popErrorScope().then((e) => {
    if (e) {
      const shown = [...new Set(names)].slice(0, 8).join(", ");
      errors.push(`WebGPU validation error in kernels [${shown}]: ${e.message}`);
    }
  });
  encoder = null;
  pass = null;
  recorded = [];
  pendingUse.clear();
  counters.submits++;
  if (stagingBuffers.length) {
    const done = stagingBuffers;
    stagingBuffers = [];
    dev.queue.onSubmittedWorkDone().then(() => done.forEach((b) => b.destroy()));
  }
}

/** Writes data into a buffer in stream order (after everything recorded before it). */
export function writeBuffer(buf: GPUBuffer, data: ArrayBufferView, offset = 0): void {
  // queue.writeBuffer runs before any command still unsubmitted. If those use this buffer (a
  // reused pool buffer), the data goes through a staging buffer and a recorded copy instead, so
  // the step keeps one command encoder rather than being submitted here.
  if (pendingUse.has(buf) && !collecting) {
    const size = Math.ceil(data.byteLength / 4) * 4;
    const staging = device().createBuffer({
      size,
      usage: GPUBufferUsage.COPY_SRC,
      mappedAtCreation: true,
    });
    new Uint8Array(staging.getMappedRange()).set(
      new Uint8Array(data.buffer, data.byteOffset, data.byteLength),
    );
    staging.unmap();
    copyBuffer(staging, buf, size, 0, offset);
    stagingBuffers.push(staging);
    return;
  }
  device().queue.writeBuffer(
    buf,
    offset,
    data.buffer as ArrayBuffer,
    data.byteOffset,
    data.byteLength,
  );
}

/** Reads `bytes` from a buffer after all recorded work. Costs a GPU round trip: keep it out of loops. */
export async function readBuffer(buf: GPUBuffer, bytes: number, offset = 0): Promise<ArrayBuffer> {
  const size = Math.ceil(bytes / 4) * 4;
  const staging = device().createBuffer({
    size,
    usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
  });
  copyBuffer(buf, staging, size, offset, 0);
  flush();
  counters.readbacks++;
  try {
    await staging.mapAsync(GPUMapMode.READ);
  } catch (e) {
    rethrowErrors();
    throw e;
  }
  const out = staging.getMappedRange().slice(0, bytes);
  staging.unmap();
  staging.destroy();
  rethrowErrors();
  return out;
}

/**
 * Submits everything recorded so far; resolves when the GPU has finished it. A loop that records
 * round n + 1 before awaiting round n's promise keeps the GPU busy and at most one round behind,
 * and turns the event loop once a round (timers and signals are seen there).
 */
export function submitted(): Promise<void> {
  flush();
  return device().queue.onSubmittedWorkDone();
}

/** Waits until the GPU has finished all submitted work, and reports any error it found. */
export async function sync(): Promise<void> {
  flush();
  await device().queue.onSubmittedWorkDone();
  rethrowErrors();
}

/**
 * Gives the pool's free buffers back to the GPU (pool.trim) once the work recorded so far is done:
 * a tensor freed by the host may still be read by a dispatch not yet submitted, and a destroyed
 * buffer in a submit is a validation error.
 */
export async function trimPool(): Promise<void> {
  await sync();
  pool.trim();
}

// ---- collecting the kernels a step needs (warm-up) ---------------------------------------------
// While collecting, dispatch() only notes which kernels would run and copies are skipped: the
// step's host code runs (tensors are allocated and uploaded), the GPU does nothing. warmup.ts
// uses this to compile everything a step needs before it runs.

let collecting: Set<Kernel> | null = null;

/** Runs fn (synchronous) recording nothing; returns the kernels its dispatches would have used. */
export function collectKernels(fn: () => void): Kernel[] {
  if (collecting) throw new Error("collectKernels: already collecting");
  flush();
  const seen = new Set<Kernel>();
  collecting = seen;
  try {
    const out = fn() as unknown;
    if (typeof (out as { then?: unknown } | null)?.then === "function") {
      throw new Error("collectKernels(fn): fn must be synchronous");
    }
  } finally {
    collecting = null;
  }
  return [...seen];
}

/** Whether dispatches are only being collected (a warm-up's dry run): state must not advance. */
export function isCollecting(): boolean {
  return collecting !== null;
}

/** Creates the pipelines of `ks` that do not exist yet, concurrently where the driver can. */
export async function createPipelines(ks: Kernel[]): Promise<void> {
  await Promise.all(ks.map((k) => k instanceof LazyKernel ? k.createAsync() : Promise.resolve()));
  rethrowErrors();
}

// ---- profiling with timestamp queries -------------------------------------------------------
// While a profile is on, every dispatch gets its own compute pass with begin/end timestamps, so
// the GPU time of each kernel can be summed by name. This serialises work: use it to find where
// time goes, not to measure the total.

interface Profiler {
  querySet: GPUQuerySet;
  capacity: number;
  names: string[];
  pending: Promise<void>[];
  totals: Map<string, { ms: number; count: number }>;
}
let profiler: Profiler | null = null;

function profiledDispatch(k: Kernel, ranges: BufferRange[], x: number, y: number, z: number) {
  const pr = profiler!;
  if (pass) {
    pass.end();
    pass = null;
  }
  if (pr.names.length * 2 >= pr.capacity) flush();
  encoder ??= device().createCommandEncoder();
  const i = pr.names.length;
  const p = encoder.beginComputePass({
    timestampWrites: {
      querySet: pr.querySet,
      beginningOfPassWriteIndex: 2 * i,
      endOfPassWriteIndex: 2 * i + 1,
    },
  });
  p.setPipeline(k.pipeline);
  p.setBindGroup(0, bindGroup(k, ranges));
  p.dispatchWorkgroups(x, y, z);
  p.end();
  k.ran = true;
  pr.names.push(k.name);
  for (const r of ranges) pendingUse.add(r.buffer);
  recorded.push(k.name);
  counters.dispatches++;
}

function resolveProfile(enc: GPUCommandEncoder): void {
  const pr = profiler!;
  const n = pr.names.length * 2;
  const dev = device();
  const resolve = dev.createBuffer({
    size: n * 8,
    usage: GPUBufferUsage.QUERY_RESOLVE | GPUBufferUsage.COPY_SRC,
  });
  const read = dev.createBuffer({
    size: n * 8,
    usage: GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ,
  });
  enc.resolveQuerySet(pr.querySet, 0, n, resolve, 0);
  enc.copyBufferToBuffer(resolve, 0, read, 0, n * 8);
  const names = pr.names;
  pr.names = [];
  pr.pending.push((async () => {
    await dev.queue.onSubmittedWorkDone();
    await read.mapAsync(GPUMapMode.READ);
    const ts = new BigUint64Array(read.getMappedRange().slice(0));
    read.unmap();
    read.destroy();
    resolve.destroy();
    names.forEach((name, i) => {
      const ms = Number(ts[2 * i + 1] - ts[2 * i]) / 1e6;
      const e = pr.totals.get(name) ?? { ms: 0, count: 0 };
      e.ms += ms;
      e.count++;
      pr.totals.set(name, e);
    });
  })());
}

/** Starts timing every dispatch (needs the adapter's timestamp-query feature). */
export function startProfile(): void {
  if (!device().features.has("timestamp-query")) {
    throw new Error("profiling needs the adapter's timestamp-query feature");
  }
  flush();
  const capacity = 4096;
  profiler = {
    querySet: device().createQuerySet({ type: "timestamp", count: capacity }),
    capacity,
    names: [],
    pending: [],
    totals: new Map(),
  };
}

/** Stops profiling; returns GPU milliseconds and dispatch counts per kernel name. */
export async function stopProfile(): Promise<Map<string, { ms: number; count: number }>> {
  if (!profiler) throw new Error("stopProfile(): no profile running");
  flush();
  const pr = profiler;
  profiler = null;
  await Promise.all(pr.pending);
  pr.querySet.destroy();
  rethrowErrors();
  return pr.totals;
}
