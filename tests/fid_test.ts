import assert from "node:assert";

function assertAlmostEquals(actual: number, expected: number, tol: number) {
  assert(Math.abs(actual - expected) <= tol, `${actual} is not within ${tol} of ${expected}`);
}
import { fid, frechetDistance, gaussianOf, sqrtPsd, symmetricEigen } from "../eval/fid.ts";
import { mulberry32 } from "../kernels/host_random.ts";

function gaussRows(n: number, dim: number, std: number[], mean: number[], seed: number) {
  const rng = mulberry32(seed);
  const out = new Float64Array(n * dim);
  for (let i = 0; i < n * dim; i += 2) {
    const u = Math.max(rng(), 1e-12), v = rng();
    const r = Math.sqrt(-2 * Math.log(u));
    out[i] = r * Math.cos(2 * Math.PI * v);
    if (i + 1 < n * dim) out[i + 1] = r * Math.sin(2 * Math.PI * v);
  }
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) out[i * dim + j] = out[i * dim + j] * std[j] + mean[j];
  }
  return out;
}

Deno.test("symmetricEigen reconstructs a random symmetric matrix", () => {
  const n = 7, rng = mulberry32(3);
  const m = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = i; j < n; j++) m[i * n + j] = m[j * n + i] = rng() - 0.5;
  }
  const { values, vectors } = symmetricEigen(m, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let s = 0;
      for (let k = 0; k < n; k++) s += vectors[i * n + k] * values[k] * vectors[j * n + k];
      assertAlmostEquals(s, m[i * n + j], 1e-12);
    }
  }
});

Deno.test("sqrtPsd squares back to the matrix", () => {
  const n = 5, rng = mulberry32(9);
  const x = new Float64Array(n * n).map(() => rng() - 0.5);
  const m = new Float64Array(n * n); // xᵀx is PSD
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      for (let k = 0; k < n; k++) m[i * n + j] += x[k * n + i] * x[k * n + j];
    }
  }
  const s = sqrtPsd(m, n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let v = 0;
      for (let k = 0; k < n; k++) v += s[i * n + k] * s[k * n + j];
      assertAlmostEquals(v, m[i * n + j], 1e-10);
    }
  }
});

Deno.test("FID: zero for one set against itself, closed form for diagonal Gaussians", () => {
  const dim = 4, n = 4000;
  const a = gaussRows(n, dim, [1, 2, 0.5, 1], [0, 0, 0, 0], 1);
  assertAlmostEquals(fid(a, n, a, n, dim), 0, 1e-8);
  // diagonal: FID = Σ (μ1−μ2)² + Σ (σ1 − σ2)²; compare with the sample moments' closed form
  const b = gaussRows(n, dim, [2, 1, 0.5, 3], [1, 0, -1, 0], 2);
  const ga = gaussianOf(a, n, dim), gb = gaussianOf(b, n, dim);
  // zero the sample off-diagonals so the closed form is exact
  for (const g of [ga, gb]) {
    for (let i = 0; i < dim; i++) for (let j = 0; j < dim; j++) if (i !== j) g.cov[i * dim + j] = 0;
  }
  let expected = 0;
  for (let i = 0; i < dim; i++) {
    expected += (ga.mean[i] - gb.mean[i]) ** 2 +
      (Math.sqrt(ga.cov[i * dim + i]) - Math.sqrt(gb.cov[i * dim + i])) ** 2;
  }
  assertAlmostEquals(frechetDistance(ga, gb), expected, 1e-9);
  assert(expected > 5, "the two sets differ");
  // symmetric in its arguments
  assertAlmostEquals(fid(a, n, b, n, dim), fid(b, n, a, n, dim), 1e-8);
});

Deno.test("FID: the cross term of two covariances that do not commute, and the n − 1 covariance", () => {
  // Σ₁Σ₂ = [[2, 3], [1, 6]]: tr (Σ₁^½Σ₂Σ₁^½)^½ = Σ √λ(Σ₁Σ₂) = √(tr + 2√det) = √(8 + 2·3) = √14,
  // where the commuting shortcut tr(Σ₁^½Σ₂^½) would give 2 + √3
  const g1 = { dim: 2, mean: Float64Array.of(0, 0), cov: Float64Array.of(2, 1, 1, 2) };
  const g2 = { dim: 2, mean: Float64Array.of(1, 2), cov: Float64Array.of(1, 0, 0, 3) };
  assertAlmostEquals(frechetDistance(g1, g2), 5 + 4 + 4 - 2 * Math.sqrt(14), 1e-12);
  // three rows (0, 0), (1, 2), (2, 1): deviations (−1, −1), (0, 1), (1, 0), summed and over n − 1
  const g = gaussianOf([0, 0, 1, 2, 2, 1], 3, 2);
  assert.deepEqual([...g.mean], [1, 1]);
  assert.deepEqual([...g.cov], [1, 0.5, 0.5, 1]);
});
