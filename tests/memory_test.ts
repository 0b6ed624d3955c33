// tapeSavedBytes: the activations the tape keeps for backward, counted on graphs small enough to
// add up by hand.

import {
  attention,
  backward,
  clearTape,
  geluTanh,
  layerNorm,
  linear,
  mean,
  mul,
  noGrad,
  reshape,
  tapeSavedBytes,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import { rand, ready } from "./helpers.ts";

await ready;

function assertEquals(actual: number, want: number, what = "saved bytes"): void {
  if (actual !== want) throw new Error(`${what}: ${actual}, want ${want}`);
}

Deno.test("tapeSavedBytes counts each saved storage once and leaves parameters out", () => {
  const w = tensor(rand(12, 1), [3, 4]).keep();
  const gamma = tensor(rand(3, 2), [3]).keep();
  const beta = tensor(rand(3, 3), [3]).keep();
  for (const p of [w, gamma, beta]) p.requiresGrad = true;
  tidy(() => {
    const x = tensor(rand(8, 4), [2, 4]); // data, no gradient
    const s = tensor(rand(6, 5), [2, 3]); // data, no gradient
    const y = linear(x, w); // saves x (32 B) and w
    const y2 = linear(reshape(x, [1, 2, 4]), w); // saves a view of x: no new storage
    const g = geluTanh(y); // saves y (24 B)
    const m = mul(g, s); // only g needs a gradient, which reads s (24 B)
    const n = layerNorm(m, gamma, beta); // saves m (24 B), gamma and its [2, 2] statistics (16 B)
    const g2 = geluTanh(y2); // saves y2 (24 B)
    // saves views of n (24 B) and of g2 (24 B); the mean saves nothing
    const loss = mean(mul(reshape(n, [6]), reshape(g2, [6])));
    assertEquals(tapeSavedBytes([w, gamma, beta]), 32 + 24 + 24 + 24 + 16 + 24 + 24 + 24);
    // parameters count when not excluded: w 48 B, gamma 12 B
    assertEquals(tapeSavedBytes(), 192 + 48 + 12);
    backward(loss);
    assertEquals(tapeSavedBytes(), 0, "backward clears the tape");
  });
  for (const p of [w, gamma, beta]) {
    p.grad?.dispose();
    p.dispose();
  }
});

Deno.test("tapeSavedBytes: attention saves q, k, v, its output and the log-sum-exp", () => {
  tidy(() => {
    const [q, k, v] = [1, 2, 3].map((seed) => tensor(rand(16, seed), [1, 2, 8]));
    for (const t of [q, k, v]) t.requiresGrad = true;
    attention(q, k, v, { heads: 2 });
    // q, k, v, out: 64 B each; lse [1, 2 heads, 2 queries]: 16 B
    assertEquals(tapeSavedBytes(), 4 * 64 + 16);
    clearTape();
    assertEquals(tapeSavedBytes(), 0);
    noGrad(() => attention(q, k, v, { heads: 2 }));
    assertEquals(tapeSavedBytes(), 0, "nothing is recorded without gradients");
  });
});
