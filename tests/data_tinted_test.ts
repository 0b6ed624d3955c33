// deno task data:tinted: a failure leaves nothing behind (so a corrected rerun runs), and the
// source folder's licences travel with the recoloured images.

import assert from "node:assert/strict";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { encodePng } from "../io/png.ts";
import { assertOk, assertOneLineError, task } from "./cli_harness.ts";

const dir = Deno.makeTempDirSync({ prefix: "pixart-tinted-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("data:tinted: a missing name writes nothing; the licences go with the images", async () => {
  const from = join(dir, "src");
  Deno.mkdirSync(join(from, "img"), { recursive: true });
  const rgba = new Uint8Array(4 * 4 * 4).fill(200);
  writeFileSync(join(from, "img", "heart.png"), encodePng(4, 4, 4, rgba));
  writeFileSync(
    join(from, "metadata.jsonl"),
    JSON.stringify({ file_name: "img/heart.png", text: "red heart" }) + "\n",
  );
  writeFileSync(
    join(from, "README.md"),
    "# src\n\n## Licences\n\n- Images: Example Emoji, CC-BY 4.0 (Example Inc.).\n\n## Other\n\nx\n",
  );
  const out = join(dir, "blue");
  const tinted = (...names: string[]) =>
    task("data_tinted", ["--from", from, "--out", out, ...names.flatMap((n) => ["--name", n])]);
  assertOneLineError(
    await tinted("red heart", "typo"),
    /^error: '.*src' has no image captioned 'typo'$/,
  );
  assert.ok(!existsSync(out), "nothing was written");
  assertOk(await tinted("red heart"));
  assertOk(await tinted("red heart")); // its own folder: a rerun writes over it
  const readme = readFileSync(join(out, "README.md"), "utf8");
  assert.match(
    readme,
    /## Licences \(of the source folder\)\n\n- Images: Example Emoji, CC-BY 4\.0/,
  );
  assert.doesNotMatch(readme, /## Other/);
  const rows = readFileSync(join(out, "metadata.jsonl"), "utf8").trim().split("\n");
  assert.deepEqual(rows.map((r) => JSON.parse(r).text), ["red heart in blue"]);

  // a colour name that is an object's inherited key, two files of one name, and a line that is
  // not JSON: one line each, and nothing written
  const out2 = join(dir, "other");
  assertOneLineError(
    await task("data_tinted", ["--from", from, "--out", out2, "--colour", "toString"]),
    /^error: --colour must be one of /,
  );
  Deno.mkdirSync(join(from, "img2"));
  writeFileSync(join(from, "img2", "heart.png"), encodePng(4, 4, 4, rgba));
  writeFileSync(
    join(from, "metadata.jsonl"),
    JSON.stringify({ file_name: "img/heart.png", text: "red heart" }) + "\n" +
      JSON.stringify({ file_name: "img2/heart.png", text: "pink heart" }) + "\n",
  );
  const both = ["--name", "red heart", "--name", "pink heart"];
  assertOneLineError(
    await task("data_tinted", ["--from", from, "--out", out2, ...both]),
    /^error: 'img\/heart\.png' and 'img2\/heart\.png' share a file name: tint them in two runs, two --out folders$/,
  );
  writeFileSync(join(from, "metadata.jsonl"), '{"file_name": "img/heart.png"\n');
  assertOneLineError(
    await task("data_tinted", ["--from", from, "--out", out2]),
    /^error: '.*metadata\.jsonl' line 1 is not JSON: each line is one object with file_name and text$/,
  );
  assert.ok(!existsSync(out2), "nothing was written");
});
