// Checks an op on the GPU: forward against a plain-TypeScript reference (f32 inputs, computed in
// f64) and backward against central finite differences of that reference in f64.

import { backward, type Tensor, tensor, tidy } from "../kernels/mod.ts";
import { assertClose, dot, numericGrad, rand } from "./helpers.ts";

export interface CheckSpec {
  name: string;
  /** input shapes; inputs listed in `noGrad` get no gradient check (indices, masks) */
  inputs: { shape: number[]; data?: Float32Array; noGrad?: boolean; int?: boolean }[];
  /** the GPU op */
  gpu: (xs: Tensor[]) => Tensor;
  /** the f64 reference: flat inputs → flat output */
  ref: (xs: Float64Array[]) => Float64Array;
  fwdTol?: number;
  gradTol?: number;
  h?: number;
}

export async function check(spec: CheckSpec): Promise<void> {
  const datas = spec.inputs.map((inp, k) =>
    inp.data ?? rand(inp.shape.reduce((a, b) => a * b, 1), 17 + 31 * k)
  );
  const expected = spec.ref(datas.map((d) => Float64Array.from(d)));
  const w = rand(expected.length, 99);
  const { out, grads } = await (async () => {
    const ts: Tensor[] = [];
    const result = tidy(() => {
      for (let k = 0; k < datas.length; k++) {
        const t = tensor(datas[k], spec.inputs[k].shape).keep();
        if (!spec.inputs[k].noGrad) t.requiresGrad = true;
        ts.push(t);
      }
      const y = spec.gpu(ts);
      const g = tensor(w, y.shape);
      backward(y, g);
      return y;
    });
    const out = await result.read();
    result.dispose();
    const grads: (Float32Array | null)[] = [];
    for (const t of ts) {
      grads.push(t.grad ? await t.grad.read() : null);
      t.grad?.dispose();
      t.dispose();
    }
    return { out, grads };
  })();
  assertClose(out, expected, spec.fwdTol ?? 1e-5, `${spec.name} forward`);
  for (let k = 0; k < datas.length; k++) {
    if (spec.inputs[k].noGrad) continue;
    const x = Float64Array.from(datas[k]);
    const f = (xk: Float64Array) => {
      const all = datas.map((d, j) => (j === k ? xk : Float64Array.from(d)));
      return dot(spec.ref(all), w);
    };
    const num = numericGrad(f, x, spec.h ?? 1e-6);
    const got = grads[k];
    if (!got) throw new Error(`${spec.name}: input ${k} got no gradient`);
    assertClose(got, num, spec.gradTol ?? 1e-4, `${spec.name} grad of input ${k}`);
  }
}
