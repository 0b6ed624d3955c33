// gatedResidual: the fused x + keep · gate · branch of a PixArt block, against a plain-TypeScript
// reference and finite differences, and what its backward keeps on the tape.

import { clearTape, gatedResidual, noGrad, tapeSavedBytes, tensor, tidy } from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";
import { check } from "./gradcheck.ts";

await ready;

/** x [B, N, D] + keep[b] · gate[b, d] · branch[b, n, d], keep = 1 when absent. */
function refResidual(
  x: Float64Array,
  gate: Float64Array,
  branch: Float64Array,
  keep: Float64Array | null,
  [B, N, D]: number[],
): Float64Array {
  const out = new Float64Array(B * N * D);
  for (let b = 0; b < B; b++) {
    for (let n = 0; n < N; n++) {
      for (let d = 0; d < D; d++) {
        const i = (b * N + n) * D + d;
        out[i] = x[i] + (keep ? keep[b] : 1) * gate[b * D + d] * branch[i];
      }
    }
  }
  return out;
}

// D = 8 and 64 take the vec4 kernels, D = 5 and 3 the scalar ones
const SHAPES = [[2, 3, 8], [3, 2, 5], [1, 4, 3], [2, 1, 64]];

Deno.test("gatedResidual without drop-path: forward, gradients for x, gate and branch", async () => {
  for (const S of SHAPES) {
    const [B, , D] = S;
    await check({
      name: `gatedResidual [${S}]`,
      inputs: [{ shape: S }, { shape: [B, D] }, { shape: S }],
      gpu: ([x, gate, branch]) => gatedResidual(x, gate, branch),
      ref: ([x, gate, branch]) => refResidual(x, gate, branch, null, S),
    });
  }
});

Deno.test("gatedResidual with drop-path factors (one of them 0): no gradient to keep", async () => {
  for (const S of SHAPES) {
    const [B, , D] = S;
    // 0 drops a sample; 1/(1 − p) for p = 0.2 and 0.5 keep the others
    const keep = Float32Array.from({ length: B }, (_, b) => [0, 1.25, 2][b % 3]);
    await check({
      name: `gatedResidual, keep [${keep}], [${S}]`,
      inputs: [{ shape: S }, { shape: [B, D] }, { shape: S }, {
        shape: [B],
        data: keep,
        noGrad: true,
      }],
      gpu: ([x, gate, branch, k]) => gatedResidual(x, gate, branch, k),
      ref: ([x, gate, branch, k]) => refResidual(x, gate, branch, k, S),
    });
  }
});

Deno.test("gatedResidual: gradients when only some inputs want one", async () => {
  const S = [2, 3, 4];
  const keep = Float32Array.of(2, 0);
  await check({
    name: "gatedResidual, constant gate",
    inputs: [{ shape: S }, { shape: [2, 4], noGrad: true }, { shape: S }, {
      shape: [2],
      data: keep,
      noGrad: true,
    }],
    gpu: ([x, gate, branch, k]) => gatedResidual(x, gate, branch, k),
    ref: ([x, gate, branch, k]) => refResidual(x, gate, branch, k, S),
  });
  await check({
    name: "gatedResidual, gate alone",
    inputs: [{ shape: S, noGrad: true }, { shape: [2, 4] }, { shape: S, noGrad: true }, {
      shape: [2],
      data: keep,
      noGrad: true,
    }],
    gpu: ([x, gate, branch, k]) => gatedResidual(x, gate, branch, k),
    ref: ([x, gate, branch, k]) => refResidual(x, gate, branch, k, S),
  });
});

Deno.test("gatedResidual without gradients, at a size of several workgroups", async () => {
  const S = [2, 70, 12];
  const [B, N, D] = S;
  const xs = rand(B * N * D, 1), gs = rand(B * D, 2), bs = rand(B * N * D, 3);
  const ks = Float32Array.of(0, 1.5);
  const t = tidy(() =>
    noGrad(() => gatedResidual(tensor(xs, S), tensor(gs, [B, D]), tensor(bs, S), tensor(ks, [B])))
  );
  if (t.requiresGrad || t.node) throw new Error("no-grad gatedResidual recorded a graph");
  const got = await t.read();
  t.dispose();
  const f = (a: Float32Array) => Float64Array.from(a);
  assertClose(got, refResidual(f(xs), f(gs), f(bs), f(ks), S), 1e-6, "gatedResidual (noGrad)");
});

Deno.test("gatedResidual saves gate, branch and keep for backward, not x", () => {
  tidy(() => {
    const [B, N, D] = [2, 3, 4];
    const x = tensor(rand(B * N * D, 1), [B, N, D]);
    const gate = tensor(rand(B * D, 2), [B, D]);
    const branch = tensor(rand(B * N * D, 3), [B, N, D]);
    const keep = tensor(Float32Array.of(0, 2), [B]);
    for (const t of [x, gate, branch]) t.requiresGrad = true;
    gatedResidual(x, gate, branch, keep);
    // branch 96 B, gate 32 B, keep 8 B
    let want = 96 + 32 + 8;
    if (tapeSavedBytes() !== want) throw new Error(`saved ${tapeSavedBytes()} B, want ${want}`);
    clearTape();
    // only x wants a gradient: dx = g reads nothing
    gate.requiresGrad = branch.requiresGrad = false;
    gatedResidual(x, gate, branch);
    want = 0;
    if (tapeSavedBytes() !== want) throw new Error(`saved ${tapeSavedBytes()} B, want ${want}`);
    clearTape();
  });
});

Deno.test("gatedResidual rejects mismatched shapes and dtypes in one line", () => {
  tidy(() => {
    const x = tensor(rand(24, 1), [2, 3, 4]);
    const cases: [() => unknown, RegExp][] = [
      [() => gatedResidual(tensor(rand(8, 1), [2, 4]), tensor(rand(8, 2), [2, 4]), x), /x must/],
      [
        () => gatedResidual(x, tensor(rand(8, 2), [2, 4]), tensor(rand(24, 3), [2, 4, 3])),
        /branch/,
      ],
      [() => gatedResidual(x, tensor(rand(8, 2), [2, 1, 4]), x), /gate must be \[B, D\]/],
      [() => gatedResidual(x, tensor(rand(8, 2), [4, 2]), x), /gate must/],
      [() => gatedResidual(x, tensor(rand(8, 2), [2, 4]), x, tensor(rand(3, 4), [3])), /keep/],
    ];
    for (const [f, re] of cases) {
      let msg = "";
      try {
        f();
      } catch (e) {
        msg = (e as Error).message;
      }
      if (!re.test(msg) || msg.includes("\n")) {
        throw new Error(`expected a one-line error matching ${re}, got '${msg}'`);
      }
    }
  });
});
