// Reverse-mode autograd on a tape. Ops call `record()` after computing their output; while
// gradients are enabled and an input requires one, the op and its backward closure go on the tape.
// `backward(loss)` walks the tape in reverse and accumulates gradients into the leaves' `.grad`.

import { copyTensor } from "./runtime.ts";
import { type GradNode, Tensor, tidy } from "./tensor.ts";
import { accumulate, copy, full, plus } from "./vector.ts";

let gradEnabled = true;
let tape: Tensor[] = [];

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/**
 * Runs fn with gradient recording off: no tape, and ops save no intermediates. fn must be
 * synchronous: the flag is restored when fn returns, which for an async function is its first
 * `await`, so everything after it would record again. Wrap the synchronous part of each step.
 */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  let out: T;
  try {
    out = fn();
  } finally {
    gradEnabled = prev;
  }
  if (typeof (out as { then?: unknown } | null)?.then === "function") {
    throw new Error(
      "noGrad(fn): fn returned a promise; gradients would be recorded again after its first " +
        "await. Wrap only the synchronous work (e.g. each batch, before awaiting its read)",
    );
  }
  return out;
}

/** Number of ops recorded on the tape and not yet consumed by backward() or clearTape(). */
export function tapeLength(): number {
  return tape.length;
}

/** True when an op with these inputs must record itself. */
export function needsGrad(...inputs: (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t?.requiresGrad) return true;
  return false;
}

/**
 * Attaches a backward node to `output` if any input requires a gradient. `saved` lists the
 * tensors the backward closure reads (default: the inputs); it only feeds the memory accounting
 * of `tapeSavedBytes`, so an op that reads none of its inputs passes [].
 */
export function record(
  output: Tensor,
  name: string,
  inputs: Tensor[],
  backward: GradNode["backward"],
  saved?: (Tensor | null | undefined)[],
): Tensor {
  if (!needsGrad(...inputs)) return output;
  output.requiresGrad = true;
  output.node = { name, inputs, backward, saved: saved && compact(saved) };
  tape.push(output);
  return output;
}

/**
 * Records an op with several outputs: `backward` receives one gradient per output (null where
 * an output got none) and returns one per input.
 */
export function recordMulti(
  outputs: Tensor[],
  name: string,
  inputs: Tensor[],
  backward: (grads: (Tensor | null)[]) => (Tensor | null)[],
  saved?: (Tensor | null | undefined)[],
): Tensor[] {
  if (!needsGrad(...inputs)) return outputs;
  const node: GradNode = {
    name,
    inputs,
    saved: saved && compact(saved),
    backward: () => {
      throw new Error(`autograd: '${name}' has several outputs`);
    },
    outputs,
    backwardMulti: backward,
  };
  for (const o of outputs) {
    o.requiresGrad = true;
    o.node = node;
  }
  tape.push(outputs[0]);
  return outputs;
}

function compact(ts: (Tensor | null | undefined)[]): Tensor[] {
  return ts.filter((t): t is Tensor => !!t);
}

/**
 * Bytes of the distinct storages that the recorded graph keeps for its backward pass: what each
 * node saves (views of one buffer count once), leaving out the tensors in `exclude` (parameters,
 * which are not activations) and anything already disposed. Call it between a forward pass and
 * `backward()`: it is the "saved activations" term of a training step's memory budget.
 */
export function tapeSavedBytes(exclude: Iterable<Tensor> = []): number {
  const skip = new Set<object>();
  for (const t of exclude) if (!t.disposed) skip.add(t.storageKey);
  const seen = new Set<object>();
  let bytes = 0;
  for (const out of tape) {
    const node = out.node;
    if (!node) continue;
    for (const t of node.saved ?? node.inputs) {
      if (t.disposed) continue;
      const buf = t.storageKey;
      if (skip.has(buf) || seen.has(buf)) continue;
      seen.add(buf);
      // the logical size, not the pool's size class: rounding is overhead, not a requirement
      bytes += 4 * t.size;
    }
  }
  return bytes;
}

/** Forgets the recorded graph (its tensors are owned by the enclosing scope). */
export function clearTape(): void {
  for (const t of tape) for (const o of t.node?.outputs ?? [t]) o.node = null;
  tape = [];
}

/**
 * Backpropagates from `loss` (a scalar unless `grad` is given). Leaf tensors with requiresGrad
 * get `.grad` allocated on first use (kept across scopes) and accumulated into afterwards.
 * The tape is cleared.
 */
export function backward(loss: Tensor, grad?: Tensor): void {
  if (!loss.requiresGrad) throw new Error("backward(): the loss does not depend on any parameter");
  if (!grad && loss.size !== 1) {
    throw new Error(`backward(): loss must be a scalar, got shape [${loss.shape.join(", ")}]`);
  }
  const grads = new Map<Tensor, Tensor>();
  grads.set(loss, grad ?? full(loss.shape, 1));
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    for (let i = tape.length - 1; i >= 0; i--) {
      const out = tape[i];
      const node = out.node;
      if (!node) continue;
      // the gradients of the entry's outputs (one op may have several, e.g. split)
      const outs = node.outputs ?? [out];
      const gs = outs.map((o) => grads.get(o) ?? null);
      if (gs.every((x) => !x)) continue;
      for (const o of outs) grads.delete(o);
      // the closure's temporaries are freed here; only the gradients it returns survive
      const gin = tidy(() => (node.outputs ? node.backwardMulti!(gs) : node.backward(gs[0]!)));
      // A backward may return `g` itself or one tensor for several inputs; give each input its
      // own tensor before any is consumed.
      const owned = new Set<object>();
      const pairs: [Tensor, Tensor][] = [];
      for (let j = 0; j < node.inputs.length; j++) {
        const x = node.inputs[j];
        let gx = gin[j];
        if (!gx || !x.requiresGrad) continue;
        if (gx.size !== x.size) {
          throw new Error(
            `autograd: '${node.name}' returned a gradient of [${gx.shape}] for input [${x.shape}]`,
          );
        }
        // compare storage, not identity: a view of g (or of the caller's grad) shares its buffer
        if (owned.has(gx.storageKey) || (grad && gx.storageKey === grad.storageKey)) {
          gx = copy(gx);
        }
        owned.add(gx.storageKey);
        pairs.push([x, gx]);
      }
      const kept = new Set(pairs.map(([, gx]) => gx));
      for (const t of [...gs, ...gin]) if (t && t !== grad && !kept.has(t)) t.dispose();
      for (const [x, gx] of pairs) {
        if (!x.node) {
          // a leaf; its first gradient goes to its slot in an optimiser's arena if it has one
          const slot = x.gradSlot;
          if (!x.grad && slot && !slot.disposed && slot.size === gx.size) {
            copyTensor(gx, slot);
            gx.dispose();
            x.grad = slot;
          } else if (!x.grad) x.grad = gx.keep();
          else {
            accumulate(x.grad, gx);
            gx.dispose();
          }
        } else {
          const prevG = grads.get(x);
          if (prevG) {
            grads.set(x, plus(prevG, gx));
            prevG.dispose();
            gx.dispose();
          } else grads.set(x, gx);
        }
      }
    }
  } finally {
    gradEnabled = prev;
    for (const g of grads.values()) if (g !== grad) g.dispose();
    clearTape();
  }
}

/**
 * Activation checkpointing (Chen et al. 2016, "Training deep nets with sublinear memory cost";
 * torch.utils.checkpoint): `fn(...inputs)` runs without recording, so that only its inputs and
 * output stay for backward, and backward runs it again with recording to push the output's
 * gradient through it: one more forward of `fn` for the memory of everything it would have saved.
 * The gradients are those of `fn` recorded directly, each summed in the same order.
 *
 * `inputs` are every tensor fn reads that an op outside it made (activations); `params` every
 * trainable leaf it reads (its weights), which decide whether it records at all. fn must be a
 * pure function of them (randomness drawn outside): it runs twice. Reading a tensor it was not
 * given is caught when backward recomputes it.
 */
export function checkpoint(
  fn: (...inputs: Tensor[]) => Tensor,
  inputs: Tensor[],
  params: readonly Tensor[] = [],
): Tensor {
  if (!needsGrad(...inputs, ...params)) return fn(...inputs);
  const out = tidy(() => noGrad(() => fn(...inputs)));
  const declared = new Set<Tensor>(params);
  // recorded even when only the params need gradients (record() looks at the inputs alone)
  const backwardFn = (g: Tensor): (Tensor | null)[] => {
    // the same function again, on views of the inputs that start a graph of their own, recorded
    // on a tape of its own (the outer one is being walked) and walked back at once
    const views = inputs.map((x) => {
      const v = new Tensor(x.shape, x.dtype, x);
      v.requiresGrad = x.requiresGrad;
      return v;
    });
    const outer = tape;
    tape = [];
    gradEnabled = true;
    try {
      const again = fn(...views);
      checkReads(views, declared);
      if (again.requiresGrad) backward(again, g);
    } finally {
      clearTape();
      tape = outer;
      gradEnabled = false;
    }
    return views.map((v) => {
      const gv = v.grad;
      v.grad = null;
      return gv;
    });
  };
  out.requiresGrad = true;
  out.node = { name: "checkpoint", inputs, backward: backwardFn, saved: [...inputs] };
  tape.push(out);
  return out;
}

/** Every tensor a checkpointed function's recomputed graph reads was given to it (see checkpoint). */
function checkReads(views: readonly Tensor[], params: ReadonlySet<Tensor>): void {
  const made = new Set<Tensor>(views);
  for (const out of tape) for (const o of out.node?.outputs ?? [out]) made.add(o);
  for (const out of tape) {
    for (const x of out.node!.inputs) {
      if (!x.requiresGrad || made.has(x) || params.has(x)) continue;
      throw new Error(
        `checkpoint: the function read a tensor [${x.shape}] that requires a gradient but was ` +
          `not passed to it (${x.node ? `made by '${x.node.name}' outside it` : "a leaf"}): ` +
          `pass it among the inputs or the params`,
      );
    }
  }
}
