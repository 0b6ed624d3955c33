import {
  Generator,
  philox4x32,
  randomNormal,
  randomNormalCPU,
  randomUniform,
  randomUniformCPU,
  type Tensor,
} from "../kernels/mod.ts";
import { compiledKernelCount } from "../kernels/runtime.ts";
import { ready } from "./helpers.ts";

await ready;

async function take(t: Tensor): Promise<Float32Array> {
  const r = await t.read();
  t.dispose();
  return r;
}

function moments(x: Float32Array): { mean: number; variance: number } {
  let s = 0;
  for (const v of x) s += v;
  const mean = s / x.length;
  let q = 0;
  for (const v of x) q += (v - mean) ** 2;
  return { mean, variance: q / x.length };
}

function assertNear(x: number, want: number, tol: number, what: string): void {
  if (!(Math.abs(x - want) <= tol)) {
    throw new Error(`${what}: ${x} is not within ${tol} of ${want}`);
  }
}

function assertEqualArrays(a: Float32Array, b: Float32Array, what: string): void {
  if (a.length !== b.length) throw new Error(`${what}: lengths ${a.length} vs ${b.length}`);
  for (let i = 0; i < a.length; i++) {
    if (!Object.is(a[i], b[i])) throw new Error(`${what}: element ${i}: ${a[i]} vs ${b[i]}`);
  }
}

function differs(a: Float32Array, b: Float32Array): number {
  let n = 0;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) n++;
  return n;
}

Deno.test("philox4x32-10 (CPU) matches Random123's known answers", () => {
  const hex = (w: number[]) => w.map((x) => x.toString(16).padStart(8, "0")).join(" ");
  const cases: [
    [number, number, number, number],
    [number, number],
    [number, number, number, number],
  ][] = [
    [[0, 0, 0, 0], [0, 0], [0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8]],
    [
      [0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff],
      [0xffffffff, 0xffffffff],
      [0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd],
    ],
    [
      [0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344],
      [0xa4093822, 0x299f31d0],
      [0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1],
    ],
  ];
  for (const [ctr, key, want] of cases) {
    const got = philox4x32(ctr, key);
    if (hex(got) !== hex(want)) throw new Error(`philox: got ${hex(got)}, want ${hex(want)}`);
  }
});

Deno.test("GPU uniform stream is bit-identical to the TypeScript generator", async () => {
  const cases: [number, number, number][] = [
    // [n, seed, offset]: sizes off multiples of 4, seeds and offsets past 2³² (64-bit carry)
    [1001, 0, 0],
    [4096, 1234, 7],
    [37, 2 ** 32 + 5, 3],
    [64, 99, 2 ** 32 - 5],
    [3, 2 ** 52 + 1, 2 ** 40],
  ];
  for (const [n, seed, offset] of cases) {
    const gpu = await take(randomUniform([n], seed, offset));
    assertEqualArrays(gpu, randomUniformCPU(n, seed, offset), `n=${n} seed=${seed} off=${offset}`);
  }
});

Deno.test("GPU normal stream agrees with the TypeScript Box–Muller", async () => {
  const n = 4099;
  const gpu = await take(randomNormal([n], 42, 11));
  const cpu = randomNormalCPU(n, 42, 11);
  let err = 0;
  for (let i = 0; i < n; i++) {
    if (!Number.isFinite(gpu[i])) throw new Error(`normal: non-finite value at ${i}`);
    err = Math.max(err, Math.abs(gpu[i] - cpu[i]));
  }
  // the device's log/sin/cos differ from JavaScript's in the last bits only
  if (!(err <= 1e-3)) throw new Error(`normal: max |GPU − CPU| = ${err}`);
});

Deno.test("uniform: range, mean, variance and a flat histogram", async () => {
  const n = 1 << 20;
  const x = await take(randomUniform([256, 4096], 7));
  let lo = Infinity, hi = -Infinity;
  const bins = new Float64Array(16);
  for (const v of x) {
    lo = Math.min(lo, v);
    hi = Math.max(hi, v);
    bins[Math.floor(v * 16)]++;
  }
  if (!(lo >= 0 && hi < 1)) throw new Error(`uniform: values in [${lo}, ${hi}]`);
  const { mean, variance } = moments(x);
  assertNear(mean, 0.5, 1.5e-3, "uniform mean"); // 5σ of the sample mean
  assertNear(variance, 1 / 12, 5e-4, "uniform variance");
  // χ² with 15 degrees of freedom: P(χ² > 40) ≈ 4e-4
  const e = n / 16;
  const chi2 = bins.reduce((s, b) => s + (b - e) ** 2 / e, 0);
  if (!(chi2 < 40)) throw new Error(`uniform histogram: χ² = ${chi2.toFixed(1)}`);
});

Deno.test("normal: mean, variance, kurtosis and the one-sigma mass", async () => {
  const x = await take(randomNormal([1 << 20], 3, 5));
  const { mean, variance } = moments(x);
  assertNear(mean, 0, 5e-3, "normal mean");
  assertNear(variance, 1, 7e-3, "normal variance");
  let q4 = 0, inside = 0;
  for (const v of x) {
    q4 += v ** 4;
    if (Math.abs(v) < 1) inside++;
  }
  assertNear(q4 / x.length, 3, 0.05, "normal 4th moment");
  assertNear(inside / x.length, 0.6826895, 3e-3, "normal mass within 1σ");
});

Deno.test("same seed reproduces, other seeds and offsets differ, offsets continue the stream", async () => {
  const a = await take(randomUniform([4, 250], 11, 0));
  const b = await take(randomUniform([1000], 11, 0));
  assertEqualArrays(a, b, "same seed and offset");
  const c = await take(randomUniform([1000], 12, 0));
  const d = await take(randomUniform([1000], 11, 1));
  if (differs(a, c) < 990) throw new Error("another seed gave mostly the same numbers");
  if (differs(a, d) < 990) throw new Error("another offset gave mostly the same numbers");
  // offset k starts at value 4k of the stream
  assertEqualArrays(d.subarray(0, 996), a.subarray(4, 1000), "offset 1 = stream from value 4");
  const na = await take(randomNormal([1000], 11, 0));
  const nb = await take(randomNormal([1000], 11, 0));
  assertEqualArrays(na, nb, "normal: same seed and offset");
  const nc = await take(randomNormal([1000], 11, 1));
  if (differs(na, nc) < 990) throw new Error("normal: another offset gave the same numbers");
});

Deno.test("Generator: successive draws are fresh, a seed replays, state restores", async () => {
  const g1 = new Generator(2024);
  const first = await take(g1.uniform([10]));
  const second = await take(g1.uniform([10]));
  if (differs(first, second) < 10) throw new Error("successive draws repeat");
  if (g1.counter !== 6) throw new Error(`counter ${g1.counter}, want 2·⌈10/4⌉ = 6`);
  // the draws are consecutive pieces of the stream
  const whole = randomUniformCPU(24, 2024, 0);
  assertEqualArrays(first, whole.subarray(0, 10), "first draw");
  assertEqualArrays(second, whole.subarray(12, 22), "second draw");

  const saved = g1.state;
  const n1 = await take(g1.normal([3, 5]));
  const u1 = g1.uniformCPU(7);

  const g2 = new Generator(2024);
  assertEqualArrays(await take(g2.uniform([10])), first, "replay 1");
  assertEqualArrays(await take(g2.uniform([10])), second, "replay 2");
  assertEqualArrays(await take(g2.normal([3, 5])), n1, "replay normal");
  assertEqualArrays(g2.uniformCPU(7), u1, "replay CPU draw");

  g1.state = saved;
  assertEqualArrays(await take(g1.normal([3, 5])), n1, "restored state");
  g1.manualSeed(2024);
  assertEqualArrays(await take(g1.uniform([10])), first, "manualSeed restarts");
});

Deno.test("seeds and offsets do not compile new kernels", async () => {
  const g = new Generator(1);
  await take(g.uniform([333]));
  await take(g.normal([333]));
  const before = compiledKernelCount();
  for (let k = 0; k < 5; k++) {
    g.manualSeed(1000 + k);
    (g.uniform([333])).dispose();
    (g.normal([333])).dispose();
    randomUniform([333], 77 + k, 1000 * k).dispose();
  }
  await take(g.uniform([333]));
  const after = compiledKernelCount();
  if (after !== before) throw new Error(`${after - before} kernels compiled for new seeds/offsets`);
});
