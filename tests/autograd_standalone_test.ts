// The engine needs no wiring: importing autograd and one op module (not kernels/mod.ts) is enough
// to run backward. (Each test file runs in its own module graph.)

import { initDevice } from "../kernels/device.ts";
import { backward } from "../kernels/autograd.ts";
import { div, mul } from "../kernels/elementwise.ts";
import { sum } from "../kernels/reduce.ts";
import { tensor, tidy } from "../kernels/tensor.ts";

await initDevice();

Deno.test("backward works with only the modules it uses imported", async () => {
  const a = tensor([1, 2, 3], [3]).keep();
  const b = tensor([4, 5, 6], [3]).keep();
  a.requiresGrad = b.requiresGrad = true;
  // L = Σ a·a / b: dL/da = 2a/b, dL/db = −a²/b²
  tidy(() => backward(sum(div(mul(a, a), b))));
  const ga = await a.grad!.read(), gb = await b.grad!.read();
  const want = [[2 / 4, 4 / 5, 6 / 6], [-1 / 16, -4 / 25, -9 / 36]];
  [ga, gb].forEach((g, k) =>
    g.forEach((v, i) => {
      if (Math.abs(v - want[k][i]) > 1e-6) throw new Error(`grad ${k}[${i}] = ${v}`);
    })
  );
  for (const t of [a, b]) {
    t.grad!.dispose();
    t.dispose();
  }
});
