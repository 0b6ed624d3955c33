// Errors from the device surface as thrown errors that name the kernel, never as silent zeros.

import { empty, sync, tensor } from "../kernels/mod.ts";
import { dispatch, kernel } from "../kernels/runtime.ts";
import { ready } from "./helpers.ts";

await ready;

async function expectThrows(fn: () => Promise<unknown>, ...parts: string[]) {
  let msg = "";
  try {
    await fn();
  } catch (e) {
    msg = (e as Error).message;
  }
  for (const p of parts) {
    if (!msg.includes(p)) throw new Error(`expected an error mentioning '${p}', got '${msg}'`);
  }
}

Deno.test("a WGSL compile error is thrown and names the kernel", async () => {
  await expectThrows(async () => {
    const k = kernel("broken_kernel", `@compute @workgroup_size(1) fn main() { let x: f32 = ; }`);
    const t = empty([4]);
    dispatch(k, [t.buffer], 1);
    await sync();
  }, "broken_kernel");
  // the engine keeps working afterwards
  const t = tensor([1, 2, 3], [3]);
  const v = await t.read();
  t.dispose();
  if (v[2] !== 3) throw new Error("device unusable after a compile error");
});

Deno.test("a validation error (wrong bindings) is thrown and names the kernel", async () => {
  await expectThrows(async () => {
    const k = kernel(
      "needs_two_buffers",
      `@group(0) @binding(0) var<storage, read> A: array<f32>;
@group(0) @binding(1) var<storage, read_write> B: array<f32>;
@compute @workgroup_size(1) fn main() { B[0] = A[0]; }`,
    );
    const a = empty([4]);
    dispatch(k, [a.buffer], 1);
    await sync();
  }, "needs_two_buffers");
});
