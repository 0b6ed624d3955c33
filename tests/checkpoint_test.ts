// Activation checkpointing (kernels/autograd.ts `checkpoint`, train.checkpoint_blocks): the
// gradients through a checkpointed function against finite differences, a function that reads a
// tensor it was not given is refused, and a checkpointed model's gradients against the plain ones.

import assert from "node:assert/strict";
import {
  add,
  backward,
  checkpoint,
  Generator,
  matmul,
  mul,
  silu,
  sum,
  tapeSavedBytes,
  type Tensor,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import { PixArt } from "../model/pixart.ts";
import { epsLoss } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { check } from "./gradcheck.ts";
import { rand, ready, relErr, textCond, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const silu64 = (v: number) => v / (1 + Math.exp(-v));

Deno.test("checkpoint: gradients of its inputs and of the weights it reads, by finite differences", async () => {
  // y = silu(a·W) ⊙ b, W a weight read inside, a and b activations passed in
  const [M, K, N] = [3, 4, 5];
  await check({
    name: "checkpoint(silu(a·W) ⊙ b)",
    inputs: [{ shape: [M, K] }, { shape: [M, N] }, { shape: [K, N] }],
    gpu: ([a, b, w]) => checkpoint((x, y) => mul(silu(matmul(x, w)), y), [a, b], [w]),
    ref: ([a, b, w]) => {
      const out = new Float64Array(M * N);
      for (let i = 0; i < M; i++) {
        for (let j = 0; j < N; j++) {
          let s = 0;
          for (let k = 0; k < K; k++) s += a[i * K + k] * w[k * N + j];
          out[i * N + j] = silu64(s) * b[i * N + j];
        }
      }
      return out;
    },
    gradTol: 2e-4,
  });
});

Deno.test("checkpoint: only the inputs stay for backward, and the function runs again there", async () => {
  const w = tensor(rand(16, 3), [4, 4]).keep();
  w.requiresGrad = true;
  let calls = 0;
  const f = (x: Tensor) => {
    calls++;
    return silu(matmul(silu(matmul(x, w)), w));
  };
  try {
    const saved: number[] = [];
    const grads: Float32Array[] = [];
    for (const ck of [false, true]) {
      tidy(() => {
        const x = tensor(rand(8, 5), [2, 4]);
        const y = ck ? checkpoint(f, [x], [w]) : f(x);
        saved.push(tapeSavedBytes([w]));
        backward(sum(y));
      });
      grads.push(await w.grad!.read());
      w.grad!.dispose();
      w.grad = null;
    }
    assert.equal(calls, 3, "once plain, twice checkpointed");
    // plain: x, the first product and silu's input and output; checkpointed: x alone
    assert.equal(saved[1], 4 * 8);
    assert.ok(saved[0] > saved[1], `saved ${saved}`);
    assert.deepEqual(grads[1], grads[0]);
  } finally {
    w.dispose();
  }
});

Deno.test("checkpoint: a function that reads an activation it was not given is refused", () => {
  const w = tensor(rand(16, 3), [4, 4]).keep();
  w.requiresGrad = true;
  try {
    assert.throws(
      () =>
        tidy(() => {
          const hidden = silu(matmul(tensor(rand(8, 5), [2, 4]), w));
          const y = checkpoint((x) => add(matmul(x, w), hidden), [tensor(rand(8, 6), [2, 4])], [
            w,
          ]);
          backward(sum(y));
        }),
      /read a tensor \[2,4\] that requires .*made by 'silu' outside it/,
    );
    // a weight it was not told of is named as a leaf
    assert.throws(
      () =>
        tidy(() => {
          const x = tensor(rand(8, 6), [2, 4]);
          x.requiresGrad = true;
          backward(sum(checkpoint((v) => matmul(v, w), [x])));
        }),
      /a leaf/,
    );
  } finally {
    w.grad?.dispose();
    w.dispose();
  }
});

for (const caption_pooling of [false, true]) {
  Deno.test(`checkpoint_blocks: the model's gradients are the plain model's (caption_pooling ${caption_pooling})`, async () => {
    const c = { ...TINY_TEXT_MODEL, drop_path: 0.1, caption_pooling };
    const model = PixArt.init(c, 5);
    // the zero-initialised layers get values, so that every parameter has a gradient
    const zeroed = model.params.names().filter((n) =>
      /(cross_attn\.proj|final_layer\.linear)\.weight$/.test(n)
    );
    for (const [k, name] of zeroed.entries()) {
      const p = model.params.get(name);
      model.params.set(name, tensor(rand(p.size, 9 + k, 0.3), p.shape));
    }
    const B = 3, S = c.image_size;
    const cond = textCond(model, ["seven", "3", "two"], Uint8Array.of(0, 1, 0));
    const keep = [Float32Array.of(1, 0, 1 / 0.9), Float32Array.of(1 / 0.9, 1 / 0.9, 0)];
    const schedule = linearSchedule(1000);
    const grads: Map<string, Float32Array>[] = [];
    const saved: number[] = [];
    try {
      for (const checkpointBlocks of [false, true]) {
        tidy(() => {
          const loss = epsLoss(
            schedule,
            (xt, tt) =>
              model.forward(xt, tt, cond, {
                checkpointBlocks,
                dropPathKeep: (i, br) => tensor(keep[(i + br) % 2], [B]),
              }),
            tensor(rand(B * S * S, 4), [B, 1, S, S]),
            Int32Array.of(10, 500, 990),
            new Generator(7).normal([B, 1, S, S]),
            0,
          );
          saved.push(tapeSavedBytes(model.params.tensors()));
          backward(loss);
        });
        const g = new Map<string, Float32Array>();
        for (const [name, p] of model.params.map) {
          assert.ok(p.grad, `${name} got no gradient (checkpointBlocks ${checkpointBlocks})`);
          g.set(name, await p.grad.read());
          p.grad.dispose();
          p.grad = null;
        }
        grads.push(g);
      }
      assert.ok(saved[1] < saved[0], `saved activations ${saved[1]} vs plain ${saved[0]}`);
      // Inside a block backward runs the same ops in the same order, so the blocks' weights (and
      // whatever reads their input gradient in the same order: t0's path, the patch embedding) get
      // the same bits. The caption y feeds two products in every block (K and V; with caption_pooling
      // also its mean), whose gradients a
      // checkpointed block adds up before handing them on: (k₁ + v₁) + (k₀ + v₀) instead of
      // ((k₁ + v₁) + k₀) + v₀, so the caption path differs by f32 rounding.
      const captionPath = /^(text_encoder|y_embedder|pooled_y_embedder)\./;
      for (const [name, plain] of grads[0]) {
        assert.ok(plain.some((v) => v !== 0), `${name}: a zero gradient tests nothing`);
        const got = grads[1].get(name)!;
        if (captionPath.test(name)) {
          assert.ok(relErr(got, plain) < 1e-5, `${name}: ${relErr(got, plain)}`);
        } else assert.deepEqual(got, plain, name);
      }
    } finally {
      model.dispose();
    }
  });
}
