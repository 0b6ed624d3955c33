import assert from "node:assert/strict";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { trimTrainingLog } from "../io/train_log.ts";

Deno.test("trimTrainingLog drops the records after the resumed step, keeps the rest in order", () => {
  const dir = Deno.makeTempDirSync();
  const path = join(dir, "train-log.jsonl");
  const recs = [
    { step: 50, loss: 0.1 },
    { step: 100, loss: 0.09 },
    { step: 100, eval: { accuracy: 0.5 } },
    { step: 150, loss: 0.08 },
    { step: 200, loss: 0.07 },
  ];
  writeFileSync(path, recs.map((r) => JSON.stringify(r) + "\n").join("") + "not json\n");
  assert.equal(trimTrainingLog(path, 200), 0); // nothing after 200: the file is left alone
  assert.equal(trimTrainingLog(path, 100), 2);
  const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
  assert.deepEqual(lines, [...recs.slice(0, 3).map((r) => JSON.stringify(r)), "not json"]);
  assert.equal(trimTrainingLog(join(dir, "missing.jsonl"), 0), 0);
  Deno.removeSync(dir, { recursive: true });
});
