// Fréchet distance between two sets of feature vectors (Heusel et al. 2017, eq. 6):
//   FID = ‖μ₁ − μ₂‖² + tr(Σ₁ + Σ₂ − 2 (Σ₁^½ Σ₂ Σ₁^½)^½)
// The cross term is written with the symmetric product Σ₁^½ Σ₂ Σ₁^½ so that both square roots are
// of symmetric positive semi-definite matrices, which a Jacobi eigensolver handles exactly in f64
// (the features here are ~100-dimensional, so O(d³) sweeps on the host take milliseconds).

export interface Gaussian {
  dim: number;
  mean: Float64Array;
  /** dim × dim, row-major, unbiased (n − 1) */
  cov: Float64Array;
}

/** Mean and covariance of n feature rows of length dim. */
export function gaussianOf(features: ArrayLike<number>, n: number, dim: number): Gaussian {
  if (n < 2) throw new Error(`FID needs at least 2 feature vectors, got ${n}`);
  if (features.length < n * dim) {
    throw new Error(`FID: ${features.length} values cannot hold ${n} vectors of ${dim}`);
  }
  const mean = new Float64Array(dim);
  for (let i = 0; i < n; i++) for (let j = 0; j < dim; j++) mean[j] += features[i * dim + j];
  for (let j = 0; j < dim; j++) mean[j] /= n;
  const cov = new Float64Array(dim * dim);
  const d = new Float64Array(dim);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < dim; j++) d[j] = features[i * dim + j] - mean[j];
    for (let a = 0; a < dim; a++) {
      const da = d[a];
      if (da === 0) continue;
      const row = a * dim;
      for (let b = a; b < dim; b++) cov[row + b] += da * d[b];
    }
  }
  for (let a = 0; a < dim; a++) {
    for (let b = a; b < dim; b++) {
      const v = cov[a * dim + b] / (n - 1);
      cov[a * dim + b] = v;
      cov[b * dim + a] = v;
    }
  }
  return { dim, mean, cov };
}

/**
 * Eigen-decomposition of a symmetric matrix by cyclic Jacobi rotations: returns the eigenvalues
 * and the eigenvectors as the columns of a row-major matrix. The input is not modified.
 */
export function symmetricEigen(
  m: Float64Array,
  n: number,
): { values: Float64Array; vectors: Float64Array } {
  const a = Float64Array.from(m);
  const v = new Float64Array(n * n);
  for (let i = 0; i < n; i++) v[i * n + i] = 1;
  let scale = 0;
  for (let i = 0; i < n * n; i++) scale = Math.max(scale, Math.abs(a[i]));
  const tol = 1e-15 * Math.max(scale, 1e-300);
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) off = Math.max(off, Math.abs(a[p * n + q]));
    }
    if (off <= tol) break;
    for (let p = 0; p < n; p++) {
      for (let q = p + 1; q < n; q++) {
        const apq = a[p * n + q];
        if (Math.abs(apq) <= tol) continue;
        const app = a[p * n + p], aqq = a[q * n + q];
        // rotation angle that zeroes a[p][q] (Golub & Van Loan, Alg. 8.5.1)
        const theta = (aqq - app) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < n; k++) {
          const akp = a[k * n + p], akq = a[k * n + q];
          a[k * n + p] = c * akp - s * akq;
          a[k * n + q] = s * akp + c * akq;
        }
        for (let k = 0; k < n; k++) {
          const apk = a[p * n + k], aqk = a[q * n + k];
          a[p * n + k] = c * apk - s * aqk;
          a[q * n + k] = s * apk + c * aqk;
        }
        for (let k = 0; k < n; k++) {
          const vkp = v[k * n + p], vkq = v[k * n + q];
          v[k * n + p] = c * vkp - s * vkq;
          v[k * n + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  const values = new Float64Array(n);
  for (let i = 0; i < n; i++) values[i] = a[i * n + i];
  return { values, vectors: v };
}

/** Square root of a symmetric PSD matrix (negative eigenvalues from round-off clamp to 0). */
export function sqrtPsd(m: Float64Array, n: number): Float64Array {
  const { values, vectors } = symmetricEigen(m, n);
  const out = new Float64Array(n * n);
  for (let k = 0; k < n; k++) {
    const s = Math.sqrt(Math.max(values[k], 0));
    if (s === 0) continue;
    for (let i = 0; i < n; i++) {
      const vik = vectors[i * n + k] * s;
      if (vik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += vik * vectors[j * n + k];
    }
  }
  return out;
}

function matmulSq(x: Float64Array, y: Float64Array, n: number): Float64Array {
  const out = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < n; k++) {
      const xik = x[i * n + k];
      if (xik === 0) continue;
      for (let j = 0; j < n; j++) out[i * n + j] += xik * y[k * n + j];
    }
  }
  return out;
}

/** Fréchet distance between two Gaussians of the same dimension. */
export function frechetDistance(g1: Gaussian, g2: Gaussian): number {
  if (g1.dim !== g2.dim) throw new Error(`FID: feature sizes differ (${g1.dim} vs ${g2.dim})`);
  const n = g1.dim;
  let meanTerm = 0;
  for (let i = 0; i < n; i++) meanTerm += (g1.mean[i] - g2.mean[i]) ** 2;
  const s1 = sqrtPsd(g1.cov, n);
  const inner = matmulSq(matmulSq(s1, g2.cov, n), s1, n);
  // symmetrise away round-off before the eigensolver
  for (let i = 0; i < n; i++) {
    for (let j = i + 1; j < n; j++) {
      const v = (inner[i * n + j] + inner[j * n + i]) / 2;
      inner[i * n + j] = v;
      inner[j * n + i] = v;
    }
  }
  const { values } = symmetricEigen(inner, n);
  let trCross = 0;
  for (const l of values) trCross += Math.sqrt(Math.max(l, 0));
  let tr = 0;
  for (let i = 0; i < n; i++) tr += g1.cov[i * n + i] + g2.cov[i * n + i];
  return Math.max(0, meanTerm + tr - 2 * trCross);
}

/** FID between two feature sets (rows of length dim). */
export function fid(
  a: ArrayLike<number>,
  na: number,
  b: ArrayLike<number>,
  nb: number,
  dim: number,
): number {
  return frechetDistance(gaussianOf(a, na, dim), gaussianOf(b, nb, dim));
}
