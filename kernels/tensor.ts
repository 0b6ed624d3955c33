// GPU tensors: a contiguous row-major f32 (or i32, or f16: two values per 32-bit word) buffer with
// a shape. Buffers come from the pool
// and go back to it on dispose(); scopes (`tidy`) dispose everything made inside them that is not
// returned, so a training step leaves nothing behind.

import { pool } from "./pool.ts";
import { type BufferRange, copyBuffer, readBuffer, writeBuffer } from "./runtime.ts";

export type { BufferRange };

import { byteSize, type DType } from "./dtype.ts";
export { byteSize, type DType };
export type Shape = readonly number[];

export function numel(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Row-major strides (in elements) of a contiguous tensor. */
export function strides(shape: Shape): number[] {
  const s: number[] = [];
  let acc = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    s[k] = acc;
    acc *= shape[k];
  }
  return s;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(", ")}]`;
}

/** What autograd records for a tensor made by an op: its inputs and how to push a gradient back. */
export interface GradNode {
  name: string;
  inputs: Tensor[];
  /** Given d(loss)/d(output), returns d(loss)/d(input) for each input (null where not needed). */
  backward: (grad: Tensor) => (Tensor | null)[];
  /** for ops with several outputs (recordMulti): all of them, and their joint backward */
  outputs?: Tensor[];
  backwardMulti?: (grads: (Tensor | null)[]) => (Tensor | null)[];
  /** what the backward reads, when that is not just the inputs (memory accounting only) */
  saved?: Tensor[];
}

let nextId = 1;

export interface Storage {
  buffer: GPUBuffer;
  refs: number;
  /** bytes from the start of the buffer (a tensor packed into an arena, kernels/arena.ts) */
  offset: number;
  /** bytes a kernel may bind: the tensor's bytes rounded up to its slot (pool size class) */
  bytes: number;
  /** called when the last tensor using this storage is disposed */
  release: () => void;
}
const scopes: Set<Tensor>[] = [];

export class Tensor {
  readonly id = nextId++;
  readonly shape: Shape;
  readonly size: number;
  readonly dtype: DType;
  private storage: Storage | null;
  /** true for leaves whose gradient is wanted, and for every op output that depends on one */
  requiresGrad = false;
  /** accumulated gradient of a leaf (a parameter) */
  grad: Tensor | null = null;
  /**
   * Where backward puts this leaf's gradient when it has none yet: a slot of an optimiser's
   * gradient arena (kernels/optim.ts), so one kernel can update every parameter.
   */
  gradSlot: Tensor | null = null;
  node: GradNode | null = null;
  /** kept tensors (parameters, optimiser state) are never disposed by a scope */
  kept = false;

  /**
   * A new tensor; with `share`, a view of that tensor's buffer (same size, other shape); with
   * `at`, a tensor in memory someone else manages (an arena's slot, kernels/arena.ts).
   */
  constructor(shape: Shape, dtype: DType = "f32", share?: Tensor, at?: Omit<Storage, "refs">) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`invalid tensor shape ${shapeStr(shape)}`);
    }
    this.shape = [...shape];
    this.size = numel(shape);
    this.dtype = dtype;
    if (share) {
      if (share.size !== this.size) throw new Error("view: sizes differ");
      this.storage = share.storage!;
      this.storage.refs++;
    } else if (at) {
      this.storage = { ...at, refs: 1 };
    } else {
      const buffer = pool.acquire(byteSize(this.size, dtype));
      this.storage = {
        buffer,
        refs: 1,
        offset: 0,
        bytes: buffer.size,
        release: () => pool.release(buffer),
      };
    }
    scopes[scopes.length - 1]?.add(this);
  }

  /** The whole GPU buffer; only for a tensor that starts it (use `range` or pass the tensor). */
  get buffer(): GPUBuffer {
    const s = this.live();
    if (s.offset !== 0) {
      throw new Error(`tensor ${shapeStr(this.shape)} lives inside an arena: bind its range`);
    }
    return s.buffer;
  }

  /** The buffer range kernels bind (pass the tensor itself to dispatch). */
  get range(): BufferRange {
    const s = this.live();
    return { buffer: s.buffer, offset: s.offset, size: s.bytes };
  }

  /** An object that identifies the memory: tensors share it exactly when one is a view of the other. */
  get storageKey(): object {
    return this.live();
  }

  private live(): Storage {
    if (!this.storage) throw new Error(`tensor ${shapeStr(this.shape)} used after dispose()`);
    return this.storage;
  }

  /**
   * A tensor of `shape` over this tensor's elements from `start` on (no copy; it keeps the memory
   * alive). The start must meet the adapter's storage-binding alignment to be bound by kernels.
   */
  rangeView(start: number, shape: Shape): Tensor {
    const s = this.live();
    const n = numel(shape);
    if (this.dtype === "f16") throw new Error("rangeView: not for f16 tensors");
    if (!Number.isInteger(start) || start < 0 || start + n > this.size) {
      throw new Error(`rangeView: elements ${start}…${start + n} of ${shapeStr(this.shape)}`);
    }
    s.refs++;
    let done = false;
    return new Tensor(shape, this.dtype, undefined, {
      buffer: s.buffer,
      offset: s.offset + start * 4,
      bytes: n * 4,
      release: () => {
        if (done) return;
        done = true;
        if (--s.refs === 0) s.release();
      },
    });
  }

  /**
   * Moves the contents into `bytes` bytes of another buffer at `offset` (recorded as a copy) and
   * uses that memory from now on; `release` runs when the last user disposes it. The tensor and its
   * views must be the only users of the old memory. For arenas (kernels/arena.ts).
   */
  moveTo(buffer: GPUBuffer, offset: number, bytes: number, release: () => void): void {
    const s = this.live();
    copyBuffer(s.buffer, buffer, byteSize(this.size, this.dtype), s.offset, offset);
    s.release();
    s.buffer = buffer;
    s.offset = offset;
    s.bytes = bytes;
    s.release = release;
  }

  get disposed(): boolean {
    return this.storage === null;
  }

  get rank(): number {
    return this.shape.length;
  }

  dispose(): void {
    if (!this.storage) return;
    if (--this.storage.refs === 0) this.storage.release();
    this.storage = null;
    this.node = null;
  }

  /** Excludes this tensor from scope disposal; returns it. */
  keep(): this {
    this.kept = true;
    for (const s of scopes) s.delete(this);
    return this;
  }

  /** The values (an f16 tensor's widened to f32). */
  async read(): Promise<Float32Array> {
    if (this.dtype === "i32") throw new Error("read(): tensor is i32; use readInt()");
    const { buffer, offset } = this.range;
    const bytes = await readBuffer(buffer, byteSize(this.size, this.dtype), offset);
    if (this.dtype === "f32") return new Float32Array(bytes);
    const h = new Uint16Array(bytes);
    return Float32Array.from({ length: this.size }, (_, i) => halfToFloat(h[i]));
  }

  async readInt(): Promise<Int32Array> {
    const { buffer, offset } = this.range;
    return new Int32Array(await readBuffer(buffer, this.size * 4, offset));
  }

  /** Overwrites the contents (in stream order). */
  write(data: Float32Array | Int32Array): void {
    if (this.dtype === "f16") throw new Error("write(): f16 tensors are made on the GPU (toHalf)");
    if (data.length !== this.size) {
      throw new Error(`write(): ${data.length} values for a tensor of ${this.size}`);
    }
    const { buffer, offset } = this.range;
    writeBuffer(buffer, data, offset);
  }

  toString(): string {
    return `Tensor(${shapeStr(this.shape)}, ${this.dtype})`;
  }
}

/** An IEEE half (its 16 bits) as a number. */
export function halfToFloat(h: number): number {
  const e = (h >> 10) & 0x1f, m = h & 0x3ff, sign = h & 0x8000 ? -1 : 1;
  if (e === 0) return sign * m * 2 ** -24;
  if (e === 31) return m ? NaN : sign * Infinity;
  return sign * (1 + m / 1024) * 2 ** (e - 15);
}

export function tensor(data: ArrayLike<number>, shape: Shape): Tensor {
  const n = numel(shape);
  if (data.length !== n) {
    throw new Error(`tensor(): ${data.length} values do not fill shape ${shapeStr(shape)}`);
  }
  const t = new Tensor(shape, "f32");
  t.write(data instanceof Float32Array ? data : Float32Array.from(data));
  return t;
}

export function intTensor(data: ArrayLike<number>, shape: Shape): Tensor {
  const n = numel(shape);
  if (data.length !== n) {
    throw new Error(`intTensor(): ${data.length} values do not fill shape ${shapeStr(shape)}`);
  }
  const t = new Tensor(shape, "i32");
  t.write(data instanceof Int32Array ? data : Int32Array.from(data));
  return t;
}

/** Uninitialised tensor (contents are whatever the pooled buffer held). */
export function empty(shape: Shape, dtype: DType = "f32"): Tensor {
  return new Tensor(shape, dtype);
}

// ---- scopes ---------------------------------------------------------------------------------

type Result = Tensor | Result[] | { [k: string]: Result } | number | string | boolean | null | void;

function collect(r: unknown, out: Set<Tensor>): void {
  if (r instanceof Tensor) out.add(r);
  else if (Array.isArray(r)) { for (const x of r) collect(x, out); }
  else if (r && typeof r === "object") { for (const x of Object.values(r)) collect(x, out); }
}

/**
 * Runs fn; disposes every tensor created inside it except those in its result (which move to
 * the enclosing scope) and kept ones.
 */
export function tidy<T extends Result>(fn: () => T): T {
  const scope = new Set<Tensor>();
  scopes.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    for (const t of scope) if (!t.kept) t.dispose();
    throw e;
  } finally {
    scopes.pop();
  }
  const survivors = new Set<Tensor>();
  collect(result, survivors);
  const parent = scopes[scopes.length - 1];
  for (const t of scope) {
    if (survivors.has(t)) parent?.add(t);
    else if (!t.kept) t.dispose();
  }
  return result;
}
