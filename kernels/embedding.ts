// Embedding lookup: rows of a table gathered by integer ids. The backward scatter-adds into the
// table gradient without atomics: one invocation per (table row, channel) scans the ids in order,
// so the sum is deterministic.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

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

// g [M, E], ids [M] i32 → dtable [V, E]; one invocation per table entry, summing its rows of g
function embeddingBackward(g: Tensor, ids: Tensor, V: number, E: number): Tensor {
  const dt = empty([V, E]);
  const M = ids.size;
  gridKernel({
    name: "embedding_backward",
    n: V * E,
    read: { G: g, I: ids },
    write: { DT: dt },
    body: `let v = i32(i / ${E}u);
  let e = i % ${E}u;
  var acc = 0.0;
  for (var m = 0u; m < ${M}u; m++) {
    if (I[m] == v) { acc += G[m * ${E}u + e]; }
  }
  DT[i] = acc;`,
  });
  return dt;
}
