// The model against the independent PyTorch implementation's fixtures (tests/fixtures, README there).

import { backward, noGrad, type Tensor, tensor, tidy } from "../kernels/mod.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { type Condition, PixArt } from "../model/pixart.ts";
import { modelConfigFromJson } from "../model/checkpoint.ts";
import { Params } from "../model/params.ts";
import { maxAbs, ready } from "./helpers.ts";

await ready;

const FIX = new URL("./fixtures/", import.meta.url);

function load(name: string) {
  return readSafetensors(new URL(name, FIX));
}

function modelFrom(file: string): PixArt {
  const f = load(file);
  const config = modelConfigFromJson(f.metadata.config);
  const P = new Params({ requiresGrad: true });
  for (const [name, e] of f.tensors) {
    if (name === "pos_embed") continue;
    P.set(name, tensor(e.data as Float32Array, e.shape));
  }
  return new PixArt(config, P);
}

async function runCase(stage: 1 | 2) {
  const model = modelFrom(`tiny_stage${stage}.safetensors`);
  const io = load(`tiny_stage${stage}_io.safetensors`).tensors;
  const get = (n: string) => {
    const e = io.get(n);
    if (!e) throw new Error(`fixture has no ${n}`);
    return e;
  };
  const x = get("x");
  const t = Array.from(get("t").data);

  let cond: Condition;
  if (stage === 1) cond = { kind: "class", labels: get("labels").data as Int32Array };
  else {
    const tokens = get("tokens").data as Int32Array;
    cond = {
      kind: "text",
      tokens,
      mask: Float32Array.from(tokens, (v) => (v !== 0 ? 1 : 0)),
      drop: Uint8Array.from(get("drop").data as Int32Array),
    };
  }
  const taps = new Map<string, Float32Array>();
  const pending: [string, Tensor][] = [];
  const out = tidy(() => {
    const xt = tensor(x.data as Float32Array, x.shape);
    const y = model.forward(xt, t, cond, {
      tap: (name, v) => pending.push([name, v.keep()]),
    });
    for (const [, v] of pending) v.keep();
    const go = get("grad_output");
    backward(y, tensor(go.data as Float32Array, go.shape));
    return y;
  });
  for (const [name, v] of pending) {
    taps.set(name, v.dtype === "f32" ? await v.read() : Float32Array.from(await v.readInt()));
  }
  for (const [, v] of pending) v.dispose();
  const got = await out.read();
  out.dispose();
  const errs: string[] = [];
  const e = maxAbs(got, get("output").data);
  if (!(e <= 1e-4)) errs.push(`output max abs error ${e}`);
  for (const [name, entry] of io) {
    if (!name.startsWith("debug.")) continue;
    const key = name.slice(6);
    const v = taps.get(key);
    if (!v) {
      errs.push(`no activation '${key}' was tapped`);
      continue;
    }
    const d = maxAbs(v, Float32Array.from(entry.data));
    if (!(d <= 1e-4)) errs.push(`${name}: max abs error ${d.toExponential(2)}`);
  }
  for (const [name, p] of model.params.map) {
    const ref = io.get(`grad.${name}`);
    if (!ref) {
      errs.push(`fixture has no gradient for ${name}`);
      continue;
    }
    if (!p.grad) {
      errs.push(`${name}: no gradient`);
      continue;
    }
    const g = await p.grad.read();
    let scale = 0;
    for (const v of ref.data) scale = Math.max(scale, Math.abs(v));
    const d = maxAbs(g, ref.data) / Math.max(scale, 1e-12);
    if (!(d <= 1e-3)) errs.push(`grad.${name}: relative error ${d.toExponential(2)}`);
  }
  // the fixed position table
  const pe = load(`tiny_stage${stage}.safetensors`).tensors.get("pos_embed")!;
  const dpe = maxAbs(await model.posEmbed.read(), pe.data);
  if (!(dpe <= 1e-6)) errs.push(`pos_embed max abs error ${dpe}`);
  model.dispose();
  if (errs.length) throw new Error(`stage ${stage}:\n  ${errs.join("\n  ")}`);
}

Deno.test("stage-1 model matches the fixture: output, activations, every gradient", async () => {
  await runCase(1);
});

Deno.test("stage-2 model matches the fixture: output, text path, activations, every gradient", async () => {
  await runCase(2);
});

Deno.test("no-grad forward records nothing and gives the same output", async () => {
  const model = modelFrom("tiny_stage2.safetensors");
  const io = load("tiny_stage2_io.safetensors").tensors;
  const x = io.get("x")!;
  const tokens = io.get("tokens")!.data as Int32Array;
  const cond: Condition = {
    kind: "text",
    tokens,
    mask: Float32Array.from(tokens, (v) => (v !== 0 ? 1 : 0)),
    drop: Uint8Array.from(io.get("drop")!.data as Int32Array),
  };
  const out = noGrad(() =>
    tidy(() =>
      model.forward(tensor(x.data as Float32Array, x.shape), Array.from(io.get("t")!.data), cond)
    )
  );
  if (out.requiresGrad || out.node) throw new Error("no-grad output recorded a graph");
  const e = maxAbs(await out.read(), io.get("output")!.data);
  out.dispose();
  model.dispose();
  if (!(e <= 1e-4)) throw new Error(`output max abs error ${e}`);
});
