// Layers declared once, as torch.nn modules are. A model is a tree of declarations (plain objects
// and arrays of them) whose paths are its state-dict names: `specsOf` reads every parameter's
// name, shape and initialisation off the tree, and `bind` turns the same tree into layers that
// compute with a model's tensors. A name is written once, where its layer is declared, and a
// layer's math reads its parameters as fields (`l.weight`), never by a name string. Low-rank
// adapters (model/lora.ts) are bound beside the parameters, to the Linear layers they adapt.

import {
  add,
  attention,
  embedding,
  geluTanh,
  layerNorm,
  layerNormModulate,
  linear,
  linearHalfRows,
  scale,
  split,
  type Tensor,
} from "../kernels/mod.ts";
import type { Init, Params, ParamSpec } from "./params.ts";

/** A parameter: its shape and initialisation; its name is its path in the tree. */
export class Param {
  constructor(readonly shape: number[], readonly init: Init) {}
}

/**
 * A low-rank adapter on a Linear layer (LoRA, Hu et al. 2021, eq. 3): the layer adds
 * scale·B(A x), A [r, in] and B [out, r]; `scale` is PEFT's alpha / r times the user's multiplier.
 */
export interface LowRank {
  A: Tensor;
  B: Tensor;
  scale: number;
}

/** What a layer is bound with besides its children: its path and the adapters on it. */
export interface BoundAt {
  path: string;
  /** the adapters on this layer (only an adaptable layer, a Linear, is given any) */
  lora: readonly LowRank[];
}

/** A layer: its children (parameters and sublayers) and what it computes with them once bound. */
export class Module<C, B> {
  constructor(
    readonly children: C,
    readonly build: (l: Bound<C>, at: BoundAt) => B,
    /** whether low-rank adapters may be bound to it (a Linear layer) */
    readonly adaptable = false,
  ) {}
}

/** A tree of declarations; `undefined` marks a part this configuration does not have. */
export type Tree =
  | Param
  | Module<any, any>
  | undefined
  | readonly Tree[]
  | { readonly [name: string]: Tree };

/**
 * A declaration tree bound to tensors: a parameter becomes its tensor, a layer what it computes
 * (with its children as fields, as a torch module's attributes), arrays and objects stay.
 */
export type Bound<T> = T extends Param ? Tensor
  : T extends Module<infer C, infer B> ? B & Bound<C>
  : T extends undefined ? undefined
  : T extends readonly (infer U)[] ? Bound<U>[]
  : { readonly [K in keyof T]: Bound<T[K]> };

/** Called after every layer call of a bound tree with the layer's path, its arguments and result. */
export type LayerHook = (path: string, args: readonly unknown[], out: unknown) => void;

export function param(shape: number[], init: Init): Param {
  return new Param(shape, init);
}

export function module<C extends Tree, B>(
  children: C,
  build: (l: Bound<C>, at: BoundAt) => B,
): Module<C, B> {
  return new Module<C, B>(children, build);
}

const join = (prefix: string, name: string | number) => (prefix ? `${prefix}.${name}` : `${name}`);

/** Every parameter of a tree in declaration order (the order `initParams` draws them in). */
export function specsOf(tree: Tree, prefix = ""): ParamSpec[] {
  if (tree === undefined) return [];
  if (tree instanceof Param) return [{ name: prefix, shape: tree.shape, init: tree.init }];
  if (tree instanceof Module) return specsOf(tree.children, prefix);
  const entries: [string | number, Tree][] = Array.isArray(tree)
    ? tree.map((t, i) => [i, t])
    : Object.entries(tree);
  return entries.flatMap(([name, t]) => specsOf(t, join(prefix, name)));
}

/** The adaptable layers of a tree (its Linear layers): path, input and output features. */
export function adaptableLayers(
  tree: Tree,
  prefix = "",
): { path: string; inp: number; out: number }[] {
  if (tree === undefined || tree instanceof Param) return [];
  if (tree instanceof Module) {
    if (!tree.adaptable) return adaptableLayers(tree.children, prefix);
    const [out, inp] = (tree.children as { weight: Param }).weight.shape;
    return [{ path: prefix, inp, out }];
  }
  const entries: [string | number, Tree][] = Array.isArray(tree)
    ? tree.map((t, i) => [i, t])
    : Object.entries(tree);
  return entries.flatMap(([name, t]) => adaptableLayers(t, join(prefix, name)));
}

export interface BindOptions {
  /** every layer call is reported to it (taps for debugging and tests) */
  hook?: LayerHook;
  /** the low-rank adapters of each adaptable layer, by its path (model/lora.ts loraTerms) */
  lora?: ReadonlyMap<string, readonly LowRank[]>;
}

/**
 * The tree over the tensors of `P` (names under `prefix`), read now: bind again after replacing a
 * parameter. Adapters in `o.lora` whose path is no adaptable layer of the tree are an error.
 */
export function bind<T extends Tree>(
  tree: T,
  P: Params,
  prefix = "",
  o: BindOptions = {},
): Bound<T> {
  const used = new Set<string>();
  const bound = bindAt(tree, P, prefix, o, used) as Bound<T>;
  for (const path of o.lora?.keys() ?? []) {
    if (!used.has(path) && path.startsWith(prefix)) {
      throw new Error(`an adapter names '${path}', which is no Linear layer of this model`);
    }
  }
  return bound;
}

const NO_LORA: readonly LowRank[] = [];

function bindAt(tree: Tree, P: Params, path: string, o: BindOptions, used: Set<string>): unknown {
  if (tree === undefined) return undefined;
  if (tree instanceof Param) return P.get(path);
  if (Array.isArray(tree)) return tree.map((t, i) => bindAt(t, P, join(path, i), o, used));
  const hook = o.hook;
  if (tree instanceof Module) {
    const children = bindAt(tree.children, P, path, o, used) as Record<string, unknown>;
    const lora = tree.adaptable ? o.lora?.get(path) ?? NO_LORA : NO_LORA;
    if (lora.length) used.add(path);
    let layer = tree.build(children as never, { path, lora }) as any;
    if (typeof layer === "function" && hook) {
      const f = layer;
      layer = Object.assign((...args: unknown[]) => {
        const out = f(...args);
        hook(path, args, out);
        return out;
      }, f);
    }
    // the children as fields (defined, not assigned: a function's `name` and `length` are
    // read-only)
    for (const [k, v] of Object.entries(children)) {
      Object.defineProperty(layer, k, { value: v, enumerable: true });
    }
    return layer;
  }
  return Object.fromEntries(
    Object.entries(tree).map(([k, t]) => [k, bindAt(t, P, join(path, k), o, used)]),
  );
}

// ---- the layers PixArt-α and its text encoder are made of (torch.nn and timm's names) ----

/** A fused activation's name, or an activation applied after the product. */
export type Activation = "gelu_tanh" | ((x: Tensor) => Tensor);

/**
 * torch.nn.Linear: x [..., inp] → [..., out]. `split(x, n)` is the output cut into n equal
 * pieces along its features, computed as n products with row blocks of the weight: cutting the
 * packed output instead would copy it and keep it alive until the step ends although no backward
 * reads it (at the seed shape, 455 MB of a training step's peak). The weight blocks are small
 * copies; an f16 weight (sampling, model/half_weights.ts) is read in place.
 *
 * With low-rank adapters bound to it (LoRA, eq. 3 of Hu et al. 2021) it computes
 * W x + b + Σ scale·B(A x), as PEFT's `lora.Linear`: the weight is read as it is (frozen, packed
 * or not), each adapter's A x [..., r] is scaled (the narrow side), and a split cuts each B into
 * the same row blocks. A fused activation then runs after the sum. An adapter at scale 0 adds
 * nothing and is left out, so the layer is the plain layer, bit for bit.
 */
export function Linear(inp: number, out: number, init: Init = "xavier") {
  return new Module(
    { weight: param([out, inp], init), bias: param([out], "zeros") },
    ({ weight, bias }, { lora }) => {
      const on = lora.filter((a) => a.scale !== 0);
      const down = (x: Tensor) => on.map((a) => scale(linear(x, a.A), a.scale));
      const plusLowRank = (y: Tensor, hs: Tensor[], Bs: Tensor[]) =>
        hs.reduce((sum, h, j) => add(sum, linear(h, Bs[j])), y);
      return Object.assign(
        (x: Tensor, act?: "gelu_tanh"): Tensor => {
          if (!on.length) return linear(x, weight, bias, act);
          const y = plusLowRank(linear(x, weight, bias), down(x), on.map((a) => a.B));
          return act ? geluTanh(y) : y;
        },
        {
          split(x: Tensor, n: number): Tensor[] {
            const size = out / n;
            const sizes = Array(n).fill(size);
            const bs = split(bias, sizes, 0);
            const half = bs.map((b, k) => linearHalfRows(x, weight, k * size, size, b));
            const base = half.every((t) => t !== null)
              ? half as Tensor[]
              : split(weight, sizes, 0).map((wk, k) => linear(x, wk, bs[k]));
            if (!on.length) return base;
            const hs = down(x);
            const Bs = on.map((a) => split(a.B, sizes, 0));
            return base.map((y, k) => plusLowRank(y, hs, Bs.map((b) => b[k])));
          },
        },
      );
    },
    true,
  );
}

/** timm's Mlp: fc2(act(fc1(x))); a named activation is fused into fc1's kernel. */
export function Mlp(inp: number, hidden: number, out: number, act: Activation) {
  return module(
    { fc1: Linear(inp, hidden), fc2: Linear(hidden, out) },
    ({ fc1, fc2 }) => (x: Tensor): Tensor =>
      typeof act === "string" ? fc2(fc1(x, act)) : fc2(act(fc1(x))),
  );
}

/** torch.nn.Embedding: rows of `weight` [n, dim] for i32 ids. */
export function Embedding(n: number, dim: number, init: Init) {
  return module(
    { weight: param([n, dim], init) },
    ({ weight }) => (ids: Tensor): Tensor => embedding(weight, ids),
  );
}

/** torch.nn.LayerNorm over the last axis of size `dim`, with a learned weight and bias. */
export function LayerNorm(dim: number, eps: number) {
  return module(
    { weight: param([dim], "ones"), bias: param([dim], "zeros") },
    ({ weight, bias }) => (x: Tensor): Tensor => layerNorm(x, weight, bias, eps),
  );
}

/**
 * PixArt-α's `t2i_modulate(norm(x), shift, scale)` with a LayerNorm without parameters
 * (elementwise_affine=False): LN(x)·(1 + scale) + shift, one kernel. x [B, N, D], shift and
 * scale [B, D].
 */
export function ModulatedLayerNorm(eps: number) {
  return module(
    {},
    () => (x: Tensor, shift: Tensor, scale: Tensor): Tensor =>
      layerNormModulate(x, shift, scale, eps),
  );
}

/**
 * timm's Attention (self-attention): proj(attention(q, k, v)) with q, k, v = qkv(x), x [B, N, D];
 * `mask` [B, N] (1 = attend) hides keys.
 */
export function Attention(dim: number, heads: number) {
  return module(
    { qkv: Linear(dim, 3 * dim), proj: Linear(dim, dim) },
    ({ qkv, proj }) => (x: Tensor, mask?: Tensor): Tensor => {
      const [q, k, v] = qkv.split(x, 3);
      return proj(attention(q, k, v, { heads, mask }));
    },
  );
}
