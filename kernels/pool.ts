// A buffer pool: freed storage buffers are kept by size class and handed out again, so a training
// loop that makes the same tensors every step allocates nothing after its first step.

import { device, deviceInfo } from "./device.ts";

const USAGE = GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;

/**
 * Size classes: multiples of 256 B up to 4 KiB, then four classes per power of two (≤ 25 % waste).
 * A class past `limit` (the largest buffer a kernel may bind) would make a tensor that fits
 * unbindable: such a tensor gets a buffer of its own size.
 */
export function sizeClass(bytes: number, limit = Infinity): number {
  const b = Math.max(256, Math.ceil(bytes / 256) * 256);
  if (b <= 4096) return b;
  const p = 2 ** Math.floor(Math.log2(b));
  const step = p / 4;
  const c = Math.ceil(b / step) * step;
  return c <= limit ? c : Math.ceil(bytes / 4) * 4;
}

let nextId = 1;
const ids = new WeakMap<GPUBuffer, number>();

/** A stable small integer per buffer, used to key cached bind groups. */
export function bufferId(b: GPUBuffer): number {
  let id = ids.get(b);
  if (id === undefined) {
    id = nextId++;
    ids.set(b, id);
  }
  return id;
}

export interface PoolStats {
  /** bytes held by the pool, free or in use */
  allocatedBytes: number;
  inUseBytes: number;
  peakInUseBytes: number;
  buffers: number;
}

class BufferPool {
  private free = new Map<number, GPUBuffer[]>();
  stats: PoolStats = { allocatedBytes: 0, inUseBytes: 0, peakInUseBytes: 0, buffers: 0 };

  acquire(bytes: number): GPUBuffer {
    const size = sizeClass(bytes, deviceInfo().bufferLimit);
    const list = this.free.get(size);
    let buf = list?.pop();
    if (!buf) {
      buf = device().createBuffer({ size, usage: USAGE });
      this.stats.allocatedBytes += size;
      this.stats.buffers++;
    }
    this.stats.inUseBytes += size;
    if (this.stats.inUseBytes > this.stats.peakInUseBytes) {
      this.stats.peakInUseBytes = this.stats.inUseBytes;
    }
    return buf;
  }

  release(buf: GPUBuffer): void {
    const size = buf.size;
    this.stats.inUseBytes -= size;
    let list = this.free.get(size);
    if (!list) this.free.set(size, list = []);
    list.push(buf);
  }

  /** Destroys every free buffer (the in-use ones stay). */
  trim(): void {
    for (const list of this.free.values()) {
      for (const b of list) {
        this.stats.allocatedBytes -= b.size;
        this.stats.buffers--;
        b.destroy();
      }
    }
    this.free.clear();
  }

  resetPeak(): void {
    this.stats.peakInUseBytes = this.stats.inUseBytes;
  }
}

export const pool: BufferPool = new BufferPool();
