// model.caption_pooling: the caption's mean embedding added to the timestep embedding (Imagen's
// pooled text embedding). Its pooling against a plain-TypeScript reference and finite
// differences, and exact properties of the model that carries it.

import assert from "node:assert/strict";
import { noGrad, tensor } from "../kernels/mod.ts";
import { type ModelConfig, TEXT_MODEL_KEYS } from "../model/config.ts";
import { PixArt, pixartSpecs, pooledCaption, prepareText } from "../model/pixart.ts";
import {
  modelConfigFromJson,
  modelFromCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "../model/checkpoint.ts";
import { check } from "./gradcheck.ts";
import { rand, ready, textCond, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const POOLED = { ...TINY_TEXT_MODEL, caption_pooling: true };

Deno.test("pooledCaption: the mean of the rows the key mask keeps; backward by finite differences", async () => {
  const B = 3, L = 4, D = 5;
  // image 0 keeps two rows, image 1 one, image 2 all four (a null caption attends to every row)
  const mask = Float32Array.of(1, 1, 0, 0, 1, 0, 0, 0, 1, 1, 1, 1);
  await check({
    name: "pooledCaption",
    inputs: [{ shape: [B, L, D] }, { shape: [B, L], data: mask, noGrad: true }],
    gpu: ([y, keyMask]) => pooledCaption({ y, keyMask }),
    ref: ([y, m]) => {
      const out = new Float64Array(B * D);
      for (let b = 0; b < B; b++) {
        let n = 0;
        for (let l = 0; l < L; l++) n += m[b * L + l];
        for (let l = 0; l < L; l++) {
          if (!m[b * L + l]) continue;
          for (let d = 0; d < D; d++) out[b * D + d] += y[(b * L + l) * D + d] / n;
        }
      }
      return out;
    },
  });
});

Deno.test("caption_pooling adds exactly pooled_y_embedder's weight and bias, only to a stage-2 model", () => {
  const names = (c: typeof POOLED) => pixartSpecs(c).map((s) => `${s.name} [${s.shape}]`);
  const D = POOLED.hidden_size;
  const extra = names(POOLED).filter((n) => !names(TINY_TEXT_MODEL).includes(n));
  assert.deepEqual(extra, [
    `pooled_y_embedder.weight [${D},${D}]`,
    `pooled_y_embedder.bias [${D}]`,
  ]);
  const stage1 = { ...TINY_TEXT_MODEL, stage: 1 as const };
  assert.deepEqual(names({ ...stage1, caption_pooling: true }), names(stage1));
});

Deno.test("caption_pooling: with one seed every other parameter starts as in the model without it", async () => {
  const plain = PixArt.init(TINY_TEXT_MODEL, 3), pooled = PixArt.init(POOLED, 3);
  try {
    for (const name of plain.params.names()) {
      assert.deepEqual(
        await pooled.params.get(name).read(),
        await plain.params.get(name).read(),
        name,
      );
    }
  } finally {
    plain.dispose();
    pooled.dispose();
  }
});

Deno.test("caption_pooling: zero weights give the model without it; otherwise the caption moves adaLN", async () => {
  const plain = PixArt.init(TINY_TEXT_MODEL, 5);
  const pooled = PixArt.init(POOLED, 6);
  try {
    for (const name of plain.params.names()) pooled.params.set(name, plain.params.get(name));
    // a non-zero output layer, so that the output depends on the conditioning at all
    const D = POOLED.hidden_size;
    const out = tensor(rand(4 * D, 9, 0.5), [4, D]);
    plain.params.set("final_layer.linear.weight", out);
    pooled.params.set("final_layer.linear.weight", out);
    const zeros = new Float32Array(D * D);
    pooled.params.set("pooled_y_embedder.weight", tensor(zeros, [D, D]));
    pooled.params.set("pooled_y_embedder.bias", tensor(new Float32Array(D), [D]));
    const B = 3, x = rand(B * 64, 4);
    const cond = (m: PixArt) => textCond(m, ["seven", "3", "two"], Uint8Array.of(0, 0, 1));
    const run = (m: PixArt, viaCache = false) =>
      noGrad(() => {
        const c = cond(m);
        // the samplers' path: the caption prepared once and reused over the steps
        const text = viaCache ? prepareText(m.config, m.params, c) : undefined;
        const y = m.forward(tensor(x, [B, 1, 8, 8]), [10, 500, 900], c, { text });
        text?.dispose();
        return y;
      }).read();
    const base = await run(plain);
    assert.deepEqual(await run(pooled), base);

    pooled.params.set("pooled_y_embedder.weight", tensor(rand(D * D, 11, 0.5), [D, D]));
    const moved = await run(pooled);
    assert.deepEqual(await run(pooled, true), moved);
    assert.ok(moved.every(Number.isFinite));
    for (let b = 0; b < B; b++) {
      const slice = (v: Float32Array) => Array.from(v.subarray(b * 64, (b + 1) * 64));
      assert.notDeepEqual(
        slice(moved),
        slice(base),
        `image ${b}: the pooled caption changed nothing`,
      );
    }

    // with t_block zero, adaLN-single gives every block the same modulation whatever c is: what
    // the pooled caption still changes, it changes through the final layer's own read of c
    for (const m of [plain, pooled]) {
      m.params.set("t_block.1.weight", tensor(new Float32Array(6 * D * D), [6 * D, D]));
      m.params.set("t_block.1.bias", tensor(new Float32Array(6 * D), [6 * D]));
    }
    const viaFinal = await run(pooled);
    assert.deepEqual(await run(pooled, true), viaFinal);
    const plainFinal = await run(plain);
    for (let b = 0; b < B; b++) {
      const slice = (v: Float32Array) => Array.from(v.subarray(b * 64, (b + 1) * 64));
      assert.notDeepEqual(
        slice(viaFinal),
        slice(plainFinal),
        `image ${b}: the final layer does not read the pooled caption`,
      );
    }
  } finally {
    plain.dispose();
    pooled.dispose();
  }
});

Deno.test("a caption_pooling checkpoint saves and loads with its pooled weights; a wrong type is one line", async () => {
  const dir = await Deno.makeTempDir();
  const model = PixArt.init(POOLED, 7);
  try {
    const path = `${dir}/checkpoint-3.safetensors`;
    await saveCheckpoint(path, model, { step: 3 });
    const ck = readCheckpoint(path);
    assert.equal(ck.model.caption_pooling, true);
    const D = POOLED.hidden_size;
    assert.deepEqual(
      ck.params.get("pooled_y_embedder.weight"),
      await model.params.get("pooled_y_embedder.weight").read(),
    );
    assert.equal(ck.params.get("pooled_y_embedder.bias")?.length, D);
    // loaded strictly, it draws what the saved model draws, bit for bit
    const back = modelFromCheckpoint(ck, path);
    try {
      const x = tensor(rand(2 * 64, 3), [2, 1, 8, 8]);
      const cond = textCond(model, ["seven", "two"], Uint8Array.of(0, 1));
      const [a, b] = noGrad(() => [model, back].map((m) => m.forward(x, [100, 700], cond)));
      assert.deepEqual(await b.read(), await a.read());
    } finally {
      back.dispose();
    }
    assert.throws(
      () => modelConfigFromJson(JSON.stringify({ ...POOLED, caption_pooling: 1 }), "x.safetensors"),
      (e: Error) => e.message === "x.safetensors: config 'caption_pooling' must be a boolean",
    );
  } finally {
    model.dispose();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("TEXT_MODEL_KEYS: a stage-1 model is the same model whatever they say", () => {
  const stage1 = { ...TINY_TEXT_MODEL, stage: 1 as const };
  const specs = (c: ModelConfig) => JSON.stringify(pixartSpecs(c));
  const other: Record<string, unknown> = {
    text_len: 9,
    text_width: 24,
    text_depth: 3,
    text_heads: 4,
    text_encoder: "words",
    word_table: "elsewhere.safetensors",
    word_dim: 50,
    caption_pooling: true,
  };
  assert.deepEqual([...TEXT_MODEL_KEYS].sort(), Object.keys(other).sort());
  for (const k of TEXT_MODEL_KEYS) {
    assert.equal(specs({ ...stage1, [k]: other[k] }), specs(stage1), k);
    // while a stage-2 model's parameters change with each key that sizes them
    if (["text_len", "text_width", "text_depth", "caption_pooling"].includes(k)) {
      const stage2 = TINY_TEXT_MODEL;
      assert.notEqual(specs({ ...stage2, [k]: other[k] }), specs(stage2), `${k} (stage 2)`);
    }
  }
});
