// The matmul variant checks, shared by the Deno test (matmul_variants_test.ts) and the browser
// page (browser_matmul_page.ts), which runs them where Deno's adapter cannot: with subgroups. Each
// forces the given variants in turn on the same inputs and compares the forward product with the
// plain-TypeScript reference, and every output and gradient bit for bit with the first variant's.
// Browser-safe: no node: or npm: imports (tests/architecture_test.ts).

import {
  backward,
  chosenVariants,
  linear,
  matmul,
  tensor,
  tidy,
  toHalf,
  withKernelVariant,
} from "../kernels/mod.ts";
import { roundToHalf } from "../io/safetensors_bytes.ts";
import { assertClose, rand, refMatmul } from "./helpers.ts";

/** Forced variant → the variants its products actually ran (a forced one may fall back). */
export type Ran = Map<string, Set<string>>;

/** [batch, M, K, N] */
export type Case = [number, number, number, number];

export const CASES: readonly Case[] = [
  [1, 5, 7, 3], // odd: no vec4 register tile
  [2, 8, 12, 16],
  [1, 37, 16, 24], // M not a multiple of any tile
  [1, 64, 32, 72], // N not a multiple of 16 or 64
  [3, 12, 8, 20],
];

export function same(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: lengths ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i] && !(Number.isNaN(a[i]) && Number.isNaN(b[i]))) {
      throw new Error(
        `${what}: element ${i} is ${a[i]}, not ${b[i]} (variants must agree exactly)`,
      );
    }
  }
}

/** `fn` with `variant` forced, noting in `ran` which variants its products ran. */
function forced<T>(variant: string, ran: Ran, fn: () => T): T {
  chosenVariants(true);
  const out = withKernelVariant("matmul", variant, fn);
  const set = ran.get(variant) ?? new Set();
  for (const [k, v] of chosenVariants(true)) if (k.startsWith("matmul:")) set.add(v);
  ran.set(variant, set);
  return out;
}

/** Forward and gradients of one product under a forced variant. */
async function runVariant(
  variant: string,
  ran: Ran,
  shapes: { a: number[]; b: number[]; n: number },
  data: { a: Float32Array; b: Float32Array; bias: Float32Array; g: Float32Array },
  opts: { tA: boolean; tB: boolean; bias: boolean; gelu: boolean },
): Promise<Float32Array[]> {
  const a = tensor(data.a, shapes.a), b = tensor(data.b, shapes.b);
  const bias = opts.bias ? tensor(data.bias, [shapes.n]) : null;
  for (const t of [a, b, bias]) if (t) t.requiresGrad = true;
  const y = forced(variant, ran, () =>
    tidy(() => {
      const y = matmul(a, b, {
        transA: opts.tA,
        transB: opts.tB,
        bias,
        activation: opts.gelu ? "gelu_tanh" : null,
      });
      backward(y, tensor(data.g, y.shape));
      return y;
    }));
  const out = [await y.read()];
  for (const t of [a, b, bias]) {
    if (!t) continue;
    out.push(await t.grad!.read());
    t.grad!.dispose();
    t.dispose();
  }
  y.dispose();
  return out;
}

/** Every layout, with and without bias and the fused GELU, forward and gradients. */
export async function checkLayouts(
  variants: readonly string[],
  cases: readonly Case[] = CASES,
): Promise<Ran> {
  const ran: Ran = new Map();
  for (const [batch, M, K, N] of cases) {
    for (const [tA, tB] of [[false, false], [false, true], [true, false], [true, true]]) {
      for (const [bias, gelu] of [[false, false], [true, false], [true, true]]) {
        const shapes = {
          a: tA ? [batch, K, M] : [batch, M, K],
          b: tB ? [N, K] : [K, N],
          n: N,
        };
        const data = {
          a: rand(batch * M * K, 1),
          b: rand(K * N, 2),
          bias: rand(N, 3),
          g: rand(batch * M * N, 4),
        };
        const what = `b${batch} ${M}x${K}x${N} tA=${tA} tB=${tB} bias=${bias} gelu=${gelu}`;
        const ref = refMatmul(
          data.a,
          data.b,
          batch,
          M,
          K,
          N,
          tA,
          tB,
          bias ? data.bias : null,
          gelu,
        );
        let first: Float32Array[] | null = null;
        for (const v of variants) {
          const got = await runVariant(v, ran, shapes, data, { tA, tB, bias, gelu });
          assertClose(got[0], ref, 1e-5, `${what} ${v} forward`);
          if (!first) first = got;
          else got.forEach((x, i) => same(x, first![i], `${what} ${v} output ${i}`));
        }
      }
    }
  }
  return ran;
}

/** Products across several workgroups and tiles, with bias. */
export async function checkLarge(variants: readonly string[]): Promise<Ran> {
  const ran: Ran = new Map();
  for (
    const [M, K, N, tA, tB] of [[130, 68, 136, false, true], [136, 130, 68, true, false]] as const
  ) {
    const a = rand(M * K, 5), b = rand(K * N, 6), bias = rand(N, 7);
    const ref = refMatmul(a, b, 1, M, K, N, tA, tB, bias, false);
    let first: Float32Array | null = null;
    for (const v of variants) {
      const at = tensor(a, tA ? [K, M] : [M, K]), bt = tensor(b, tB ? [N, K] : [K, N]);
      const ct = tensor(bias, [N]);
      const y = forced(v, ran, () => matmul(at, bt, { transA: tA, transB: tB, bias: ct }));
      const got = await y.read();
      assertClose(got, ref, 1e-5, `${M}x${K}x${N} ${v}`);
      if (!first) first = got;
      else same(got, first, `${M}x${K}x${N} ${v}`);
      for (const t of [at, bt, ct, y]) t.dispose();
    }
  }
  return ran;
}

/** An f16 weight (toHalf) gives the f32 product of its values (the default variant's) exactly. */
export async function checkHalf(variants: readonly string[]): Promise<Ran> {
  const ran: Ran = new Map();
  for (const [M, K, N] of [[5, 12, 24], [37, 16, 30], [70, 64, 80]]) {
    const x = tensor(rand(M * K, 8), [M, K]);
    const w = tensor(rand(N * K, 9).map(roundToHalf), [N, K]);
    const b = tensor(rand(N, 10), [N]);
    const want = await (async () => {
      const y = linear(x, w, b, "gelu_tanh");
      const r = await y.read();
      y.dispose();
      return r;
    })();
    const h = toHalf(w);
    for (const v of variants) {
      const y = forced(v, ran, () => linear(x, h, b, "gelu_tanh"));
      same(await y.read(), want, `f16 weight ${M}x${K}x${N} ${v}`);
      y.dispose();
    }
    for (const t of [x, w, b, h]) t.dispose();
  }
  return ran;
}
