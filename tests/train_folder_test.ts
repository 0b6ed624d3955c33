// Training on an image folder with captions: stage 2 draws each image with its own caption and its
// periodic evaluation scores captions (label accuracy, recall, FID); stage 3's quality filter says
// how many images it kept. On a small folder shaped like the emoji set, and on a folder of class
// subfolders run through the three shipped emoji configs as they are.

import assert from "node:assert/strict";
import { mkdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { writePng } from "../io/png.ts";
import { assertOk, describe, tinyImageFolder, train } from "./cli_harness.ts";

const dir = Deno.makeTempDirSync({ prefix: "pixart-folder-" });
const tmp = (...p: string[]) => join(dir, ...p);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("stages 2 and 3 on an image folder: caption evaluation, then the quality filter", async () => {
  const data = tinyImageFolder(tmp("folder"));
  const common = [
    "--config",
    "configs/emoji_stage2.yaml",
    "--data",
    data,
    "--batch-size",
    "4",
    "--no-grid",
    "--set",
    "model.depth=1",
    "--set",
    "data.holdout=0.25",
  ];
  const s1 = tmp("s1"), s2 = tmp("s2"), s3 = tmp("s3");
  assertOk(
    await train([
      "--stage",
      "1",
      "--out",
      s1,
      ...common,
      "--steps",
      "1",
      "--set",
      "data.label_field=category",
    ]),
  );
  const r2 = await train([
    "--stage",
    "2",
    "--out",
    s2,
    "--init-from",
    s1,
    ...common,
    "--steps",
    "2",
    "--set",
    "train.eval_every=2",
    "--set",
    "train.eval_per_prompt=1",
  ]);
  assertOk(r2);
  assert.match(
    r2.stderr,
    /step 2: label accuracy [\d.]+% \(real [\d.]+%\), category [\d.]+%, recall@1 [\d.]+%, @5/,
  );
  assert.match(r2.stderr, /step 2: .*, caption gap -?[\d.]+% at t = 500, \d+ s\n/);
  const evals = readFileSync(join(s2, "train-log.jsonl"), "utf8").trim().split("\n")
    .map((l) => JSON.parse(l)).filter((e) => e.eval);
  assert.equal(evals.length, 1, describe(r2));
  const e = evals[0].eval;
  for (const k of ["accuracy", "category_accuracy", "recall_at_1", "recall_at_5"]) {
    assert.ok(e[k] >= 0 && e[k] <= 1, `${k} = ${e[k]}`);
  }
  assert.ok(e.fid > 0 && e.fid_floor > 0, JSON.stringify(e));

  const r3 = await train([
    "--stage",
    "3",
    "--out",
    s3,
    "--init-from",
    s2,
    ...common,
    "--config",
    "configs/emoji_stage3.yaml",
    "--steps",
    "1",
    "--set",
    "data.min_score=0.2",
  ]);
  assertOk(r3);
  const m = r3.stderr.match(
    /quality filter \(data\.min_score 0\.2\): kept (\d+) of (\d+) training images/,
  );
  assert.ok(m, describe(r3));
  assert.ok(Number(m[1]) >= 1 && Number(m[1]) <= Number(m[2]));
});

/** A user's own folder: one subfolder per class, named for what it holds, six images each. */
function classSubfolders(root: string): string {
  const shapes: [string, number[], (x: number, y: number, k: number) => boolean][] = [
    ["red circle", [220, 40, 40], (x, y, k) => (x - 10) ** 2 + (y - 10) ** 2 < (4 + k) ** 2],
    [
      "blue square",
      [40, 60, 220],
      (x, y, k) => Math.abs(x - 10) < 3 + k && Math.abs(y - 10) < 3 + k,
    ],
  ];
  for (const [name, rgb, inside] of shapes) {
    mkdirSync(join(root, name), { recursive: true });
    for (let k = 0; k < 6; k++) {
      const px = new Uint8Array(20 * 20 * 3);
      for (let i = 0; i < 400; i++) {
        px.set(inside(i % 20, Math.floor(i / 20), k % 3) ? rgb : [255, 255, 255], 3 * i);
      }
      writePng(join(root, name, `${k}.png`), 20, 20, 3, px);
    }
  }
  return root;
}

Deno.test("a folder of class subfolders runs all three stages with the shipped emoji configs", async () => {
  const data = classSubfolders(tmp("shapes"));
  // the configs as shipped (their label_field names a column this folder lacks), cut to tiny sizes
  const tiny = [
    "--data",
    data,
    "--steps",
    "2",
    "--batch-size",
    "4",
    "--no-grid",
    ...["model.depth=1", "model.hidden_size=32", "model.num_heads=2", "data.holdout=0.25"]
      .flatMap((s) => ["--set", s]),
    ...["model.text_width=32", "model.text_heads=2", "model.text_depth=1"]
      .flatMap((s) => ["--set", s]),
  ];
  const evaluate = ["--set", "train.eval_every=2", "--set", "train.eval_per_prompt=1"];
  const out = (s: number) => tmp(`shapes-stage${s}`);
  const r1 = await train([
    "--stage",
    "1",
    "--config",
    "configs/emoji_stage1.yaml",
    "--out",
    out(1),
    ...tiny,
  ]);
  assertOk(r1);
  const r2 = await train([
    ...["--stage", "2", "--config", "configs/emoji_stage2.yaml", "--out", out(2)],
    ...["--init-from", out(1), ...tiny, ...evaluate],
  ]);
  assertOk(r2);
  // the configured column (subcategory) is absent: one line says what the evaluation uses
  const said = (r: typeof r2) =>
    r.stderr.split("\n").filter((l) =>
      l.endsWith(
        "has no 'subcategory' column (data.label_field): the evaluation classifier learns its " +
          "class subfolders instead",
      )
    );
  assert.equal(said(r2).length, 1, describe(r2));
  assert.match(
    r2.stderr,
    /step 2: label accuracy [\d.]+% \(real [\d.]+%\), recall@1/,
    describe(r2),
  );
  // stage 3 at twice the size, its quality filter and evaluation on the subfolders' classes
  const r3 = await train([
    ...["--stage", "3", "--config", "configs/emoji_stage3.yaml", "--out", out(3)],
    ...["--init-from", out(2), ...tiny, ...evaluate, "--set", "model.image_size=64"],
  ]);
  assertOk(r3);
  assert.ok(said(r3).length >= 1, describe(r3));
  assert.match(r3.stderr, /quality filter \(data\.min_score 0\.5\): kept \d+ of 9 training images/);
  assert.match(
    r3.stderr,
    /step 2: label accuracy [\d.]+% \(real [\d.]+%\), recall@1/,
    describe(r3),
  );
  const evals = readFileSync(join(out(3), "train-log.jsonl"), "utf8").trim().split("\n")
    .map((l) => JSON.parse(l)).filter((e) => e.eval);
  assert.equal(evals.length, 1, describe(r3));
});
