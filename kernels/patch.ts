// Patch (un)embedding layouts. Both ops are permutations of their input, so each backward is the
// gather in the opposite direction, and one kernel generator serves all four:
//   patchify   [B, C, H, W] → [B, N, C·p·p], a token's vector ordered (channel, row, column), as a
//              stride-p conv weight [D, C, p, p] flattens;
//   unpatchify [B, N, p·p·C] → [B, C, H, W], a token's vector ordered (row, column, channel), as
//              DiT's final layer emits it.
// Tokens are numbered row-major over the (H/p)×(W/p) grid.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

type Layout = "cij" | "ijc";

interface Geometry {
  B: number;
  C: number;
  H: number;
  W: number;
  p: number;
}

/**
 * toTokens: image [B, C, H, W] → tokens [B, N, K]; otherwise tokens → image. One invocation per
 * output element, gathering its source.
 */
function patchGather(name: string, src: Tensor, geo: Geometry, layout: Layout, toTokens: boolean) {
  const { B, C, H, W, p } = geo;
  const gw = W / p, N = (H / p) * gw, K = C * p * p;
  const out = empty(toTokens ? [B, N, K] : [B, C, H, W]);
  // k within a token from (channel c, row-in-patch pr, column-in-patch pc)
  const kOf = layout === "cij"
    ? `(c * ${p * p}u + pr * ${p}u + pc)`
    : `((pr * ${p}u + pc) * ${C}u + c)`;
  // (c, pr, pc) from k
  const cijOf = layout === "cij"
    ? `let c = k / ${p * p}u; let pr = (k / ${p}u) % ${p}u; let pc = k % ${p}u;`
    : `let c = k % ${C}u; let pr = k / ${p * C}u; let pc = (k / ${C}u) % ${p}u;`;
  const body = toTokens
    ? `
  let b = i / ${N * K}u;
  let tok = (i / ${K}u) % ${N}u;
  let k = i % ${K}u;
  ${cijOf}
  let y = (tok / ${gw}u) * ${p}u + pr;
  let x = (tok % ${gw}u) * ${p}u + pc;
  O[i] = X[((b * ${C}u + c) * ${H}u + y) * ${W}u + x];`
    : `
  let b = i / ${C * H * W}u;
  let c = (i / ${H * W}u) % ${C}u;
  let y = (i / ${W}u) % ${H}u;
  let x = i % ${W}u;
  let pr = y % ${p}u;
  let pc = x % ${p}u;
  let tok = (y / ${p}u) * ${gw}u + x / ${p}u;
  O[i] = X[(b * ${N}u + tok) * ${K}u + ${kOf}];`;
  gridKernel({ name, n: out.size, read: { X: src }, write: { O: out }, body });
  return out;
}

function checkGeometry(what: string, geo: Geometry): void {
  const { C, H, W, p } = geo;
  if (!Number.isInteger(p) || p < 1 || H % p !== 0 || W % p !== 0 || C < 1) {
    throw new Error(`${what}: patch size ${p} does not tile ${H}×${W} (C = ${C})`);
  }
}

/** [B, C, H, W] → [B, N, C·p·p], N = (H/p)·(W/p) row-major; each vector ordered (c, row, col). */
export function patchify(x: Tensor, p: number): Tensor {
  if (x.rank !== 4) throw new Error(`patchify: x must be [B, C, H, W], got ${shapeStr(x.shape)}`);
  const [B, C, H, W] = x.shape;
  const geo = { B, C, H, W, p };
  checkGeometry("patchify", geo);
  // x [B, C, H, W] → [B, N, C·p·p]
  const out = patchGather("patchify", x, geo, "cij", true);
  // g [B, N, C·p·p] → dx [B, C, H, W]
  return record(
    out,
    "patchify",
    [x],
    (g) => [patchGather("patchify_backward", g, geo, "cij", false)],
    [],
  );
}

/** [B, N, p·p·C] → [B, C, H, W]; each token's vector ordered (row-in-patch, column, channel). */
export function unpatchify(x: Tensor, p: number, C: number, H: number, W: number): Tensor {
  const geo = { B: x.shape[0], C, H, W, p };
  checkGeometry("unpatchify", geo);
  const N = (H / p) * (W / p);
  if (x.rank !== 3 || x.shape[1] !== N || x.shape[2] !== p * p * C) {
    throw new Error(
      `unpatchify: x ${shapeStr(x.shape)} is not [B, ${N}, ${p * p * C}] for p = ${p}, ` +
        `C = ${C}, ${H}×${W}`,
    );
  }
  // x [B, N, p·p·C] → [B, C, H, W]
  const out = patchGather("unpatchify", x, geo, "ijc", false);
  // g [B, C, H, W] → dx [B, N, p·p·C]
  return record(
    out,
    "unpatchify",
    [x],
    (g) => [patchGather("unpatchify_backward", g, geo, "ijc", true)],
    [],
  );
}
