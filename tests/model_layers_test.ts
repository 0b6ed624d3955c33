// The model's layer declarations (model/layers.ts): the parameter list read off them is the one
// the layers compute with, and a partial config takes its defaults.

import assert from "node:assert/strict";
import { backward, Generator, noGrad, tensor, tidy } from "../kernels/mod.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import { bind, Linear, module, param, specsOf } from "../model/layers.ts";
import { Params } from "../model/params.ts";
import { type Condition, PixArt, pixartLayers, pixartSpecs } from "../model/pixart.ts";
import { epsLoss } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { rand, ready, textCond, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

/** A Params whose get() records each name it is asked for. */
class RecordingParams extends Params {
  readonly asked = new Set<string>();
  override get(name: string) {
    this.asked.add(name);
    return super.get(name);
  }
}

for (const stage of [1, 2] as const) {
  Deno.test(`stage ${stage}: the layers read exactly the declared parameters`, () => {
    const c: ModelConfig = { ...TINY_TEXT_MODEL, stage };
    const specs = pixartSpecs(c);
    const names = specs.map((s) => s.name);
    assert.equal(new Set(names).size, names.length, "a parameter name is declared twice");
    const P = new RecordingParams();
    for (const s of specs) {
      P.set(
        s.name,
        tensor(new Float32Array(s.shape.reduce((a, b) => a * b)), s.shape),
      );
    }
    bind(pixartLayers(c), P);
    assert.deepEqual([...P.asked].sort(), [...names].sort());
    P.dispose();
  });

  // binding asks for every name by construction; what the forward computes with is the gradient
  Deno.test(`stage ${stage}: every declared parameter moves the loss (a non-zero gradient)`, async () => {
    const c: ModelConfig = { ...TINY_TEXT_MODEL, stage };
    const model = PixArt.init(c, 3);
    for (const name of model.params.names()) {
      const t = model.params.get(name);
      model.params.set(name, tensor(rand(t.size, 11 + name.length, 0.3), t.shape));
    }
    model.params.requireGrad(true);
    const B = 2, S = c.image_size;
    const cond: Condition = stage === 1
      ? { kind: "class", labels: Int32Array.of(3, c.num_classes) } // one dropped: the null class
      : textCond(model, ["seven", "two"], Uint8Array.of(0, 1));
    tidy(() => {
      const loss = epsLoss(
        linearSchedule(1000),
        (xt, tt) => model.forward(xt, tt, cond),
        tensor(rand(B * S * S, 4), [B, 1, S, S]),
        Int32Array.of(100, 700),
        new Generator(7).normal([B, 1, S, S]),
        0,
      );
      backward(loss);
    });
    for (const [name, p] of model.params.map) {
      assert.ok(p.grad, `${name} got no gradient`);
      const g = await p.grad.read();
      assert.ok(g.some((v) => v !== 0), `${name}'s gradient is zero: the forward does not use it`);
    }
    model.dispose();
  });
}

Deno.test("specsOf names a tree's parameters by their paths, in declaration order", () => {
  const tree = {
    t_block: module({ 1: Linear(2, 3) }, () => 0),
    blocks: [{ table: param([4], "ones") }, undefined, { table: param([5], "zeros") }],
  };
  assert.deepEqual(specsOf(tree, "net").map((s) => [s.name, s.shape]), [
    ["net.t_block.1.weight", [3, 2]],
    ["net.t_block.1.bias", [3]],
    ["net.blocks.0.table", [4]],
    ["net.blocks.2.table", [5]],
  ]);
});

Deno.test("bind: a layer computes with its tensors and carries its children as fields", async () => {
  const P = new Params();
  P.set("fc.weight", tensor(new Float32Array([1, 2, 3, 4, 5, 6]), [3, 2]));
  P.set("fc.bias", tensor(new Float32Array([0.5, 0, -1]), [3]));
  const hooked: string[] = [];
  const fc = bind(Linear(2, 3), P, "fc", { hook: (path) => hooked.push(path) });
  assert.ok(fc.weight === P.get("fc.weight") && fc.bias === P.get("fc.bias"));
  const y = noGrad(() => tidy(() => fc(tensor(new Float32Array([1, -1]), [1, 2])).keep()));
  assert.deepEqual(Array.from(await y.read()), [-0.5, -1, -2]);
  assert.deepEqual(hooked, ["fc"]);
  y.dispose();
  P.dispose();
});

Deno.test("PixArt.init fills the keys a partial config leaves out from the defaults", () => {
  const model = PixArt.init({ stage: 2, depth: 1, hidden_size: 32, num_heads: 2 }, 1);
  assert.deepEqual(model.config, {
    ...DEFAULT_MODEL,
    stage: 2,
    depth: 1,
    hidden_size: 32,
    num_heads: 2,
  });
  assert.deepEqual(model.params.names(), pixartSpecs(model.config).map((s) => s.name));
  model.dispose();
  // a given key is still checked
  assert.throws(() => PixArt.init({ depth: 0 }, 1), /'model.depth' must be >= 1/);
});
