// 2-D convolution as im2col + matmul, and global average pooling.
//   unfold  [B, C, H, W] → [B, Ho·Wo, C·k·k], each column vector ordered (channel, row, column) as
//           a conv weight [O, C, k, k] flattens, zero outside the image;
//   conv2d  unfold, then the linear layer's matmul against the weight [O, C·k·k] (bias fused),
//           then a permute to [B, O, Ho, Wo].
// Both also take channels-last images ([B, H, W, C], layout "nhwc"): the matmul's output
// [B, Ho·Wo, O] is then already the next layer's input, so a stack of convolutions needs no
// permutes, and a LayerNorm over channels is a last-axis LayerNorm. The column vectors keep the
// (channel, row, column) order in both layouts, so one weight serves either.
// The matmul is the one every other layer uses, so convolution gets its tiling for free; the
// price is the column buffer (k² copies of the input), which is small at classifier sizes.
// unfold's backward is the gather in reverse: each input pixel sums the column entries that read
// it, in a fixed order, so it needs no atomics and is deterministic.

import { isGradEnabled, record } from "./autograd.ts";
import { linear } from "./matmul.ts";
import { mean } from "./reduce.ts";
import { gridKernel } from "./grid_kernel.ts";
import { permute, reshape } from "./shape.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

/** Where the channel axis is: [B, C, H, W] or [B, H, W, C]. */
export type ImageLayout = "nchw" | "nhwc";

interface ConvGeometry {
  layout: ImageLayout;
  B: number;
  C: number;
  H: number;
  W: number;
  k: number;
  stride: number;
  pad: number;
  Ho: number;
  Wo: number;
}

function geometry(
  what: string,
  x: Tensor,
  k: number,
  stride: number,
  pad: number,
  layout: ImageLayout,
): ConvGeometry {
  if (layout !== "nchw" && layout !== "nhwc") throw new Error(`${what}: bad layout '${layout}'`);
  if (x.rank !== 4) {
    throw new Error(`${what}: x must be ${layoutStr(layout)}, got ${shapeStr(x.shape)}`);
  }
  for (const [name, v, lo] of [["kernel size", k, 1], ["stride", stride, 1], ["pad", pad, 0]]) {
    if (!Number.isInteger(v) || (v as number) < (lo as number)) {
      throw new Error(`${what}: ${name} must be an integer ≥ ${lo}, got ${v}`);
    }
  }
  const [B, C, H, W] = layout === "nchw"
    ? x.shape
    : [x.shape[0], x.shape[3], x.shape[1], x.shape[2]];
  const Ho = Math.floor((H + 2 * pad - k) / stride) + 1;
  const Wo = Math.floor((W + 2 * pad - k) / stride) + 1;
  if (Ho < 1 || Wo < 1) {
    throw new Error(`${what}: a ${k}×${k} kernel with pad ${pad} does not fit ${H}×${W}`);
  }
  return { layout, B, C, H, W, k, stride, pad, Ho, Wo };
}

function layoutStr(layout: ImageLayout): string {
  return layout === "nchw" ? "[B, C, H, W]" : "[B, H, W, C]";
}

/** WGSL: the flat index of pixel (b, c, y, x) (u32 expressions) in the layout. */
function pixelIndex(g: ConvGeometry, b: string, c: string, y: string, x: string): string {
  const { C, H, W } = g;
  return g.layout === "nchw"
    ? `((${b} * ${C}u + ${c}) * ${H}u + ${y}) * ${W}u + ${x}`
    : `((${b} * ${H}u + ${y}) * ${W}u + ${x}) * ${C}u + ${c}`;
}

// x [B, C, H, W] or [B, H, W, C] → cols [B, Ho·Wo, C·k·k]; one invocation per column entry
function unfoldKernel(x: Tensor, g: ConvGeometry): Tensor {
  const { B, C, H, W, k, stride, pad, Ho, Wo } = g;
  const L = Ho * Wo, K = C * k * k;
  const out = empty([B, L, K]);
  gridKernel({
    name: `unfold_${g.layout}`,
    n: out.size,
    read: { X: x },
    write: { O: out },
    body: `let b = i / ${L * K}u;
  let l = (i / ${K}u) % ${L}u;
  let kk = i % ${K}u;
  let c = kk / ${k * k}u;
  let r = (kk / ${k}u) % ${k}u;
  let q = kk % ${k}u;
  let y = i32((l / ${Wo}u) * ${stride}u + r) - ${pad};
  let x = i32((l % ${Wo}u) * ${stride}u + q) - ${pad};
  var v = 0.0;
  if (y >= 0 && y < ${H} && x >= 0 && x < ${W}) {
    v = X[${pixelIndex(g, "b", "c", "u32(y)", "u32(x)")}];
  }
  O[i] = v;`,
  });
  return out;
}

// g [B, Ho·Wo, C·k·k] → dx [B, C, H, W] or [B, H, W, C]; one invocation per input pixel, summing
// over the kernel offsets (r, q) whose output position lands on the stride grid
function unfoldBackwardKernel(gcols: Tensor, g: ConvGeometry): Tensor {
  const { B, C, H, W, k, stride, pad, Ho, Wo } = g;
  const L = Ho * Wo, K = C * k * k;
  const out = empty(g.layout === "nchw" ? [B, C, H, W] : [B, H, W, C]);
  const coords = g.layout === "nchw"
    ? `let b = i / ${C * H * W}u;
  let c = (i / ${H * W}u) % ${C}u;
  let y = i32((i / ${W}u) % ${H}u);
  let x = i32(i % ${W}u);`
    : `let b = i / ${H * W * C}u;
  let y = i32((i / ${W * C}u) % ${H}u);
  let x = i32((i / ${C}u) % ${W}u);
  let c = i % ${C}u;`;
  gridKernel({
    name: `unfold_backward_${g.layout}`,
    n: out.size,
    read: { G: gcols },
    write: { O: out },
    body: `${coords}
  let base = b * ${L * K}u + c * ${k * k}u;
  var acc = 0.0;
  for (var r = 0; r < ${k}; r++) {
    let ty = y + ${pad} - r;
    if (ty < 0 || ty % ${stride} != 0 || ty / ${stride} >= ${Ho}) { continue; }
    let oy = u32(ty / ${stride});
    for (var q = 0; q < ${k}; q++) {
      let tx = x + ${pad} - q;
      if (tx < 0 || tx % ${stride} != 0 || tx / ${stride} >= ${Wo}) { continue; }
      let ox = u32(tx / ${stride});
      acc += G[base + (oy * ${Wo}u + ox) * ${K}u + u32(r * ${k} + q)];
    }
  }
  O[i] = acc;`,
  });
  return out;
}

/**
 * im2col: [B, C, H, W] (or [B, H, W, C] with layout "nhwc") → [B, Ho·Wo, C·k·k] for a k×k window
 * with `stride` and zero padding `pad`; output positions are row-major over Ho×Wo, each vector
 * ordered (channel, row, column).
 */
export function unfold(
  x: Tensor,
  k: number,
  stride = 1,
  pad = 0,
  layout: ImageLayout = "nchw",
): Tensor {
  const geo = geometry("unfold", x, k, stride, pad, layout);
  // x [B, C, H, W] or [B, H, W, C] → [B, Ho·Wo, C·k·k]
  const out = unfoldKernel(x, geo);
  // g [B, Ho·Wo, C·k·k] → dx like x
  return record(out, "unfold", [x], (g) => [unfoldBackwardKernel(g, geo)], []);
}

/** The output size of a convolution along one axis. */
export function convOutSize(size: number, k: number, stride = 1, pad = 0): number {
  return Math.floor((size + 2 * pad - k) / stride) + 1;
}

/**
 * 2-D cross-correlation as torch.nn.functional.conv2d: x [B, C, H, W], weight [O, C, k, k] (or
 * flattened [O, C·k·k], square kernels), bias [O] or null → [B, O, Ho, Wo]. With layout "nhwc",
 * x is [B, H, W, C] and the result [B, Ho, Wo, O] (same weight).
 */
export function conv2d(
  x: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  stride = 1,
  pad = 0,
  layout: ImageLayout = "nchw",
): Tensor {
  if (x.rank !== 4) {
    throw new Error(`conv2d: x must be ${layoutStr(layout)}, got ${shapeStr(x.shape)}`);
  }
  const C = layout === "nhwc" ? x.shape[3] : x.shape[1];
  const O = weight.shape[0];
  let k: number;
  if (weight.rank === 4) {
    k = weight.shape[2];
    if (weight.shape[1] !== C || weight.shape[3] !== k) {
      throw new Error(
        `conv2d: weight ${shapeStr(weight.shape)} is not [O, ${C}, k, k] for x ${
          shapeStr(x.shape)
        }`,
      );
    }
  } else if (weight.rank === 2) {
    k = Math.round(Math.sqrt(weight.shape[1] / C));
    if (k * k * C !== weight.shape[1]) {
      throw new Error(
        `conv2d: weight ${shapeStr(weight.shape)} is not [O, ${C}·k·k] for x ${shapeStr(x.shape)}`,
      );
    }
  } else throw new Error(`conv2d: weight must be [O, C, k, k] or [O, C·k·k]`);
  if (bias && bias.size !== O) {
    throw new Error(`conv2d: bias ${shapeStr(bias.shape)} does not match ${O} output channels`);
  }
  const geo = geometry("conv2d", x, k, stride, pad, layout);
  const { B, Ho, Wo } = geo;
  const w2 = weight.rank === 2 ? weight : reshape(weight, [O, C * k * k]);
  // x → [B, Ho·Wo, C·k·k] → [B, Ho·Wo, O] → [B, O, Ho·Wo] (nchw) → [B, O, Ho, Wo]
  const cols = unfold(x, k, stride, pad, layout);
  const y = linear(cols, w2, bias);
  const t = layout === "nchw" ? permute(y, [0, 2, 1]) : y;
  const out = reshape(t, layout === "nchw" ? [B, O, Ho, Wo] : [B, Ho, Wo, O]);
  if (!isGradEnabled() || !out.requiresGrad) {
    // nothing will run backward through them: free the large intermediates now
    cols.dispose();
    y.dispose();
    if (t !== y) t.dispose();
    if (w2 !== weight) w2.dispose();
  }
  return out;
}

/** Global average pooling: [B, C, H, W] (or [B, H, W, C]) → [B, C], each channel's mean. */
export function globalAvgPool(x: Tensor, layout: ImageLayout = "nchw"): Tensor {
  if (x.rank !== 4) {
    throw new Error(`globalAvgPool: x must be ${layoutStr(layout)}, got ${shapeStr(x.shape)}`);
  }
  return mean(x, layout === "nchw" ? [2, 3] : [1, 2]);
}
