// Embedding lookup: rows of a table gathered by integer ids. The backward scatter-adds into the
// table gradient without atomics: one invocation per (table row, channel) scans the ids in order,
// so the sum is deterministic.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { ENTRY, grid1d } from "./wgsl.ts";

const WG_E = 64;

/**
 * table [V, E] f32, ids i32 of any shape S → [...S, E]: out[s, :] = table[ids[s], :].
 * Ids outside [0, V) give rows of zeros (and no gradient). Gradient for the table only.
 */
export function embedding(table: Tensor, ids: Tensor): Tensor {
  if (table.rank !== 2) {
    throw new Error(`embedding: table must be [V, E], got ${shapeStr(table.shape)}`);
  }
  if (ids.dtype !== "i32") {
    throw new Error(`embedding: ids must be an i32 tensor, got ${ids.dtype}`);
  }
  const [V, E] = table.shape;
  if (V === 0) throw new Error("embedding: the table has no rows");
  const M = ids.size;
  const out = empty([...ids.shape, E]);
  // table [V, E], ids [M] i32 → out [M, E]
  gridKernel({
    name: "embedding",
    n: M * E,
    read: { T: table, I: ids },
    write: { O: out },
    body: `let id = I[i / ${E}u];
  let v = u32(clamp(id, 0, ${V - 1}));
  O[i] = select(0.0, T[v * ${E}u + i % ${E}u], id == i32(v));`,
  });
  return record(
    out,
    "embedding",
    [table, ids],
    (g) => [embeddingBackward(g, ids, V, E), null],
    [ids],
  );
}

// g [M, E], ids [M] i32 → dtable [V, E]; one workgroup per (row v, block of WG_E channels)
function embeddingBackward(g: Tensor, ids: Tensor, V: number, E: number): Tensor {
  const dt = empty([V, E]);
  if (dt.size === 0) return dt;
  const M = ids.size;
  const blocks = Math.ceil(E / WG_E);
  const [gx, gy] = grid1d(V * blocks, 1);
  const code = `
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> I: array<i32>;
@group(0) @binding(2) var<storage, read_write> DT: array<f32>;
${ENTRY(WG_E)} {
  let wg = wid.y * ${gx}u + wid.x;
  if (wg >= ${V * blocks}u) { return; }
  let v = i32(wg / ${blocks}u);
  let e = (wg % ${blocks}u) * ${WG_E}u + lid.x;
  if (e >= ${E}u) { return; }
  var acc = 0.0;
  for (var m = 0u; m < ${M}u; m++) {
    if (I[m] == v) { acc += G[m * ${E}u + e]; }
  }
  DT[u32(v) * ${E}u + e] = acc;
}`;
  dispatch(kernel("embedding_backward", code), [g, ids, dt], gx, gy);
  return dt;
}
