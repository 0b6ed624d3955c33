// Low-rank adapters (model/lora.ts, model/layers.ts Linear): the adapted layer against finite
// differences, scale 0 is the base model bit for bit, a merged model computes what the adapter
// does, the file's PEFT names and metadata, strict reading, and a mismatched base is refused.

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backward,
  concat,
  Generator,
  noGrad,
  tapeSavedBytes,
  type Tensor,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import { readSafetensors, roundToHalf, writeSafetensors } from "../io/safetensors.ts";
import { bind, Linear } from "../model/layers.ts";
import {
  checkLoraBase,
  Lora,
  type LoraBase,
  loraContents,
  loraFromContents,
  loraLayers,
  mergeLora,
  peftName,
  readLoraPairs,
  weightsSha256,
} from "../model/lora.ts";
import { readLora, saveLora } from "../model/lora_file.ts";
import { modelConfigFromJson, readCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { useHalfWeights } from "../model/half_weights.ts";
import { Params } from "../model/params.ts";
import { PixArt } from "../model/pixart.ts";
import { epsLoss } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { DEFAULT_CONFIG } from "../io/config_schema.ts";
import { check } from "./gradcheck.ts";
import { rand, ready, relErr, textCond, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

// the layers a LoRA run adapts by default (the config's lora.targets)
const TARGETS = DEFAULT_CONFIG.lora.targets;

async function hostWeights(params: Params): Promise<Map<string, Float32Array>> {
  const out = new Map<string, Float32Array>();
  for (const [n, t] of params.map) out.set(n, await t.read());
  return out;
}

async function baseOf(model: PixArt, name = "tiny"): Promise<LoraBase> {
  return {
    sha256: await weightsSha256(model.config, await hostWeights(model.params)),
    name,
    weights: "ema",
    config: model.config,
  };
}

/** An adapter whose B is not zero (a trained one), so that it changes what the model draws. */
async function trainedLora(model: PixArt, seed: number, rank = 2, alpha = 3): Promise<Lora> {
  const lora = Lora.init({ rank, alpha, targets: TARGETS }, seed, await baseOf(model));
  for (const l of lora.layers) {
    const name = peftName(l.path, "B");
    lora.params.set(name, tensor(rand(l.out * rank, seed + l.out, 0.5), [l.out, rank]));
  }
  return lora;
}

/** A fresh model whose zero-initialised layers (the output, cross-attention's proj) have values. */
function modelWithValues(seed: number): PixArt {
  const model = PixArt.init(TINY_TEXT_MODEL, seed);
  const zeroed = model.params.names().filter((n) =>
    /(cross_attn\.proj|final_layer\.linear)\.weight$/.test(n)
  );
  for (const [k, name] of zeroed.entries()) {
    const p = model.params.get(name);
    model.params.set(name, tensor(rand(p.size, seed + k, 0.3), p.shape));
  }
  return model;
}

Deno.test("a Linear layer with adapters: forward and every gradient by finite differences", async () => {
  // y = x·Wᵀ + b + s₁·B₁(A₁x) + s₂·B₂(A₂x), through the fused GELU and through split()
  const [N, I, O, r] = [3, 4, 6, 2];
  const s = [0.7, -1.5];
  const ref = (xs: Float64Array[], act: boolean) => {
    const [x, W, b, A1, B1, A2, B2] = xs;
    const out = new Float64Array(N * O);
    for (let n = 0; n < N; n++) {
      for (let o = 0; o < O; o++) {
        let y = b[o];
        for (let i = 0; i < I; i++) y += W[o * I + i] * x[n * I + i];
        for (const [A, B, sc] of [[A1, B1, s[0]], [A2, B2, s[1]]] as const) {
          for (let k = 0; k < r; k++) {
            let h = 0;
            for (let i = 0; i < I; i++) h += A[k * I + i] * x[n * I + i];
            y += sc * B[o * r + k] * h;
          }
        }
        out[n * O + o] = act
          ? 0.5 * y * (1 + Math.tanh(0.7978845608028654 * (y + 0.044715 * y ** 3)))
          : y;
      }
    }
    return out;
  };
  const shapes = [[N, I], [O, I], [O], [r, I], [O, r], [r, I], [O, r]];
  const layer = (xs: Tensor[]) => {
    const P = new Params();
    // the bound layer reads the tensors given, which the check made and requires gradients of
    P.map.set("fc.weight", xs[1]);
    P.map.set("fc.bias", xs[2]);
    const lora = new Map([["fc", [
      { A: xs[3], B: xs[4], scale: s[0] },
      { A: xs[5], B: xs[6], scale: s[1] },
    ]]]);
    return bind(Linear(I, O), P, "fc", { lora });
  };
  for (const act of [false, true]) {
    await check({
      name: `Linear with two adapters${act ? ", GELU" : ""}`,
      inputs: shapes.map((shape) => ({ shape })),
      gpu: (xs) => layer(xs)(xs[0], act ? "gelu_tanh" : undefined),
      ref: (xs) => ref(xs, act),
      gradTol: 3e-4,
    });
  }
  // split(x, 2): the two halves of the same sum
  await check({
    name: "Linear.split with two adapters",
    inputs: shapes.map((shape) => ({ shape })),
    gpu: (xs) => concat(layer(xs).split(xs[0], 2), 1),
    ref: (xs) => ref(xs, false),
    gradTol: 3e-4,
  });
});

Deno.test("an adapter at scale 0 is the base model bit for bit; at scale 1 it is not", async () => {
  const model = modelWithValues(3);
  const lora = await trainedLora(model, 11);
  const B = 2, S = TINY_TEXT_MODEL.image_size;
  const x = rand(B * S * S, 5);
  const cond = textCond(model, ["seven", "a dog"]);
  const draw = async (applied: PixArt["lora"]) => {
    model.lora = applied;
    // a forward pass, and a guided step (its caption path cached, the K/V split cut once)
    const eps = model.guidedEps(cond, 2.5);
    const [f, g] = noGrad(() =>
      tidy(() => {
        const xt = tensor(x, [B, 1, S, S]);
        return [model.forward(xt, [100, 700], cond), eps(xt, 400)].map((t) => t.keep());
      })
    );
    eps.dispose();
    const out = [await f.read(), await g.read()];
    f.dispose();
    g.dispose();
    return out;
  };
  try {
    const base = await draw([]);
    assert.deepEqual(await draw([{ lora, scale: 0 }]), base);
    const on = await draw([{ lora, scale: 1 }]);
    assert.ok(relErr(on[0], base[0]) > 1e-3 && relErr(on[1], base[1]) > 1e-3);
  } finally {
    model.lora = [];
    lora.dispose();
    model.dispose();
  }
});

Deno.test("adapters on f16 weights read packed: scale 0 is the plain model, scale 1 the f32 path's", async () => {
  const model = modelWithValues(9);
  // weights exactly f16, as an exported checkpoint holds them: sampling reads them packed
  for (const p of model.params.tensors()) p.write((await p.read()).map(roundToHalf));
  const packable = model.params.names().filter((n) => model.params.get(n).rank === 2);
  const lora = await trainedLora(model, 12);
  const B = 2, S = TINY_TEXT_MODEL.image_size;
  const cond = textCond(model, ["seven", "a dog"]);
  const step = async (applied: PixArt["lora"]) => {
    model.lora = applied;
    const eps = model.guidedEps(cond, 2.5);
    const y = noGrad(() => tidy(() => eps(tensor(rand(B * S * S, 5), [B, 1, S, S]), 400).keep()));
    eps.dispose();
    const v = await y.read();
    y.dispose();
    return v;
  };
  try {
    const unpacked = await step([{ lora, scale: 1 }]);
    // the weights as sampling holds an exported checkpoint's: f16 (model/half_weights.ts)
    model.halfExact = new Set(packable);
    const half = useHalfWeights(model, "exact");
    assert.ok(half.length > 0 && half.every((n) => model.params.get(n).dtype === "f16"));
    const plain = await step([]);
    assert.deepEqual(await step([{ lora, scale: 0 }]), plain);
    const packed = await step([{ lora, scale: 1 }]);
    assert.ok(relErr(packed, unpacked) < 1e-6, `packed vs f32: ${relErr(packed, unpacked)}`);
    assert.ok(relErr(packed, plain) > 1e-3);
  } finally {
    model.lora = [];
    lora.dispose();
    model.dispose();
  }
});

Deno.test("a merged model computes what the model with the adapters applied does", async () => {
  const model = modelWithValues(4);
  const one = await trainedLora(model, 21, 2, 4);
  const two = await trainedLora(model, 22, 3, 1.5);
  const B = 2, S = TINY_TEXT_MODEL.image_size;
  const x = rand(B * S * S, 6);
  const cond = textCond(model, ["seven", "a dog"]);
  const forward = async (m: PixArt) => {
    const y = noGrad(() => tidy(() => m.forward(tensor(x, [B, 1, S, S]), [100, 700], cond).keep()));
    const v = await y.read();
    y.dispose();
    return v;
  };
  const contents = async (lora: Lora) => ({
    rank: lora.rank,
    alpha: lora.alpha,
    layers: [...lora.layers],
    weights: await readLoraPairs(lora),
    ema: null,
    optim: new Map(),
    base: lora.base,
    metadata: {},
    step: 0,
  });
  try {
    model.lora = [{ lora: one, scale: 0.8 }, { lora: two, scale: -0.5 }];
    const applied = await forward(model);
    const weights = await hostWeights(model.params);
    mergeLora(weights, [
      { contents: await contents(one), scale: 0.8 },
      { contents: await contents(two), scale: -0.5 },
    ]);
    const P = new Params();
    for (const [n, w] of weights) P.set(n, tensor(w, model.params.get(n).shape));
    const merged = new PixArt(model.config, P);
    const m = await forward(merged);
    merged.dispose();
    model.lora = [];
    const base = await forward(model);
    assert.ok(relErr(m, applied) < 1e-5, `merged vs applied: ${relErr(m, applied)}`);
    assert.ok(relErr(base, applied) > 1e-3, "the adapters change the output");
  } finally {
    model.lora = [];
    one.dispose();
    two.dispose();
    model.dispose();
  }
});

Deno.test("the adapter file: PEFT's names and adapter_config, read back strictly", async () => {
  const dir = await Deno.makeTempDir();
  const model = modelWithValues(5);
  const lora = await trainedLora(model, 31, 2, 4);
  try {
    const path = join(dir, "adapter.safetensors");
    await saveLora(path, lora, { step: 7 });
    const f = readSafetensors(path);
    const names = [...f.tensors.keys()].sort();
    // two blocks × (qkv, proj, q_linear, kv_linear, proj, fc1, fc2) × (A, B)
    assert.equal(names.length, 2 * 7 * 2);
    for (const n of names) {
      assert.match(
        n,
        /^base_model\.model\.blocks\.[01]\.(attn\.(qkv|proj)|cross_attn\.(q_linear|kv_linear|proj)|mlp\.fc[12])\.lora_[AB]\.weight$/,
      );
    }
    assert.deepEqual(f.tensors.get("base_model.model.blocks.1.attn.qkv.lora_A.weight")!.shape, [
      2,
      32,
    ]);
    assert.deepEqual(f.tensors.get("base_model.model.blocks.1.attn.qkv.lora_B.weight")!.shape, [
      96,
      2,
    ]);
    const ac = JSON.parse(f.metadata.adapter_config);
    assert.equal(ac.peft_type, "LORA");
    assert.equal(ac.r, 2);
    assert.equal(ac.lora_alpha, 4);
    assert.deepEqual(ac.target_modules, lora.layers.map((l) => l.path));
    assert.ok(ac.target_modules.includes("blocks.0.cross_attn.kv_linear"));
    assert.equal(f.metadata.base_model_sha256, lora.base.sha256);

    // read back: the same weights
    const back = readLora(path).contents;
    assert.equal(back.step, 7);
    const want = await readLoraPairs(lora);
    for (const l of lora.layers) assert.deepEqual(back.weights.get(l.path), want.get(l.path));
    const again = loraFromContents(back);
    assert.deepEqual(await readLoraPairs(again), want);
    again.dispose();

    // strict: a wrong shape, a missing B, a stray tensor, a model file given as an adapter
    const edit = (change: (t: Map<string, { shape: number[]; data: Float32Array }>) => void) => {
      const t = new Map(
        [...f.tensors].map(([k, e]) => [k, { shape: e.shape, data: e.data as Float32Array }]),
      );
      change(t);
      const p = join(dir, "edited.safetensors");
      writeSafetensors(p, t, f.metadata);
      return () => loraContents(readSafetensors(p), p, modelConfigFromJson);
    };
    const qkvB = "base_model.model.blocks.0.attn.qkv.lora_B.weight";
    assert.throws(
      edit((t) => t.set(qkvB, { shape: [96, 3], data: new Float32Array(288) })),
      /lora_B\.weight' is \[96,3\], the layer needs \[96,2\]/,
    );
    assert.throws(edit((t) => t.delete(qkvB)), /lora_B\.weight' is missing/);
    // EMA weights are all or none: one layer's alone is a damaged file, not the raw weights
    assert.equal(readLora(path).contents.ema, null);
    assert.throws(
      edit((t) => t.set(`ema.${qkvB}`, t.get(qkvB)!)),
      /'ema\.base_model\.model\.[a-z_.0-9]+\.lora_A\.weight' is missing/,
    );
    assert.throws(
      edit((t) => t.set("base_model.model.x_embedder.proj.lora_A.weight", t.get(qkvB)!)),
      /x_embedder\.proj\.lora_A\.weight', which is no tensor of its layers/,
    );
    assert.throws(
      edit((t) => {
        const e = t.get(qkvB)!;
        t.set(qkvB, { shape: e.shape, data: e.data.map((v, i) => i === 3 ? NaN : v) });
      }),
      /holds NaN/,
    );
    const ck = join(dir, "model.safetensors");
    await saveCheckpoint(ck, model, { step: 0 });
    assert.throws(() => readLora(ck), /not an adapter of this project/);
    assert.throws(() => readCheckpoint(path), /is a LoRA adapter, not a model: apply it/);
  } finally {
    lora.dispose();
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an adapter is refused by any other weights, with one line naming its base", async () => {
  const model = modelWithValues(6);
  const other = PixArt.init(TINY_TEXT_MODEL, 7);
  const lora = await trainedLora(model, 41);
  try {
    const mine = await weightsSha256(model.config, await hostWeights(model.params));
    const theirs = await weightsSha256(other.config, await hostWeights(other.params));
    assert.notEqual(mine, theirs);
    checkLoraBase(lora, "a.safetensors", mine, "tiny");
    assert.throws(
      () => checkLoraBase(lora, "a.safetensors", theirs, "other.safetensors"),
      (e: Error) =>
        !e.message.includes("\n") &&
        /'a\.safetensors' was trained on other weights than those of 'other\.safetensors'.*it needs 'tiny' \(ema weights/
          .test(e.message),
    );
    // the hash reads values, not the file's dtype: f16-exact weights hash the same either way
    const w = await hostWeights(model.params);
    const copy = new Map([...w].map(([k, v]) => [k, Float32Array.from(v)]));
    assert.equal(await weightsSha256(model.config, copy), mine);
    copy.get("blocks.0.mlp.fc1.bias")![0] += 1e-3;
    assert.notEqual(await weightsSha256(model.config, copy), mine);
  } finally {
    lora.dispose();
    model.dispose();
    other.dispose();
  }
});

Deno.test("lora.targets: patterns pick Linear layers; targets that name none are an error", () => {
  const c = TINY_TEXT_MODEL;
  assert.deepEqual(loraLayers(c, ["blocks.1.mlp"]).map((l) => [l.path, l.inp, l.out]), [
    ["blocks.1.mlp.fc1", 32, 128],
    ["blocks.1.mlp.fc2", 128, 32],
  ]);
  assert.equal(loraLayers(c, TARGETS).length, 14);
  // the text encoder's attention is not a block's
  assert.ok(loraLayers(c, TARGETS).every((l) => l.path.startsWith("blocks.")));
  assert.throws(() => loraLayers(c, ["x_embedder"]), /\[x_embedder\] name no Linear layer/);
  assert.throws(() => loraLayers(c, ["blocks.*.attn.qk"]), /name no Linear layer/);
  // as PEFT: only when none of them names a layer; the others are listed
  const stage1 = loraLayers({ ...c, stage: 1 }, TARGETS);
  assert.equal(stage1.length, 8);
  assert.deepEqual(stage1.unmatched, TARGETS.filter((t) => t.includes("cross_attn")));
});

Deno.test("training an adapter: only A and B get gradients; checkpointed blocks give the same", async () => {
  const model = modelWithValues(8);
  model.params.requireGrad(false);
  const lora = await trainedLora(model, 51);
  lora.params.requireGrad(true);
  model.lora = [{ lora, scale: 1 }];
  const B = 3, S = TINY_TEXT_MODEL.image_size;
  const cond = textCond(model, ["seven", "3", "two"]);
  const grads: Map<string, Float32Array>[] = [];
  const saved: number[] = [];
  try {
    for (const checkpointBlocks of [false, true]) {
      tidy(() => {
        const loss = epsLoss(
          linearSchedule(1000),
          (xt, tt) => model.forward(xt, tt, cond, { checkpointBlocks }),
          tensor(rand(B * S * S, 4), [B, 1, S, S]),
          Int32Array.of(10, 500, 990),
          new Generator(7).normal([B, 1, S, S]),
          0,
        );
        saved.push(tapeSavedBytes(lora.params.tensors()));
        backward(loss);
      });
      for (const p of model.params.tensors()) assert.equal(p.grad, null);
      const g = new Map<string, Float32Array>();
      for (const [n, p] of lora.params.map) {
        assert.ok(p.grad, `${n} has no gradient`);
        g.set(n, await p.grad.read());
        p.grad.dispose();
        p.grad = null;
      }
      grads.push(g);
    }
    assert.ok(saved[1] < saved[0], `saved ${saved}`);
    for (const [n, plain] of grads[0]) {
      assert.ok(plain.some((v) => v !== 0), n);
      assert.deepEqual(grads[1].get(n), plain, n);
    }
  } finally {
    model.lora = [];
    lora.dispose();
    model.dispose();
  }
});
