// safetensors as bytes (https://huggingface.co/docs/safetensors): an 8-byte little-endian header
// length N, N bytes of JSON header (padded with spaces to a multiple of 8), then the tensors'
// bytes. Each header entry gives dtype, shape and data_offsets [begin, end) relative to the start
// of the data; `__metadata__` is a string → string map.
//
// Parsing converts floating-point tensors to Float32Array (F16, BF16 and F64 included) and integer
// or boolean tensors to Int32Array; `dtype` keeps what the file stored. Encoding stores
// Float32Array as F32 (or F16/BF16 on request), Int32Array as I32 and Uint8Array as U8.
//
// No file access here, so a web page can parse the bytes it fetched; io/safetensors.ts reads and
// writes files.

export type DType = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

/** A tensor as read from a file: `data` is Float32Array for float dtypes, Int32Array otherwise. */
export interface TensorEntry {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array;
}

export interface SafetensorsFile {
  tensors: Map<string, TensorEntry>;
  metadata: Record<string, string>;
}

/** The header alone: dtype, shape and byte range of every tensor, and the metadata. */
export interface SafetensorsHeader {
  tensors: Map<string, { dtype: DType; shape: number[]; offsets: [number, number] }>;
  metadata: Record<string, string>;
  /** byte offset of the data section in the file (8 + header length) */
  dataStart: number;
}

/** A tensor to write. `dtype` overrides the file-wide option for float data ("F32"/"F16"/"BF16"). */
export interface TensorInput {
  shape: readonly number[];
  data: Float32Array | Int32Array | Uint8Array;
  dtype?: DType;
}

export interface WriteOptions {
  /** storage type of Float32Array tensors (default "F32"); Int32Array is always I32 */
  dtype?: "F32" | "F16" | "BF16";
}

const DTYPE_BYTES: Record<DType, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

/** The largest header accepted (the reference implementation's limit), refused before it is read. */
export const MAX_HEADER = 100_000_000;

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

// ---------------------------------------------------------------------------------------------
// half-precision conversion

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits → number. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** x rounded to the nearest f16 value (as stored in an F16 tensor and read back). */
export function roundToHalf(x: number): number {
  return halfToFloat(floatToHalf(x));
}

/** number → IEEE binary16 bits, rounding to nearest even (overflow → ±Inf, NaN kept). */
export function floatToHalf(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0); // Inf / NaN
  const e = exp - 127 + 15;
  if (e >= 31) return sign | 0x7c00; // overflow
  if (e <= 0) {
    // subnormal half (or zero): value = mant' · 2^-24
    if (e < -10) return sign; // below half of the smallest subnormal → ±0
    mant |= 0x800000; // implicit leading one
    const shift = 14 - e; // 24-bit significand down to the subnormal grid
    const q = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    const r = rem > halfway || (rem === halfway && (q & 1)) ? q + 1 : q;
    return sign | r; // r may carry into the exponent field, which is still correct
  }
  const q = mant >>> 13;
  const rem = mant & 0x1fff;
  let h = (e << 10) | q;
  if (rem > 0x1000 || (rem === 0x1000 && (q & 1))) h += 1; // carry may bump exponent / to Inf
  return sign | h;
}

function bf16ToFloat(b: number): number {
  u32[0] = b << 16;
  return f32[0];
}

function floatToBf16(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  if ((bits & 0x7f800000) === 0x7f800000 && bits & 0x7fffff) return (bits >>> 16) | 0x40; // NaN
  const rounded = bits + 0x7fff + ((bits >>> 16) & 1);
  return (rounded >>> 16) & 0xffff;
}

// ---------------------------------------------------------------------------------------------
// reading

function fail(name: string, msg: string): never {
  throw new Error(`safetensors ${name}: ${msg}`);
}

function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/**
 * The header's byte length N from the file's first 8 bytes, checked against the file size and the
 * limit before any of the header is read.
 */
export function headerLength(first: Uint8Array, fileSize: number, name: string): number {
  if (fileSize < 8 || first.length < 8) {
    fail(name, `truncated or corrupt: file is only ${fileSize} bytes`);
  }
  const n64 = new DataView(first.buffer, first.byteOffset, 8).getBigUint64(0, true);
  if (n64 > BigInt(fileSize - 8)) {
    fail(name, `truncated or corrupt: header length ${n64} exceeds the file size ${fileSize}`);
  }
  const n = Number(n64);
  if (n > MAX_HEADER) fail(name, `corrupt: header length ${n} is over the ${MAX_HEADER} limit`);
  return n;
}

/** Throws unless the file ends where its header's last tensor does (checked before reading it). */
export function checkDataEnd(header: SafetensorsHeader, fileSize: number, name: string): void {
  let end = header.dataStart;
  for (const t of header.tensors.values()) end = Math.max(end, header.dataStart + t.offsets[1]);
  if (fileSize !== end) {
    throw new Error(
      `safetensors ${name}: ${fileSize - end} bytes past its last tensor: not a safetensors ` +
        `file, or one damaged`,
    );
  }
}

/** Parses and checks the header; `bytes` holds at least the first 8 + N bytes of the file. */
export function parseHeader(
  bytes: Uint8Array,
  fileSize: number,
  name: string,
): SafetensorsHeader {
  const n = headerLength(bytes, fileSize, name);
  if (bytes.length < 8 + n) fail(name, `truncated: header needs ${8 + n} bytes`);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(name, `corrupt header (not valid JSON): ${(e as Error).message.split("\n")[0]}`);
  }
  if (typeof header !== "object" || header === null || Array.isArray(header)) {
    fail(name, "corrupt header: not a JSON object");
  }
  const dataStart = 8 + n;
  const dataSize = fileSize - dataStart;
  const metadata: Record<string, string> = {};
  const tensors: SafetensorsHeader["tensors"] = new Map();
  const ranges: [number, number, string][] = [];
  for (const [key, value] of Object.entries(header as Record<string, unknown>)) {
    if (key === "__metadata__") {
      if (typeof value !== "object" || value === null || Array.isArray(value)) {
        fail(name, "corrupt header: __metadata__ is not an object");
      }
      for (const [mk, mv] of Object.entries(value as Record<string, unknown>)) {
        if (typeof mv !== "string") fail(name, `corrupt header: metadata '${mk}' is not a string`);
        metadata[mk] = mv;
      }
      continue;
    }
    const v = value as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    if (typeof v !== "object" || v === null) fail(name, `corrupt header: entry '${key}'`);
    const dtype = v.dtype as DType;
    if (typeof dtype !== "string" || !(dtype in DTYPE_BYTES)) {
      fail(name, `tensor '${key}' has unsupported dtype ${JSON.stringify(v.dtype)}`);
    }
    const shape = v.shape;
    if (
      !Array.isArray(shape) ||
      !shape.every((d) => Number.isSafeInteger(d) && (d as number) >= 0)
    ) {
      fail(name, `corrupt header: tensor '${key}' has a bad shape ${JSON.stringify(shape)}`);
    }
    const off = v.data_offsets;
    if (
      !Array.isArray(off) || off.length !== 2 ||
      !off.every((d) => Number.isSafeInteger(d) && (d as number) >= 0) || off[0] > off[1]
    ) {
      fail(name, `corrupt header: tensor '${key}' has bad data_offsets ${JSON.stringify(off)}`);
    }
    const [begin, end] = off as [number, number];
    const expect = numel(shape as number[]) * DTYPE_BYTES[dtype];
    if (end - begin !== expect) {
      fail(
        name,
        `corrupt header: tensor '${key}' ${dtype}[${shape}] needs ${expect} bytes, offsets give ${
          end - begin
        }`,
      );
    }
    if (end > dataSize) {
      fail(
        name,
        `truncated or corrupt: tensor '${key}' ends at data byte ${end}, past the data size ${dataSize}`,
      );
    }
    tensors.set(key, { dtype, shape: [...(shape as number[])], offsets: [begin, end] });
    ranges.push([begin, end, key]);
  }
  ranges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) {
      fail(name, `corrupt header: tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
    }
  }
  return { tensors, metadata, dataStart };
}

function decodeTensor(
  bytes: Uint8Array,
  start: number,
  dtype: DType,
  count: number,
): Float32Array | Int32Array {
  const nb = count * DTYPE_BYTES[dtype];
  // copy into an aligned buffer of its own (Uint8Array's slice: a Node Buffer's slice is a view)
  const raw = Uint8Array.prototype.slice.call(bytes, start, start + nb);
  const view = new DataView(raw.buffer);
  switch (dtype) {
    case "F32": {
      if (LITTLE_ENDIAN) return new Float32Array(raw.buffer, 0, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    }
    case "I32": {
      if (LITTLE_ENDIAN) return new Int32Array(raw.buffer, 0, count);
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt32(4 * i, true);
      return out;
    }
    case "F16": {
      const out = new Float32Array(count);
      // table of all 65536 halves would be 256 KiB; the direct formula is fast enough
      for (let i = 0; i < count; i++) out[i] = halfToFloat(view.getUint16(2 * i, true));
      return out;
    }
    case "BF16": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = bf16ToFloat(view.getUint16(2 * i, true));
      return out;
    }
    case "F64": {
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    }
    case "I64": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) {
        const v = view.getBigInt64(8 * i, true);
        if (v > 2147483647n || v < -2147483648n) {
          throw new Error(`I64 value ${v} does not fit in Int32`);
        }
        out[i] = Number(v);
      }
      return out;
    }
    case "I16": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt16(2 * i, true);
      return out;
    }
    case "I8": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = view.getInt8(i);
      return out;
    }
    case "U8":
    case "BOOL": {
      const out = new Int32Array(count);
      for (let i = 0; i < count; i++) out[i] = raw[i];
      return out;
    }
  }
}

/** Parses a whole safetensors file held in memory; `name` labels its errors. */
export function parseSafetensors(bytes: Uint8Array, name = "<bytes>"): SafetensorsFile {
  const header = parseHeader(bytes, bytes.length, name);
  const tensors = new Map<string, TensorEntry>();
  for (const [key, t] of header.tensors) {
    let data: Float32Array | Int32Array;
    try {
      data = decodeTensor(bytes, header.dataStart + t.offsets[0], t.dtype, numel(t.shape));
    } catch (e) {
      fail(name, `tensor '${key}': ${(e as Error).message}`);
    }
    tensors.set(key, { dtype: t.dtype, shape: t.shape, data });
  }
  return { tensors, metadata: header.metadata };
}

// ---------------------------------------------------------------------------------------------
// writing

interface Planned {
  name: string;
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Uint8Array;
  begin: number;
  end: number;
}

function encodeTensor(p: Planned): Uint8Array {
  const { data, dtype } = p;
  const count = data.length;
  if (data instanceof Uint8Array) return data;
  if (dtype === "F32" || dtype === "I32") {
    if (LITTLE_ENDIAN) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    const out = new Uint8Array(4 * count);
    const v = new DataView(out.buffer);
    for (let i = 0; i < count; i++) {
      if (dtype === "F32") v.setFloat32(4 * i, data[i], true);
      else v.setInt32(4 * i, data[i], true);
    }
    return out;
  }
  const out = new Uint8Array(2 * count);
  const v = new DataView(out.buffer);
  if (dtype === "F16") {
    for (let i = 0; i < count; i++) v.setUint16(2 * i, floatToHalf(data[i]), true);
  } else for (let i = 0; i < count; i++) v.setUint16(2 * i, floatToBf16(data[i]), true);
  return out;
}

function planTensors(
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  opts: WriteOptions,
): Planned[] {
  const entries = tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
  const list: Planned[] = [];
  for (const [name, t] of entries) {
    if (name === "__metadata__") {
      throw new Error(`safetensors: '__metadata__' is not a tensor name`);
    }
    const shape = [...t.shape];
    if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new Error(`safetensors: tensor '${name}' has a bad shape [${shape}]`);
    }
    if (numel(shape) !== t.data.length) {
      throw new Error(
        `safetensors: tensor '${name}' has ${t.data.length} values but shape [${shape}] needs ${
          numel(shape)
        }`,
      );
    }
    let dtype: DType;
    if (t.data instanceof Int32Array) {
      if (t.dtype !== undefined && t.dtype !== "I32") {
        throw new Error(`safetensors: tensor '${name}' is Int32Array; only I32 can be written`);
      }
      dtype = "I32";
    } else if (t.data instanceof Uint8Array) {
      if (t.dtype !== undefined && t.dtype !== "U8") {
        throw new Error(`safetensors: tensor '${name}' is Uint8Array; only U8 can be written`);
      }
      dtype = "U8";
    } else if (t.data instanceof Float32Array) {
      dtype = t.dtype ?? opts.dtype ?? "F32";
      if (dtype !== "F32" && dtype !== "F16" && dtype !== "BF16") {
        throw new Error(`safetensors: tensor '${name}': cannot write Float32Array as ${dtype}`);
      }
    } else {
      throw new Error(
        `safetensors: tensor '${name}' must be a Float32Array, Int32Array or Uint8Array`,
      );
    }
    list.push({ name, dtype, shape, data: t.data, begin: 0, end: 0 });
  }
  // Lay out the data with the widest elements first so every tensor stays aligned to its element
  // size (no holes are allowed); the header keeps the caller's order.
  const layout = list.map((p, i) => ({ p, i })).sort((a, b) =>
    DTYPE_BYTES[b.p.dtype] - DTYPE_BYTES[a.p.dtype] || a.i - b.i
  );
  let off = 0;
  for (const { p } of layout) {
    p.begin = off;
    off += p.data.length * DTYPE_BYTES[p.dtype];
    p.end = off;
  }
  return layout.map((x) => x.p);
}

function buildHeader(planned: Planned[], order: string[], metadata: Record<string, string>) {
  const obj: Record<string, unknown> = {};
  const meta = Object.entries(metadata ?? {});
  if (meta.length) {
    const m: Record<string, string> = {};
    for (const [k, v] of meta) {
      if (typeof v !== "string") {
        throw new Error(`safetensors: metadata '${k}' must be a string, got ${typeof v}`);
      }
      m[k] = v;
    }
    obj.__metadata__ = m;
  }
  const byName = new Map(planned.map((p) => [p.name, p]));
  for (const name of order) {
    const p = byName.get(name)!;
    obj[name] = { dtype: p.dtype, shape: p.shape, data_offsets: [p.begin, p.end] };
  }
  const json = new TextEncoder().encode(JSON.stringify(obj));
  const padded = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + padded).fill(0x20);
  new DataView(out.buffer).setBigUint64(0, BigInt(padded), true);
  out.set(json, 8);
  return out;
}

/** Serialises tensors and metadata to safetensors bytes in memory. */
/**
 * The bytes of a safetensors file in order: the header, then each tensor's data, encoded one at a
 * time as `data` is iterated. The tensors and metadata are checked before this returns.
 */
export function safetensorsParts(
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata: Record<string, string> = {},
  opts: WriteOptions = {},
): { header: Uint8Array; data: Iterable<Uint8Array>; byteLength: number } {
  const planned = planTensors(tensors, opts);
  const order = tensors instanceof Map ? [...tensors.keys()] : Object.keys(tensors);
  const header = buildHeader(planned, order, metadata);
  const total = planned.length ? planned[planned.length - 1].end : 0;
  const data = (function* () {
    for (const p of planned) yield encodeTensor(p);
  })();
  return { header, data, byteLength: header.length + total };
}

/** Serialises tensors and metadata to safetensors bytes in memory. */
export function encodeSafetensors(
  tensors: Map<string, TensorInput> | Record<string, TensorInput>,
  metadata: Record<string, string> = {},
  opts: WriteOptions = {},
): Uint8Array {
  const { header, data, byteLength } = safetensorsParts(tensors, metadata, opts);
  const out = new Uint8Array(byteLength);
  out.set(header);
  let at = header.length;
  for (const d of data) {
    out.set(d, at);
    at += d.length;
  }
  return out;
}
