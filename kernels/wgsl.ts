// Helpers shared by the kernels: 1-D grids over many elements, and float literals for WGSL.

import { deviceInfo } from "./device.ts";

export const WG = 256;

/** Workgroup grid for n invocations of WG threads: [x, y] with x·y·WG ≥ n. */
export function grid1d(n: number, wg = WG): [number, number] {
  const groups = Math.max(1, Math.ceil(n / wg));
  const max = deviceInfo().workgroupsPerDimension;
  if (groups <= max) return [groups, 1];
  const y = Math.ceil(groups / max);
  return [Math.ceil(groups / y), y];
}

/** The entry point of a kernel that is not a grid kernel (grid_kernel.ts): a reduction's. */
export const ENTRY = (wg = WG) =>
  `@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>)`;

/** A float literal WGSL accepts (always with a decimal point or exponent). */
export function f32lit(x: number): string {
  if (!Number.isFinite(x)) throw new Error(`non-finite constant ${x} in a kernel`);
  const s = Math.fround(x).toString();
  return /[.eE]/.test(s) ? s : s + ".0";
}
