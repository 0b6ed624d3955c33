// Arenas: several tensors in one buffer, each at an offset aligned to 256 bytes (the largest
// storage-binding alignment WebGPU allows an adapter to ask for), so that one kernel can treat
// them as a single flat array — the optimiser updates every parameter, an EMA follows every
// parameter, in one dispatch each — while every other kernel still binds each tensor's own range.
// The gaps between tensors are zero and stay zero under the elementwise updates that use arenas.

import { pool } from "./pool.ts";
import { type Shape, type Tensor, Tensor as TensorClass } from "./tensor.ts";
import { zero } from "./shape.ts";
import { lerpInPlace } from "./vector.ts";

/** Floats per alignment unit (256 bytes). */
const ALIGN = 64;

/** Offsets (in floats) of consecutive tensors of these sizes, and the floats they span. */
export function arenaLayout(sizes: readonly number[]): { offsets: number[]; floats: number } {
  const offsets: number[] = [];
  let at = 0;
  for (const n of sizes) {
    offsets.push(at);
    at += Math.max(ALIGN, Math.ceil(n / ALIGN) * ALIGN);
  }
  return { offsets, floats: Math.max(at, ALIGN) };
}

/** The memory of an arena: freed once the last tensor in it is disposed. */
class ArenaBuffer {
  readonly buffer: GPUBuffer;
  private users = 0;
  constructor(readonly floats: number) {
    this.buffer = pool.acquire(floats * 4);
  }
  /** A release function for one more user. */
  user(): () => void {
    this.users++;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      if (--this.users === 0) pool.release(this.buffer);
    };
  }
}

export interface Arena {
  buffer: GPUBuffer;
  /** floats spanned, gaps included */
  floats: number;
  /** each tensor's first float */
  offsets: number[];
  tensors: Tensor[];
}

function slot(a: ArenaBuffer, offset: number, next: number) {
  return {
    buffer: a.buffer,
    offset: offset * 4,
    bytes: (next - offset) * 4,
    release: a.user(),
  };
}

/** A new zeroed arena of tensors with these shapes (f32). */
export function newArena(shapes: readonly Shape[]): Arena {
  const sizes = shapes.map((s) => s.reduce((p, d) => p * d, 1));
  const { offsets, floats } = arenaLayout(sizes);
  const a = new ArenaBuffer(floats);
  const whole = new TensorClass([floats], "f32", undefined, slot(a, 0, floats));
  zero(whole);
  const tensors = shapes.map((shape, k) =>
    new TensorClass(
      shape,
      "f32",
      undefined,
      slot(a, offsets[k], offsets[k + 1] ?? floats),
    )
  );
  // the arena's memory is its tensors' from here: freed when the last of them is disposed
  whole.dispose();
  return { buffer: a.buffer, floats, offsets, tensors };
}

/**
 * Moves existing tensors (parameters) into one new arena, keeping their contents; the Tensor
 * objects stay the same, so everything that holds them sees the move. Tensors already laid out as
 * one arena in this order are left where they are.
 */
export function packInArena(ts: readonly Tensor[]): Arena {
  const sizes = ts.map((t) => t.size);
  const { offsets, floats } = arenaLayout(sizes);
  const found = arenaOf(ts);
  if (found && found.floats === floats) return { ...found, tensors: [...ts] };
  if (new Set(ts.map((t) => t.storageKey)).size !== ts.length) {
    throw new Error("packInArena: two tensors share memory (a tensor and its view)");
  }
  const a = new ArenaBuffer(floats);
  const whole = new TensorClass([floats], "f32", undefined, slot(a, 0, floats));
  zero(whole);
  ts.forEach((t, k) => {
    const s = slot(a, offsets[k], offsets[k + 1] ?? floats);
    t.moveTo(s.buffer, s.offset, s.bytes, s.release);
  });
  whole.dispose();
  return { buffer: a.buffer, floats, offsets, tensors: [...ts] };
}

/** The arena `ts` form, in order and with no other tensor between them, or null. */
export function arenaOf(ts: readonly Tensor[]): Omit<Arena, "tensors"> | null {
  if (!ts.length) return null;
  const { offsets, floats } = arenaLayout(ts.map((t) => t.size));
  const first = ts[0].range;
  if (first.offset !== 0) return null;
  for (let k = 0; k < ts.length; k++) {
    const r = ts[k].range;
    if (r.buffer !== first.buffer || r.offset !== offsets[k] * 4) return null;
  }
  if (first.buffer.size < floats * 4) return null;
  return { buffer: first.buffer, floats, offsets };
}

/** The whole arena as one flat tensor (a view that keeps the memory alive until disposed). */
function flat(ts: readonly Tensor[], floats: number): Tensor {
  const r = ts[0].range;
  // shares the first tensor's release: a second user of its storage
  return new TensorClass([floats], "f32", undefined, {
    buffer: r.buffer,
    offset: 0,
    bytes: floats * 4,
    release: () => {},
  });
}

/**
 * ys[k] += w·(xs[k] − ys[k]) for every k (no autograd): an EMA of every parameter. One dispatch
 * when both lists are arenas of the same layout (packInArena), else one per tensor. w is a
 * one-element tensor.
 */
export function lerpAll(ys: readonly Tensor[], xs: readonly Tensor[], w: Tensor): void {
  if (ys.length !== xs.length) {
    throw new Error(`lerpAll: ${ys.length} targets, ${xs.length} sources`);
  }
  const ay = arenaOf(ys), ax = arenaOf(xs);
  if (ay && ax && ay.floats === ax.floats) {
    const y = flat(ys, ay.floats), x = flat(xs, ax.floats);
    lerpInPlace(y, x, w);
    y.dispose();
    x.dispose();
    return;
  }
  ys.forEach((y, k) => {
    if (y.size !== xs[k].size) throw new Error(`lerpAll: ${xs[k]} into ${y}`);
    lerpInPlace(y, xs[k], w);
  });
}
