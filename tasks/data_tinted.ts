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
if (!Object.hasOwn(TINTS, colour)) fail(`--colour must be one of ${Object.keys(TINTS).join(", ")}`);
const names = (a.name as string[] | undefined) ?? DEFAULT_NAMES;
try {
  const rows = readRows(join(from, "metadata.jsonl"));
  if (existsSync(out) && readdirSync(out).length && !existsSync(join(out, MARKER))) {
    fail(`--out '${out}' is a folder with files this task did not write: pass a new folder`);
  }
  // every image found and read before anything is written: a failure leaves no half-made folder
  const chosen = names.map((name) => {
    const row = rows.find((r) => r.text === name);
    if (!row) fail(`'${from}' has no image captioned '${name}'`);
    const file = String(row.file_name);
    const img = decodePng(Deno.readFileSync(join(from, file)));
    if (img.channels !== 4) fail(`'${file}' is not an RGBA PNG`);
    return { name, row, file, img, target: `images/${basename(file)}` };
  });
  // one file each: two sources of one name would leave one image under both captions
  for (const c of chosen) {
    const twin = chosen.find((d) => d.target === c.target && d.file !== c.file);
    if (twin) {
      fail(
        `'${c.file}' and '${twin.file}' share a file name: tint them in two runs, two --out folders`,
      );
    }
  }
  Deno.mkdirSync(join(out, "images"), { recursive: true });
  Deno.writeTextFileSync(join(out, MARKER), ""); // first: a rerun may then write over it
  const lines: string[] = [];
  for (const { name, row, img, target } of chosen) {
    const tinted = tintRgba(img.pixels, colour as Tint);
    Deno.writeFileSync(join(out, target), encodePng(img.width, img.height, 4, tinted));
    lines.push(JSON.stringify({ ...row, file_name: target, text: `${name} in ${colour}` }));
  }
  Deno.writeTextFileSync(join(out, "metadata.jsonl"), lines.join("\n") + "\n");
  // the source's licences travel with the derivative (CC-BY and Apache 2.0 ask for attribution)
  const licences = licenceSection(join(from, "README.md")) ??
    `The images are those of '${from}', under the licence that folder states.\n`;
  Deno.writeTextFileSync(
    join(out, "README.md"),
    `# ${names.length} images of ${basename(from)}, in ${colour}\n\n` +
      `Written by \`deno task data:tinted --from ${from} --colour ${colour}\`: each image's luma ` +
      `read along a ramp of ${colour} (io/tint.ts), its caption followed by " in ${colour}". ` +
      `The images are a derivative (recoloured) of those of '${from}' and keep their licence.\n\n` +
      `## Licences (of the source folder)\n\n${licences}`,
  );
  console.error(`wrote ${names.length} images in ${colour} to ${out}`);
} catch (e) {
  fail((e as Error).message.split("\n")[0]);
}

/** The "## Licences" section of a folder's README.md (as data:emoji writes it), or null. */
function licenceSection(path: string): string | null {
  if (!existsSync(path)) return null;
  const text = Deno.readTextFileSync(path);
  const at = text.indexOf("## Licences");
  if (at < 0) return null;
  const body = text.slice(at).split("\n").slice(1);
  const end = body.findIndex((l) => l.startsWith("## "));
  return (end < 0 ? body : body.slice(0, end)).join("\n").trim() + "\n";
}

/** metadata.jsonl's rows (each a JSON object with file_name and text). */
function readRows(path: string): Record<string, unknown>[] {
  if (!existsSync(path)) fail(`'${path}' not found: --from names an image folder with captions`);
  return Deno.readTextFileSync(path).split("\n").filter((l) => l.trim()).map((l, i) => {
    let row;
    try {
      row = JSON.parse(l);
    } catch {
      fail(`'${path}' line ${i + 1} is not JSON: each line is one object with file_name and text`);
    }
    if (typeof row?.file_name !== "string" || typeof row?.text !== "string") {
      fail(`'${path}' line ${i + 1} has no file_name and text`);
    }
    return row;
  });
}
