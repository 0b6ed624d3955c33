// Training on an image folder with captions: stage 2 draws each image with its own caption and its
// periodic evaluation scores captions (label accuracy, recall, FID); stage 3's quality filter says
// how many images it kept. On a small folder shaped like the emoji set.

import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { join } from "node:path";
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
