// A chosen .safetensors file, read header first as io/safetensors.ts reads one from disk: a file
// that is not one, or one longer than its tensors (a video picked by mistake), is refused before
// its bytes are read into the tab.

import { checkDataEnd, headerLength, parseHeader } from "../io/safetensors_bytes.ts";

export async function safetensorsBytes(file: File): Promise<Uint8Array> {
  const first = new Uint8Array(await file.slice(0, 8).arrayBuffer());
  const n = headerLength(first, file.size, file.name);
  const head = new Uint8Array(await file.slice(0, 8 + n).arrayBuffer());
  checkDataEnd(parseHeader(head, file.size, file.name), file.size, file.name);
  return new Uint8Array(await file.arrayBuffer());
}
