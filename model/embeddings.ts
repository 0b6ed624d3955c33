// Fixed (non-learned) embeddings, computed on the CPU in float64 and rounded to f32 once.

/**
 * 2-D sin-cos position table [N, D] (MAE / DiT): tokens row-major; the first D/2 channels encode
 * the column, the last D/2 the row, each as [sin(pos·ω), cos(pos·ω)], ω_i = 1/10000^(i/(D/4)).
 * Positions are index·(baseSize/grid)/peInterpolation, as PixArt-α computes them: a model
 * trained on a grid of g and moved to a grid of 2g with peInterpolation 2 sees its tokens on the
 * same range of positions it learned, at half the spacing (docs/spec.md §7).
 */
export function posEmbed2d(
  dim: number,
  grid: number,
  baseSize = grid,
  peInterpolation = 1,
): Float32Array {
  if (!(peInterpolation > 0)) {
    throw new Error(`pe_interpolation must be positive, got ${peInterpolation}`);
  }
  if (dim % 4 !== 0) {
    throw new Error(`hidden_size ${dim} must be a multiple of 4 for 2-D positions`);
  }
  const quarter = dim / 4;
  const out = new Float32Array(grid * grid * dim);
  const scale = baseSize / grid / peInterpolation;
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const n = r * grid + c;
      for (let half = 0; half < 2; half++) {
        const pos = (half === 0 ? c : r) * scale;
        for (let i = 0; i < quarter; i++) {
          const omega = 1 / Math.pow(10000, i / quarter);
          out[n * dim + half * (dim / 2) + i] = Math.sin(pos * omega);
          out[n * dim + half * (dim / 2) + quarter + i] = Math.cos(pos * omega);
        }
      }
    }
  }
  return out;
}

/** 256-d timestep sinusoid [cos(t·f), sin(t·f)], f_i = exp(−ln(10000)·i/128) (DiT). */
export function timestepFreq(t: ArrayLike<number>, dim = 256, maxPeriod = 10000): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(t.length * dim);
  for (let b = 0; b < t.length; b++) {
    for (let i = 0; i < half; i++) {
      const f = Math.exp(-Math.log(maxPeriod) * i / half);
      out[b * dim + i] = Math.cos(t[b] * f);
      out[b * dim + half + i] = Math.sin(t[b] * f);
    }
  }
  return out;
}
