// The evaluations of a text model whose image folder is not where its checkpoint says (a fresh
// clone before `deno task data:emoji`, or another working folder): a one-line error naming the
// folder and --data, not a message about the flags or the kind of data.

import { join } from "node:path";
import { DEFAULT_CONFIG } from "../io/config.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { PixArt } from "../model/pixart.ts";
import { assertOneLineError, evaluate, task } from "./cli_harness.ts";
import { ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

Deno.test("eval and caption-gap name a missing data folder and --data", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "pixart-missing-data-" });
  try {
    const gone = join(dir, "emoji");
    const ck = join(dir, "checkpoint-0.safetensors");
    const model = PixArt.init({ ...TINY_TEXT_MODEL, in_channels: 3 }, 1);
    const cfg = structuredClone(DEFAULT_CONFIG) as Record<string, any>;
    cfg.model = { ...model.config };
    cfg.data = { ...cfg.data, source: gone };
    await saveCheckpoint(ck, model, { step: 0, metadata: { train_config: JSON.stringify(cfg) } });
    model.dispose();

    const recorded = new RegExp(
      `^error: the checkpoint's data '${RegExp.escape(gone)}' \\(its data\\.source\\) is not ` +
        `here: pass --data FOLDER where its images are; deno task data:emoji writes the emoji ` +
        `folder$`,
    );
    const out = ["--out", join(dir, "eval")];
    for (const flags of [[], ["--even-classes"], ["--captions", "10"], ["--colours"]]) {
      assertOneLineError(await evaluate(["--checkpoint", ck, ...flags, ...out]), recorded);
    }
    assertOneLineError(await task("caption_gap", ["--checkpoint", ck]), recorded);
    assertOneLineError(
      await evaluate(["--checkpoint", ck, "--data", join(dir, "elsewhere"), ...out]),
      /^error: --data '.*elsewhere' not found: pass the folder of the images to compare with$/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
