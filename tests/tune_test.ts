// Kernel variants per adapter (kernels/tune.ts) and the warm-up (kernels/warmup.ts): choices are
// timed once and remembered in $PIXART_CACHE_DIR/kernel-choices.json, a corrupt file is ignored
// and rewritten, and a warm-up compiles what a step needs without running it.

import {
  cacheDir,
  chosenVariants,
  deviceInfo,
  matmul,
  noGrad,
  rememberedChoice,
  resetTuningCache,
  tensor,
  tidy,
  warmUp,
  withKernelVariant,
} from "../kernels/mod.ts";
import { assertClose, rand, ready } from "./helpers.ts";

await ready;

/** Runs fn with PIXART_CACHE_DIR and PIXART_TUNE set, restoring both afterwards. */
async function withCache(dir: string, tune: string, fn: () => Promise<void>): Promise<void> {
  const prev = [Deno.env.get("PIXART_CACHE_DIR"), Deno.env.get("PIXART_TUNE")];
  Deno.env.set("PIXART_CACHE_DIR", dir);
  Deno.env.set("PIXART_TUNE", tune);
  resetTuningCache();
  try {
    await fn();
  } finally {
    for (const [k, v] of [["PIXART_CACHE_DIR", prev[0]], ["PIXART_TUNE", prev[1]]] as const) {
      if (v === undefined) Deno.env.delete(k);
      else Deno.env.set(k, v);
    }
    resetTuningCache();
  }
}

Deno.test("tuning: a warm-up times the variants once, remembers the fastest in the cache file", async () => {
  const dir = await Deno.makeTempDir();
  await withCache(dir, "always", async () => {
    if (cacheDir() !== dir) throw new Error(`cache dir ${cacheDir()}, not ${dir}`);
    const [M, K, N] = [24, 16, 20];
    const a = tensor(rand(M * K, 1), [M, K]), b = tensor(rand(N * K, 2), [N, K]);
    const key = `NT 1x${M}x${K}x${N}`;
    const phases: string[] = [];
    const stats = await warmUp(() => matmul(a, b, { transB: true }), {
      onProgress: (p) => phases.push(p.phase),
    });
    if (stats.tuned !== 1 || !phases.includes("tune")) {
      throw new Error(`expected one shape timed, got ${JSON.stringify(stats)} ${phases}`);
    }
    const c = rememberedChoice("matmul", key);
    if (!c?.ms || Object.keys(c.ms).length < 2) {
      throw new Error(`no timing remembered: ${JSON.stringify(c)}`);
    }
    const file = JSON.parse(await Deno.readTextFile(`${dir}/kernel-choices.json`));
    const mine = file.adapters[deviceInfo().adapter]?.[`matmul:${key}`];
    if (mine?.choice !== c.choice) throw new Error(`file holds ${JSON.stringify(mine)}`);
    // the remembered choice runs, and nothing is timed again
    const y = matmul(a, b, { transB: true });
    if (chosenVariants().get(`matmul:${key}`) !== c.choice) {
      throw new Error("the remembered choice was not used");
    }
    const again = await warmUp(() => matmul(a, b, { transB: true }));
    if (again.tuned !== 0) throw new Error("a remembered shape was timed again");
    const ref = withKernelVariant("matmul", "scalar", () => matmul(a, b, { transB: true }));
    assertClose(await y.read(), await ref.read(), 0, "tuned product");
    for (const t of [a, b, y, ref]) t.dispose();
    // no temporary files are left behind (the write is a rename)
    const names = [...Deno.readDirSync(dir)].map((e) => e.name);
    if (names.length !== 1) throw new Error(`cache folder holds ${names}`);
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning: a corrupt cache file is ignored and rewritten", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/kernel-choices.json`, "{ not json");
  await withCache(dir, "always", async () => {
    const a = tensor(rand(8 * 12, 3), [8, 12]), b = tensor(rand(12 * 4, 4), [12, 4]);
    await warmUp(() => matmul(a, b));
    const file = JSON.parse(await Deno.readTextFile(`${dir}/kernel-choices.json`));
    if (file.version !== 1 || !file.adapters[deviceInfo().adapter]) {
      throw new Error(`not rewritten: ${JSON.stringify(file)}`);
    }
    a.dispose();
    b.dispose();
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning: entries of the wrong type in the cache file are dropped and rewritten", async () => {
  const dir = await Deno.makeTempDir();
  const adapter = deviceInfo().adapter;
  const kept = { choice: "scalar", ms: { scalar: 1 } };
  await Deno.writeTextFile(
    `${dir}/kernel-choices.json`,
    JSON.stringify({
      version: 1,
      adapters: {
        [adapter]: "not an object",
        "another adapter": { "matmul:NN 1x2x3x4": kept, "matmul:bad": 7, "matmul:bad2": {} },
        "a third": [1, 2],
      },
    }),
  );
  await withCache(dir, "always", async () => {
    const a = tensor(rand(8 * 12, 3), [8, 12]), b = tensor(rand(12 * 4, 4), [12, 4]);
    await warmUp(() => matmul(a, b));
    const file = JSON.parse(await Deno.readTextFile(`${dir}/kernel-choices.json`));
    const mine = file.adapters[adapter];
    if (typeof mine !== "object" || !Object.values(mine).every((c: any) => c.choice)) {
      throw new Error(`not rewritten: ${JSON.stringify(file)}`);
    }
    const other = JSON.stringify(file.adapters["another adapter"]);
    if (other !== JSON.stringify({ "matmul:NN 1x2x3x4": kept })) {
      throw new Error(`another adapter's valid choices should stay, alone: ${other}`);
    }
    if ("a third" in file.adapters) throw new Error("a list kept as an adapter's choices");
    a.dispose();
    b.dispose();
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("tuning off: nothing is timed or written, the adapter's default runs", async () => {
  const dir = await Deno.makeTempDir();
  await withCache(dir, "never", async () => {
    const a = tensor(rand(8 * 12, 5), [8, 12]), b = tensor(rand(12 * 4, 6), [12, 4]);
    const s = await warmUp(() => matmul(a, b));
    if (s.tuned !== 0) throw new Error("timed with PIXART_TUNE=never");
    if ([...Deno.readDirSync(dir)].length) throw new Error("a file was written");
    a.dispose();
    b.dispose();
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("warmUp: compiles without running the step; the step then gives the same result", async () => {
  const [M, K, N] = [10, 8, 6];
  const x = tensor(rand(M * K, 7), [M, K]), w = tensor(rand(N * K, 8), [N, K]);
  const before = await x.read();
  let out: Float32Array | null = null;
  const step = () =>
    noGrad(() => tidy(() => matmul(x, w, { transB: true, activation: "gelu_tanh" })));
  const s = await warmUp(step);
  if (s.kernels < 1) throw new Error(`the dry run saw ${s.kernels} kernels`);
  assertClose(await x.read(), before, 0, "inputs untouched");
  const y = noGrad(() => matmul(x, w, { transB: true, activation: "gelu_tanh" }));
  out = await y.read();
  const ref = withKernelVariant(
    "matmul",
    "scalar",
    () => noGrad(() => matmul(x, w, { transB: true, activation: "gelu_tanh" })),
  );
  assertClose(out, await ref.read(), 0, "after warm-up");
  for (const t of [x, w, y, ref]) t.dispose();
});
