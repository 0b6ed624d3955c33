// deno task eval --colours as a user runs it: the sampling flags it takes reach its samples
// (--guidance-interval included), and the caption evaluation's flags, which it would ignore, are
// one-line errors. A folder of Twemoji drawings (captions with the style's suffix) is measured in its
// own style; a folder without the eight hearts is a one-line error.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { tensor } from "../kernels/mod.ts";
import { DEFAULT_CONFIG } from "../io/config.ts";
import { type EmojiStyle, styleCaption } from "../io/emoji_set.ts";
import { writePng } from "../io/png.ts";
import { COLOURS } from "../eval/colour_eval.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import type { ModelConfig } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { assertOk, assertOneLineError, evaluate } from "./cli_harness.ts";
import { rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

/**
 * A folder with the colour evaluation's prototypes ("<colour> heart") and one seen circle, captioned
 * in a style as `deno task data:emoji --style` captions them.
 */
function heartsFolder(dir: string, style: EmojiStyle = "noto"): string {
  const rgb = [
    [220, 40, 40],
    [245, 140, 30],
    [250, 210, 40],
    [60, 170, 70],
    [50, 110, 220],
    [
      140,
      70,
      180,
    ],
    [120, 80, 50],
    [30, 30, 30],
  ];
  const lines: string[] = [];
  const write = (caption: string, colour: number[], k: number) => {
    const px = new Uint8Array(16 * 16 * 3).fill(255);
    for (let y = 4; y < 12; y++) for (let x = 4; x < 12; x++) px.set(colour, (y * 16 + x) * 3);
    const file = `images/${k}.png`;
    writePng(join(dir, file), 16, 16, 3, px);
    lines.push(JSON.stringify({
      file_name: file,
      text: caption,
      category: "symbols",
      subcategory: caption.split(",")[0].split(" ").at(-1),
    }));
  };
  COLOURS.forEach((c, k) => write(styleCaption(`${c} heart`, style), rgb[k], k));
  write(styleCaption("large red circle", style), rgb[0], COLOURS.length);
  Deno.writeTextFileSync(join(dir, "metadata.jsonl"), lines.join("\n") + "\n");
  return dir;
}

/** A random 16×16 colour text model whose output depends on its caption. */
async function captionModel(path: string, source: string): Promise<void> {
  const mc: ModelConfig = {
    ...TINY_TEXT_MODEL,
    image_size: 16,
    in_channels: 3,
    patch_size: 4,
    depth: 1,
    text_len: 40, // bytes: "large purple square, twitter style" is 34
  };
  const model = PixArt.init(mc, 3);
  try {
    // a fresh model's output layer and cross-attention output are zero: make the caption matter
    for (
      const [k, name] of ["final_layer.linear.weight", "blocks.0.cross_attn.proj.weight"].entries()
    ) {
      const shape = model.params.get(name).shape;
      model.params.set(name, tensor(rand(shape[0] * shape[1], 9 + k, 0.5), shape));
    }
    const cfg = structuredClone(DEFAULT_CONFIG) as Record<string, any>;
    cfg.model = { ...mc };
    cfg.data = { ...cfg.data, source };
    await saveCheckpoint(path, model, { step: 0, metadata: { train_config: JSON.stringify(cfg) } });
  } finally {
    model.dispose();
  }
}

Deno.test("eval --colours: --guidance-interval reaches the samples; caption flags are refused", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pixart-colours-" });
  try {
    const folder = heartsFolder(join(dir, "hearts"));
    const ck = join(dir, "checkpoint-0.safetensors");
    await captionModel(ck, folder);
    const base = ["--checkpoint", ck, "--colours", "--per-prompt", "1", "--sampler", "ddim"];
    const grid = async (name: string, args: string[]) => {
      const out = join(dir, name);
      const r = await evaluate([...base, "--steps", "2", ...args, "--out", out]);
      assertOk(r);
      return { png: readFileSync(join(out, "colours-novel.png")), json: join(out, "colours.json") };
    };
    const guided = await grid("guided", ["--guidance", "3"]);
    const plain = await grid("plain", ["--guidance", "1"]);
    // 2 DDIM steps sample at t = 999 and 500: an interval holding neither is the conditional
    // model alone at every step, as guidance 1 is
    const outside = await grid("outside", ["--guidance", "3", "--guidance-interval", "0,10"]);
    assert.notDeepEqual(guided.png, plain.png, "guidance changes this model's samples");
    assert.deepEqual(outside.png, plain.png);
    assert.deepEqual(JSON.parse(readFileSync(outside.json, "utf8")).guidance_interval, [0, 10]);

    for (
      const flags of [
        ["--even-classes"],
        ["--captions", "5"],
        ["--caption-gap", "500"],
        ["--label-field", "subcategory"],
      ]
    ) {
      assertOneLineError(
        await evaluate([...base, ...flags, "--out", join(dir, "refused")]),
        new RegExp(`^error: ${flags[0]} applies to the caption evaluation, not to --colours`),
      );
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("eval --colours on a Twemoji folder: its own hearts, and captions in its style", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pixart-colours-" });
  try {
    const folder = heartsFolder(join(dir, "emoji-twitter"), "twitter");
    const ck = join(dir, "checkpoint-0.safetensors");
    // trained on the Noto folder: --data names the Twemoji one, as a user of both styles does
    await captionModel(ck, heartsFolder(join(dir, "emoji"), "noto"));
    const base = ["--checkpoint", ck, "--colours", "--per-prompt", "1", "--steps", "2"];
    const out = join(dir, "out");
    assertOk(await evaluate([...base, "--data", folder, "--out", out]));
    const report = JSON.parse(readFileSync(join(out, "colours.json"), "utf8"));
    assert.equal(report.style, "twitter");
    const twitter = (c: string) => styleCaption(c, "twitter");
    assert.deepEqual(report.seen.captions, [
      ...COLOURS.slice(0, 1).flatMap((c) => [twitter(`${c} heart`), twitter("large red circle")]),
      ...COLOURS.slice(1).map((c) => twitter(`${c} heart`)),
    ]);
    // the folder's circle is read against its own hearts: the same red
    assert.equal(report.real.samples, 1);
    assert.equal(report.real.accuracy, 1);
    assert.equal(report.novel.captions.length, 6 * 8);
    assert.ok(report.novel.captions.includes(twitter("blue apple")), report.novel.captions[0]);
    assert.equal(
      readFileSync(join(out, "colours-novel.txt"), "utf8").split("\n")[0],
      twitter("red apple"),
    );

    // a folder whose captions hold no hearts in any style
    const bare = join(dir, "bare");
    Deno.mkdirSync(join(bare, "images"), { recursive: true });
    writePng(join(bare, "images/0.png"), 16, 16, 3, new Uint8Array(16 * 16 * 3).fill(200));
    Deno.writeTextFileSync(
      join(bare, "metadata.jsonl"),
      JSON.stringify({ file_name: "images/0.png", text: "grey cloud", subcategory: "sky" }) + "\n",
    );
    assertOneLineError(
      await evaluate([...base, "--data", bare, "--out", join(dir, "refused")]),
      /^error: --colours: '.*bare' has no image captioned 'red heart' \(the colour prototypes/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
