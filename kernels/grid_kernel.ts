// Kernels over a flat 1-D grid, made from a spec: one invocation per output element (a pointwise
// kernel) or per row (a row kernel), numbered `i`. The spec names what the kernel reads and
// writes and gives the body for one `i`; the bindings, the entry point, the flat index over a
// grid of any width (wgsl.ts grid1d) and the bounds check are written here once.

import { type Binding, dispatch, kernel, sizeWords } from "./runtime.ts";
import type { Tensor } from "./tensor.ts";
import { grid1d, WG } from "./wgsl.ts";

/** A binding: a tensor (an array of its dtype), or a binding with its WGSL element type. */
export type GridArg = Tensor | readonly [Binding, string];

export interface GridKernelSpec {
  /** the kernel's name (profiles, error messages) */
  name: string;
  /** invocations i = 0 … n − 1 (none dispatched when n is 0) */
  n: number;
  /** what it reads, bound from 0 in this order: WGSL name → argument (null: left out) */
  read?: Record<string, GridArg | null | undefined>;
  /** what it writes, bound after what it reads */
  write: Record<string, GridArg | null | undefined>;
  /** WGSL statements for one invocation i < n */
  body: string;
  /** WGSL declared before the bindings: helper functions */
  lib?: string;
  /**
   * Sizes read from a buffer S, bound last: S[0] = n, S[1], … = these. Without them the sizes are
   * constants in the code; with them one pipeline serves every shape.
   */
  sizes?: readonly number[];
  /** invocations per workgroup (default WG) */
  workgroup?: number;
}

/** Records one dispatch of the kernel `spec` describes. */
export function gridKernel(spec: GridKernelSpec): void {
  const { n, sizes } = spec;
  if (n === 0) return;
  const wg = spec.workgroup ?? WG;
  const decls: string[] = [];
  const bufs: Binding[] = [];
  const bind = (args: GridKernelSpec["read"], access: string) => {
    for (const [name, arg] of Object.entries(args ?? {})) {
      if (!arg) continue;
      const [b, type] = Array.isArray(arg) ? arg : [arg as Tensor, (arg as Tensor).dtype];
      decls.push(
        `@group(0) @binding(${bufs.length}) var<storage, ${access}> ${name}: array<${type}>;`,
      );
      bufs.push(b);
    }
  };
  bind(spec.read, "read");
  bind(spec.write, "read_write");
  if (sizes) {
    decls.push(`@group(0) @binding(${bufs.length}) var<storage, read> S: array<u32>;`);
    bufs.push(sizeWords([n, ...sizes]));
  }
  const code = `${spec.lib ?? ""}
${decls.join("\n")}
@compute @workgroup_size(${wg})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = (wid.y * nwg.x + wid.x) * ${wg}u + lid.x;
  if (i >= ${sizes ? "S[0]" : `${n}u`}) { return; }
  ${spec.body.trim()}
}`;
  const [gx, gy] = grid1d(n, wg);
  dispatch(kernel(spec.name, code), bufs, gx, gy);
}
