// deno task data:tinted — a small image folder for the LoRA demo (README "Fine-tune with LoRA"):
// chosen images of an image folder, recoloured in one hue (io/tint.ts), captioned
// "<caption> in <colour>". From the emoji folder it makes emoji in a colour they do not come in.

import { existsSync, readdirSync } from "node:fs";
import { basename, join } from "node:path";
import { decodePng, encodePng } from "../io/png.ts";
import { type Tint, tintRgba, TINTS } from "../io/tint.ts";
import { fail, parseCli } from "./cli.ts";

/** The twelve emoji of the demo: drawn well enough by the emoji model to be told apart. */
const DEFAULT_NAMES = [
  "grinning face",
  "face with tears of joy",
  "red heart",
  "dog face",
  "sunflower",
  "spouting whale",
  "slice of pizza",
  "birthday cake",
  "trophy",
  "rocket",
  "stop sign",
  "warning sign",
];

const USAGE = `
Writes a small image folder for fine-tuning: images of another folder with captions
(metadata.jsonl, as deno task data:emoji writes), recoloured in one hue and captioned
"<caption> in <colour>" — emoji in a colour they do not come in, for a LoRA adapter to learn.

  deno task data:tinted --from data/emoji --out data/emoji-blue [--colour blue] [--name TEXT …]

  --from DIR      the image folder to take images from (PNG, with metadata.jsonl)
  --out DIR       the folder to write: new, empty, or one this task wrote
  --colour C      ${Object.keys(TINTS).join(", ")} (default blue)
  --name TEXT     the caption of an image to take (repeatable; default the twelve of the demo:
                  ${DEFAULT_NAMES.join(", ")})
`;

const MARKER = ".pixart-tinted-set";

const a = parseCli(Deno.args, {
  from: { type: "string" },
  out: { type: "string" },
  colour: { type: "string" },
  name: { type: "string", multiple: true },
}, USAGE);
if (!a.from) fail("--from DIR is required: an image folder with metadata.jsonl (data/emoji)");
if (!a.out) fail("--out DIR is required: the folder to write (e.g. data/emoji-blue)");
const from = a.from as string, out = a.out as string;
const colour = (a.colour as string | undefined) ?? "blue";
if (!(colour in TINTS)) fail(`--colour must be one of ${Object.keys(TINTS).join(", ")}`);
const names = (a.name as string[] | undefined) ?? DEFAULT_NAMES;
try {
  const rows = readRows(join(from, "metadata.jsonl"));
  if (existsSync(out) && readdirSync(out).length && !existsSync(join(out, MARKER))) {
    fail(`--out '${out}' is a folder with files this task did not write: pass a new folder`);
  }
  Deno.mkdirSync(join(out, "images"), { recursive: true });
  const lines: string[] = [];
  for (const name of names) {
    const row = rows.find((r) => r.text === name);
    if (!row) fail(`'${from}' has no image captioned '${name}'`);
    const file = String(row.file_name);
    const img = decodePng(Deno.readFileSync(join(from, file)));
    if (img.channels !== 4) fail(`'${file}' is not an RGBA PNG`);
    const tinted = tintRgba(img.pixels, colour as Tint);
    const target = `images/${basename(file)}`;
    Deno.writeFileSync(join(out, target), encodePng(img.width, img.height, 4, tinted));
    lines.push(JSON.stringify({ ...row, file_name: target, text: `${name} in ${colour}` }));
  }
  Deno.writeTextFileSync(join(out, "metadata.jsonl"), lines.join("\n") + "\n");
  Deno.writeTextFileSync(
    join(out, "README.md"),
    `# ${names.length} images of ${basename(from)}, in ${colour}\n\n` +
      `Written by \`deno task data:tinted --from ${from} --colour ${colour}\`: each image's luma ` +
      `read along a ramp of ${colour} (io/tint.ts), its caption followed by " in ${colour}". ` +
      `The images are a derivative of those of '${from}' and keep their licence (see its ` +
      `README.md).\n`,
  );
  Deno.writeTextFileSync(join(out, MARKER), "");
  console.error(`wrote ${names.length} images in ${colour} to ${out}`);
} catch (e) {
  fail((e as Error).message.split("\n")[0]);
}

/** metadata.jsonl's rows (each a JSON object with file_name and text). */
function readRows(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) fail(`'${path}' not found: --from names an image folder with captions`);
  return Deno.readTextFileSync(path).split("\n").filter((l) => l.trim()).map((l, i) => {
    const row = JSON.parse(l);
    if (typeof row?.file_name !== "string" || typeof row?.text !== "string") {
      fail(`'${path}' line ${i + 1} has no file_name and text`);
    }
    return row;
  });
}
