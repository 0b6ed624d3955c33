// safetensors files: reading one (or only its header) and writing one atomically, through a
// temporary file in the same folder that is renamed into place, so a crash never leaves a
// half-written file. The format itself — parsing and encoding bytes — is io/safetensors_bytes.ts,
// re-exported here.

import { basename, dirname, join } from "node:path";
import { errnoText } from "./errors.ts";
import {
  checkDataEnd,
  headerLength,
  parseHeader,
  parseSafetensors,
  type SafetensorsFile,
  type SafetensorsHeader,
  safetensorsParts,
  type TensorInput,
  type WriteOptions,
} from "./safetensors_bytes.ts";

export * from "./safetensors_bytes.ts";

function readBytes(src: string | URL, what: string): Uint8Array {
  try {
    return Deno.readFileSync(src);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`${what} ${pathString(src)} not found: no such file`);
    }
    throw new Error(`${what} ${pathString(src)} could not be read: ${errnoText(e)}`);
  }
}

function pathString(p: string | URL): string {
  return p instanceof URL ? (p.protocol === "file:" ? decodeURIComponent(p.pathname) : p.href) : p;
}

/**
 * Reads a safetensors file (a path or URL, or its bytes). `name` labels errors when bytes are
 * given. Errors are one line: "checkpoint X not found: ...", "safetensors X: truncated or corrupt: ...".
 */
export function readSafetensors(src: string | URL | Uint8Array, name?: string): SafetensorsFile {
  if (src instanceof Uint8Array) return parseSafetensors(src, name);
  // the header first, bounded: a device (/dev/zero), a pipe or a file far longer than its
  // tensors is refused before its bytes are read
  const label = name ?? pathString(src);
  checkDataEnd(readSafetensorsHeader(src), Deno.statSync(src).size, label);
  return parseSafetensors(readBytes(src, "checkpoint"), label);
}

/** Reads only the header of a safetensors file (shapes, dtypes, metadata), not the tensor data. */
export function readSafetensorsHeader(path: string | URL): SafetensorsHeader {
  const label = pathString(path);
  let file: Deno.FsFile | null = null;
  try {
    // before it is opened: opening a named pipe waits for a writer
    if (Deno.statSync(path).isFile) file = Deno.openSync(path, { read: true });
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(`checkpoint ${label} not found: no such file`);
    }
    throw new Error(`checkpoint ${label} could not be read: ${errnoText(e)}`);
  }
  if (!file) {
    throw new Error(
      `checkpoint ${label}: not a regular file (a device, pipe or folder): pass a .safetensors file`,
    );
  }
  try {
    const size = file.statSync().size;
    const first = new Uint8Array(Math.min(8, size));
    readFull(file, first);
    const n = headerLength(first, size, label);
    const buf = new Uint8Array(8 + n);
    buf.set(first);
    readFull(file, buf.subarray(8));
    return parseHeader(buf, size, label);
  } finally {
    file.close();
  }
}

function readFull(file: Deno.FsFile, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    const r = file.readSync(buf.subarray(off));
    if (r === null || r === 0) throw new Error("unexpected end of file");
    off += r;
  }
}

/**
 * Writes a safetensors file atomically: the bytes go to a temporary file in the same folder
 * (created if missing), which is flushed and then renamed over `path`.
 */
export function writeSafetensors(
  path: string,
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata: Record<string, string> = {},
  opts: WriteOptions = {},
): void {
  const { header, data } = safetensorsParts(tensors, metadata, opts);
  const dir = dirname(path);
  Deno.mkdirSync(dir, { recursive: true });
  const tmp = join(
    dir,
    `.${basename(path)}.${Deno.pid}.${Math.random().toString(36).slice(2, 10)}.tmp`,
  );
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(tmp, { write: true, createNew: true });
    writeFull(file, header);
    for (const d of data) writeFull(file, d);
    file.syncSync();
    file.close();
    file = undefined;
    Deno.renameSync(tmp, path);
  } catch (e) {
    try {
      file?.close();
    } catch { /* already closed */ }
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw new Error(`could not write checkpoint ${path}: ${errnoText(e)}`);
  }
}

function writeFull(file: Deno.FsFile, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) off += file.writeSync(buf.subarray(off));
}
