// Adam / AdamW (Kingma & Ba 2015; Loshchilov & Hutter 2019) entirely on the GPU.
//
// The parameters are packed into one arena (kernels/arena.ts), and so are their gradients (each
// parameter's `gradSlot`: backward writes a leaf's gradient there), moments m and v. One step then
// records, without any readback, three dispatches whatever the number of parameters:
//   1. (with clipping or when the norm is asked for) a sum of squares of the gradient arena into
//      a small buffer of partial sums, then one tiny kernel that adds them up into the global
//      norm and the clip factor min(1, clipNorm / (norm + 1e-6));
//   2. one fused update of the whole arena that applies the clip factor, weight decay, the moment
//      updates and the bias-corrected step (the zero gaps between parameters stay zero).
// A step in which some parameter has no gradient (its moments must stay as they are) takes the
// same kernels once per parameter instead.
// The step's scalars (scheduled lr, bias corrections, …) go in one small tensor written once per
// step, and each parameter's size and slot offset in a small u32 tensor written once, so the
// kernels contain no per-step or per-parameter constants: four pipelines serve any model.

import { copyTensor, dispatch, isCollecting, kernel, readBuffer, sizeWords } from "./runtime.ts";
import { empty, intTensor, type Tensor, Tensor as TensorClass, tensor } from "./tensor.ts";
import { zero } from "./shape.ts";
import { grid1d } from "./wgsl.ts";
import { type Arena, newArena, packInArena } from "./arena.ts";

export interface AdamOptions {
  /** base learning rate (default 1e-3) */
  lr?: number;
  /** (β₁, β₂), default (0.9, 0.999) */
  betas?: [number, number];
  /** default 1e-8 */
  eps?: number;
  /** default 0 */
  weightDecay?: number;
  /** true: AdamW's decoupled decay p ← p·(1 − lr·wd); false: L2, g ← g + wd·p (default false) */
  decoupled?: boolean;
  /** linear warm-up: step t (1-based) uses lr·min(1, t / warmupSteps); 0 = constant (default) */
  warmupSteps?: number;
  /** clip the global gradient norm (over all parameters) to this; 0 or unset = no clipping */
  clipNorm?: number;
  /**
   * decay after the warm-up ("warm-up, stable, decay"): the lr holds until step `start`, then
   * falls to `minLr` at step `end` along a cosine or a line, and stays there. A run extended past
   * its planned length keeps its constant phase; only the last stretch decays.
   */
  decay?: LrDecay;
  /**
   * the learning rate of step t (1-based), when a trainer's recipe is more than one warm-up and
   * decay (several cycles): replaces lr, warmupSteps and decay in lrAt
   */
  schedule?: (t: number) => number;
  /**
   * the weight decay and clipping norm of step t (1-based), when a trainer's recipe changes them
   * part-way (its phases): replaces weightDecay and clipNorm in settingsAt
   */
  settings?: (t: number) => StepSettings;
}

/** What a step's update reads besides its learning rate. */
export interface StepSettings {
  weightDecay: number;
  clipNorm: number;
}

export interface LrDecay {
  shape: "cosine" | "linear";
  start: number;
  end: number;
  minLr: number;
}

/** The optimiser's moments (live tensors, one per parameter) and the number of steps taken. */
export interface AdamState {
  step: number;
  m: Tensor[];
  v: Tensor[];
}

/** A state to restore: tensors (copied from) or host arrays (uploaded). */
export interface AdamStateInput {
  step: number;
  m: readonly (Tensor | Float32Array)[];
  v: readonly (Tensor | Float32Array)[];
}

const WG = 256;
/** Partial sums per parameter: at most this many workgroups reduce one gradient. */
const MAX_PARTIALS = 64;
/** Partial sums of the whole gradient arena. */
const FLAT_PARTIALS = 256;
/** Elements per thread (at least) before another workgroup joins a gradient's reduction. */
const PER_THREAD = 8;

// Hyper-parameter slots of the per-step tensor.
const H = {
  stepSize: 0, // lr_t / (1 − β₁ᵗ)
  b1: 1,
  omb1: 2, // 1 − β₁
  b2: 3,
  omb2: 4, // 1 − β₂
  eps: 5,
  l2: 6, // coupled weight decay (0 when decoupled)
  decay: 7, // 1 − lr_t·wd when decoupled, else 1
  invSqrtBc2: 8, // 1 / √(1 − β₂ᵗ)
  clip: 9, // clipNorm, 0 = off
  lr: 10,
  step: 11,
} as const;
const H_SIZE = 12;

const SUMSQ_WGSL = `
@group(0) @binding(0) var<storage, read> Meta: array<u32>;
@group(0) @binding(1) var<storage, read> G: array<f32>;
@group(0) @binding(2) var<storage, read_write> Part: array<f32>;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let n = Meta[0];
  let stride = Meta[2] * ${WG}u;
  var acc = 0.0;
  for (var j = wid.x * ${WG}u + lid.x; j < n; j += stride) {
    let g = G[j];
    acc = fma(g, g, acc);
  }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) { Part[Meta[1] + wid.x] = sh[0]; }
}`;

// the number of partial sums comes in a sizes buffer: one pipeline for the arena's and the
// per-parameter path's partials
const NORM_WGSL = `
@group(0) @binding(0) var<storage, read> Part: array<f32>;
@group(0) @binding(1) var<storage, read> Hp: array<f32>;
@group(0) @binding(2) var<storage, read_write> S: array<f32>;
@group(0) @binding(3) var<storage, read> Count: array<u32>;
var<workgroup> sh: array<f32, ${WG}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_id) lid: vec3<u32>) {
  var acc = 0.0;
  for (var j = lid.x; j < Count[0]; j += ${WG}u) { acc += Part[j]; }
  sh[lid.x] = acc;
  workgroupBarrier();
  for (var s = ${WG / 2}u; s > 0u; s >>= 1u) {
    if (lid.x < s) { sh[lid.x] += sh[lid.x + s]; }
    workgroupBarrier();
  }
  if (lid.x == 0u) {
    let norm = sqrt(sh[0]);
    let clip = Hp[${H.clip}];
    S[0] = norm;
    S[1] = select(1.0, min(1.0, clip / (norm + 1e-6)), clip > 0.0);
  }
}`;

const UPDATE_WGSL = `
@group(0) @binding(0) var<storage, read> Meta: array<u32>;
@group(0) @binding(1) var<storage, read> Hp: array<f32>;
@group(0) @binding(2) var<storage, read> S: array<f32>;
@group(0) @binding(3) var<storage, read> G: array<f32>;
@group(0) @binding(4) var<storage, read_write> M: array<f32>;
@group(0) @binding(5) var<storage, read_write> V: array<f32>;
@group(0) @binding(6) var<storage, read_write> P: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * ${WG}u + lid.x;
  if (i >= Meta[0]) { return; }
  let c = select(1.0, S[1], Hp[${H.clip}] > 0.0);
  let p0 = P[i];
  let g = G[i] * c + Hp[${H.l2}] * p0;
  let m = Hp[${H.b1}] * M[i] + Hp[${H.omb1}] * g;
  let v = Hp[${H.b2}] * V[i] + Hp[${H.omb2}] * (g * g);
  M[i] = m;
  V[i] = v;
  let denom = sqrt(v) * Hp[${H.invSqrtBc2}] + Hp[${H.eps}];
  P[i] = p0 * Hp[${H.decay}] - Hp[${H.stepSize}] * (m / denom);
}`;

const F32_MIN_NORMAL = 2 ** -126;

function checkNumber(x: number, what: string, lo: number, hi = Infinity, hiOpen = false): void {
  if (!(Number.isFinite(x) && x >= lo && (hiOpen ? x < hi : x <= hi))) {
    throw new Error(`Adam: ${what} = ${x} is out of range`);
  }
}

/**
 * The optimiser every training loop here builds (the trainer, its benchmark, the evaluation
 * classifier): AdamW, weight decay decoupled from the gradient (Loshchilov & Hutter 2019), as
 * torch.optim.AdamW. Without weight decay it is Adam.
 */
export function adamW(params: readonly Tensor[], opts: Omit<AdamOptions, "decoupled">): Adam {
  return new Adam(params, { ...opts, decoupled: true });
}

export class Adam {
  readonly params: readonly Tensor[];
  lr: number;
  betas: [number, number];
  eps: number;
  weightDecay: number;
  decoupled: boolean;
  warmupSteps: number;
  clipNorm: number;
  decay: LrDecay | null;
  readonly schedule: ((t: number) => number) | null;
  readonly settings: ((t: number) => StepSettings) | null;
  private t = 0;
  private m: Tensor[];
  private v: Tensor[];
  /** the parameters, gradient slots and moments, each packed into one arena of the same layout */
  private arenas: { p: Arena; g: Arena; m: Arena; v: Arena };
  /** the whole arenas as flat tensors, and their meta [floats, 0, partial count, 0] */
  private flat: { p: Tensor; g: Tensor; m: Tensor; v: Tensor; meta: Tensor; parts: Tensor };
  private flatPartials: number;
  /** per parameter: [size, first partial slot, partial count, 0] */
  private meta: Tensor[];
  private partialCount: number[];
  private partials: Tensor;
  private hyper: Tensor;
  /** [global norm, clip factor] of the last step that computed them */
  private scalars: Tensor;
  private disposed = false;

  constructor(params: readonly Tensor[], opts: AdamOptions = {}) {
    if (new Set(params).size !== params.length) {
      throw new Error("Adam: a parameter is listed twice");
    }
    for (const p of params) {
      if (p.dtype !== "f32") throw new Error(`Adam: parameter ${p} is not f32`);
      if (p.node) throw new Error(`Adam: parameter ${p} is not a leaf`);
      if (p.disposed) throw new Error(`Adam: parameter ${p} is disposed`);
    }
    this.params = [...params];
    this.lr = opts.lr ?? 1e-3;
    this.betas = opts.betas ?? [0.9, 0.999];
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    this.decoupled = opts.decoupled ?? false;
    this.warmupSteps = opts.warmupSteps ?? 0;
    this.clipNorm = opts.clipNorm ?? 0;
    this.decay = opts.decay ?? null;
    this.schedule = opts.schedule ?? null;
    this.settings = opts.settings ?? null;
    this.validate();
    const shapes = params.map((p) => p.shape);
    const pa = packInArena(params);
    const g = newArena(shapes), m = newArena(shapes), v = newArena(shapes);
    for (const t of [...g.tensors, ...m.tensors, ...v.tensors]) t.keep();
    this.arenas = { p: pa, g, m, v };
    params.forEach((p, k) => {
      // backward writes the first gradient of a step into the slot (autograd.ts)
      p.gradSlot = g.tensors[k];
      if (p.grad && p.grad !== g.tensors[k]) {
        copyTensor(p.grad, g.tensors[k]);
        p.grad.dispose();
        p.grad = g.tensors[k];
      }
    });
    this.m = m.tensors;
    this.v = v.tensors;
    const n = pa.floats;
    this.flatPartials = Math.min(FLAT_PARTIALS, Math.max(1, Math.ceil(n / (WG * PER_THREAD))));
    const view = (a: Arena) => arenaView(a, this.params.length ? a.tensors[0] : null);
    this.flat = {
      p: view(pa),
      g: view(g),
      m: view(m),
      v: view(v),
      meta: intTensor([n, 0, this.flatPartials, 0], [4]).keep(),
      parts: zeros([this.flatPartials]),
    };
    let slot = 0;
    this.partialCount = [];
    this.meta = params.map((p) => {
      const count = Math.min(MAX_PARTIALS, Math.max(1, Math.ceil(p.size / (WG * PER_THREAD))));
      this.partialCount.push(count);
      const t = intTensor([p.size, slot, count, 0], [4]).keep();
      slot += count;
      return t;
    });
    this.partials = zeros([Math.max(1, slot)]);
    this.hyper = empty([H_SIZE]).keep();
    this.scalars = tensor([0, 1], [2]).keep();
  }

  private validate(): void {
    checkNumber(this.lr, "lr", 0);
    checkNumber(this.betas[0], "beta1", 0, 1, true);
    checkNumber(this.betas[1], "beta2", 0, 1, true);
    // eps 0 divides 0 by 0 where a gradient has been 0 at every step (an unused table row); below
    // f32's smallest normal number, a GPU may flush it to 0
    checkNumber(this.eps, "eps", F32_MIN_NORMAL);
    checkNumber(this.weightDecay, "weightDecay", 0);
    checkNumber(this.warmupSteps, "warmupSteps", 0);
    checkNumber(this.clipNorm, "clipNorm", 0);
    const d = this.decay;
    if (d) {
      if (d.shape !== "cosine" && d.shape !== "linear") {
        throw new Error(`Adam: decay.shape must be "cosine" or "linear", got ${d.shape}`);
      }
      checkNumber(d.start, "decay.start", 0);
      checkNumber(d.end, "decay.end", d.start);
      checkNumber(d.minLr, "decay.minLr", 0, this.lr);
    }
  }

  /** Number of steps taken. */
  get stepCount(): number {
    return this.t;
  }

  /** The scheduled learning rate of step t (1-based). */
  lrAt(t: number): number {
    if (this.schedule) {
      const lr = this.schedule(t);
      if (!(lr >= 0) || !Number.isFinite(lr)) throw new Error(`Adam: schedule(${t}) is ${lr}`);
      return lr;
    }
    const w = this.warmupSteps;
    const warm = w > 0 ? Math.min(1, t / w) : 1;
    const d = this.decay;
    if (!d || t <= d.start) return this.lr * warm;
    const p = d.end > d.start ? Math.min(1, (t - d.start) / (d.end - d.start)) : 1;
    const f = d.shape === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
    return warm * (d.minLr + (this.lr - d.minLr) * f);
  }

  /** The weight decay and clipping norm of step t (1-based). */
  settingsAt(t: number): StepSettings {
    if (!this.settings) return { weightDecay: this.weightDecay, clipNorm: this.clipNorm };
    const h = this.settings(t);
    checkNumber(h.weightDecay, `settings(${t}).weightDecay`, 0);
    checkNumber(h.clipNorm, `settings(${t}).clipNorm`, 0);
    return h;
  }

  /**
   * One update of every parameter that has a gradient (others are skipped, their moments kept).
   * With `returnNorm`, returns the global gradient norm before clipping as a new GPU scalar
   * (shape [], owned by the caller or the enclosing scope); otherwise null. Nothing is read back.
   */
  step(opts: { returnNorm?: boolean } = {}): Tensor | null {
    if (this.disposed) throw new Error("Adam: step() after dispose()");
    this.validate();
    const params = this.params;
    for (const p of params) {
      if (p.grad && p.grad.size !== p.size) {
        throw new Error(`Adam: gradient ${p.grad} does not match parameter ${p}`);
      }
    }
    // a warm-up's dry run (kernels/warmup.ts) records nothing: the step count must not move
    const t = isCollecting() ? this.t + 1 : ++this.t;
    const [b1, b2] = this.betas;
    const lrT = this.lrAt(t);
    const { weightDecay, clipNorm } = this.settingsAt(t);
    const h = new Float32Array(H_SIZE);
    h[H.stepSize] = lrT / (1 - b1 ** t);
    h[H.b1] = b1;
    h[H.omb1] = 1 - b1;
    h[H.b2] = b2;
    h[H.omb2] = 1 - b2;
    h[H.eps] = this.eps;
    h[H.l2] = this.decoupled ? 0 : weightDecay;
    h[H.decay] = this.decoupled ? 1 - lrT * weightDecay : 1;
    h[H.invSqrtBc2] = 1 / Math.sqrt(1 - b2 ** t);
    h[H.clip] = clipNorm;
    h[H.lr] = lrT;
    h[H.step] = t;
    this.hyper.write(h);

    const withGrad = params.map((_, k) => k).filter((k) => params[k].grad);
    const returnNorm = opts.returnNorm ?? false;
    if (withGrad.length === params.length && params.length > 0) {
      // every parameter has a gradient: move any that is not in its slot there, then update the
      // whole arena at once
      params.forEach((p, k) => {
        const slot = this.arenas.g.tensors[k];
        if (p.grad !== slot) {
          copyTensor(p.grad!, slot);
          p.grad!.dispose();
          p.grad = slot;
        }
      });
      const f = this.flat;
      if (clipNorm > 0 || returnNorm) {
        dispatch(kernel("adam_sumsq", SUMSQ_WGSL), [f.meta, f.g, f.parts], this.flatPartials);
        const norm = kernel("adam_norm", NORM_WGSL);
        dispatch(norm, [f.parts, this.hyper, this.scalars, sizeWords([this.flatPartials])], 1);
      }
      const [gx, gy] = grid1d(f.p.size, WG);
      dispatch(
        kernel("adam_update", UPDATE_WGSL),
        [
          f.meta,
          this.hyper,
          this.scalars,
          f.g,
          f.m,
          f.v,
          f.p,
        ],
        gx,
        gy,
      );
      return returnNorm ? this.normTensor() : null;
    }
    if (clipNorm > 0 || returnNorm) {
      // slots of parameters without a gradient must read as 0
      if (withGrad.length < params.length) zero(this.partials);
      const sumsq = kernel("adam_sumsq", SUMSQ_WGSL);
      for (const k of withGrad) {
        dispatch(
          sumsq,
          [this.meta[k], params[k].grad!, this.partials],
          this.partialCount[k],
        );
      }
      const norm = kernel("adam_norm", NORM_WGSL);
      dispatch(norm, [this.partials, this.hyper, this.scalars, sizeWords([this.partials.size])], 1);
    }
    const update = kernel("adam_update", UPDATE_WGSL);
    for (const k of withGrad) {
      const p = params[k];
      const [gx, gy] = grid1d(p.size, WG);
      dispatch(
        update,
        [
          this.meta[k],
          this.hyper,
          this.scalars,
          p.grad!,
          this.m[k],
          this.v[k],
          p,
        ],
        gx,
        gy,
      );
    }
    return returnNorm ? this.normTensor() : null;
  }

  /** The global norm of the last step as a new scalar tensor. */
  private normTensor(): Tensor {
    const out = empty([]);
    copyTensor(this.scalars, out, 4);
    return out;
  }

  /**
   * Counts a step without updating anything: the learning-rate schedule and the bias corrections
   * move on as if it had been taken (a skipped non-finite step, kernels/train_step.ts).
   */
  skipStep(): void {
    if (this.disposed) throw new Error("Adam: skipStep() after dispose()");
    this.t++;
  }

  /** Drops every gradient (back to the pool; the next backward allocates), or zeroes it in place. */
  zeroGrad(setToNone = true): void {
    this.params.forEach((p, k) => {
      if (!p.grad) return;
      if (setToNone) {
        // a gradient slot stays (the next backward overwrites it); any other tensor is freed
        if (p.grad !== this.arenas.g.tensors[k]) p.grad.dispose();
        p.grad = null;
      } else zero(p.grad);
    });
  }

  /** The moments and step count (live tensors: read them to save a checkpoint). */
  get state(): AdamState {
    return { step: this.t, m: [...this.m], v: [...this.v] };
  }

  /** Reads the state back to the host (for writing a checkpoint). */
  async readState(): Promise<{ step: number; m: Float32Array[]; v: Float32Array[] }> {
    const step = this.t;
    // one readback per moment arena, cut into the parameters' pieces
    const read = async (a: Arena) => {
      const all = new Float32Array(await readBuffer(a.buffer, a.floats * 4));
      return a.tensors.map((t, k) => all.slice(a.offsets[k], a.offsets[k] + t.size));
    };
    return { step, m: await read(this.arenas.m), v: await read(this.arenas.v) };
  }

  /** Restores a saved state (copies into the optimiser's own tensors). */
  loadState(s: AdamStateInput): void {
    if (!Number.isSafeInteger(s.step) || s.step < 0) throw new Error(`Adam: bad step ${s.step}`);
    if (s.m.length !== this.params.length || s.v.length !== this.params.length) {
      throw new Error(
        `Adam: state has ${s.m.length}/${s.v.length} moments for ${this.params.length} parameters`,
      );
    }
    const put = (dst: Tensor, src: Tensor | Float32Array) => {
      if (src === dst) return;
      const n = src instanceof Float32Array ? src.length : src.size;
      if (n !== dst.size) throw new Error(`Adam: moment of ${n} values for ${dst}`);
      if (src instanceof Float32Array) dst.write(src);
      else copyTensor(src, dst, n * 4);
    };
    for (let k = 0; k < this.params.length; k++) {
      put(this.m[k], s.m[k]);
      put(this.v[k], s.v[k]);
    }
    this.t = s.step;
  }

  /** Frees the optimiser's GPU memory (moments and scratch). */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const t of [...this.m, ...this.v, ...this.meta, ...this.arenas.g.tensors]) t.dispose();
    this.params.forEach((p, k) => {
      if (p.grad === this.arenas.g.tensors[k]) p.grad = null;
      if (p.gradSlot === this.arenas.g.tensors[k]) p.gradSlot = null;
    });
    const f = this.flat;
    for (const t of [f.p, f.g, f.m, f.v, f.meta, f.parts]) t.dispose();
    this.partials.dispose();
    this.hyper.dispose();
    this.scalars.dispose();
  }
}

function zeros(shape: readonly number[]): Tensor {
  const t = empty(shape).keep();
  zero(t);
  return t;
}

/** The whole arena as one flat tensor sharing its memory (kept alive by the arena's tensors). */
function arenaView(a: Arena, first: Tensor | null): Tensor {
  if (!first) return empty([1]).keep();
  const r = first.range;
  return new TensorClass([a.floats], "f32", undefined, {
    buffer: r.buffer,
    offset: 0,
    bytes: a.floats * 4,
    release: () => {},
  }).keep();
}
