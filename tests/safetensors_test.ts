import assert from "node:assert/strict";
import { existsSync } from "node:fs";

const assertEquals = (a: unknown, b: unknown, msg?: string) => assert.deepEqual(a, b, msg);
/** Runs fn, expects an Error whose message contains `part`; returns it. */
function assertThrows(fn: () => unknown, _cls?: unknown, part = ""): Error {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof Error);
    assert.ok(e.message.includes(part), `'${e.message}' lacks '${part}'`);
    return e;
  }
  throw new Error(`expected an error containing '${part}'`);
}
import {
  encodeSafetensors,
  floatToHalf,
  halfToFloat,
  readSafetensors,
  readSafetensorsHeader,
  writeSafetensors,
} from "../io/safetensors.ts";

const FIXTURE = new URL("./fixtures/tiny_stage2.safetensors", import.meta.url);
const fixturePath = decodeURIComponent(FIXTURE.pathname);

function tmpDir(): string {
  return Deno.makeTempDirSync({ prefix: "st_test_" });
}

Deno.test("reads the tiny stage-2 fixture", () => {
  const f = readSafetensors(FIXTURE);
  const pos = f.tensors.get("pos_embed")!;
  assertEquals(pos.dtype, "F32");
  assertEquals(pos.shape, [1, 16, 64]);
  assert(pos.data instanceof Float32Array && pos.data.length === 16 * 64);
  assertEquals(f.tensors.get("x_embedder.proj.weight")!.shape, [64, 1, 4, 4]);
  assertEquals(f.tensors.get("blocks.0.attn.qkv.weight")!.shape, [192, 64]);
  assertEquals(f.tensors.get("blocks.1.scale_shift_table")!.shape, [6, 64]);
  assertEquals(f.tensors.get("text_encoder.token_embedding.weight")!.shape, [257, 32]);
  assertEquals(f.tensors.get("y_embedder.y_embedding")!.shape, [8, 32]);
  const cfg = JSON.parse(f.metadata.config);
  assertEquals(cfg.hidden_size, 64);
  assertEquals(cfg.stage, 2);
  assertEquals(f.metadata.step, "0");
  // pos_embed token 0 (row 0, column 0): sin(0) = 0 and cos(0) = 1 in both halves
  assertEquals(pos.data[0], 0);
  assertEquals(pos.data[16], 1);
  // parameter count from the README (pos_embed is not a parameter)
  let params = 0;
  for (const [k, t] of f.tensors) if (k !== "pos_embed") params += t.data.length;
  assertEquals(params, 209104);
  // header-only read agrees
  const h = readSafetensorsHeader(fixturePath);
  assertEquals(h.tensors.size, f.tensors.size);
  assertEquals(h.tensors.get("pos_embed")!.shape, [1, 16, 64]);
  assertEquals(h.metadata.config, f.metadata.config);
});

Deno.test("F32 / I32 round trip, header aligned to 8, atomic write", () => {
  const dir = tmpDir();
  const path = `${dir}/sub/ck.safetensors`;
  const a = new Float32Array([1.5, -2.25, 3e-8, 1e30, -0, Infinity]);
  const b = Int32Array.from([0, -1, 2147483647, -2147483648]);
  const scalar = new Float32Array([42]);
  writeSafetensors(path, {
    a: { shape: [2, 3], data: a },
    labels: { shape: [4], data: b },
    s: { shape: [], data: scalar },
  }, { step: "7", config: JSON.stringify({ d: 1 }) });
  assertEquals(Deno.readDirSync(`${dir}/sub`).toArray().map((e) => e.name), ["ck.safetensors"]);
  const bytes = Deno.readFileSync(path);
  const n = Number(new DataView(bytes.buffer).getBigUint64(0, true));
  assertEquals(n % 8, 0);
  const f = readSafetensors(path);
  assertEquals([...f.tensors.keys()], ["a", "labels", "s"]);
  assertEquals(f.tensors.get("a")!.shape, [2, 3]);
  assertEquals([...f.tensors.get("a")!.data], [...a]);
  assert(f.tensors.get("labels")!.data instanceof Int32Array);
  assertEquals(f.tensors.get("labels")!.dtype, "I32");
  assertEquals([...f.tensors.get("labels")!.data], [...b]);
  assertEquals(f.tensors.get("s")!.shape, []);
  assertEquals(f.tensors.get("s")!.data[0], 42);
  assertEquals(f.metadata, { step: "7", config: '{"d":1}' });
  // overwrite in place
  writeSafetensors(path, new Map([["a", { shape: [1], data: new Float32Array([9]) }]]));
  assertEquals(readSafetensors(path).tensors.get("a")!.data[0], 9);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("F16 round trip and half conversion", () => {
  // exact halves survive, others round to nearest even
  const vals = [0, 1, -1, 0.5, 65504, -65504, 2 ** -24, 2 ** -14, 1 / 3, 0.1, 70000, 1e-9];
  for (const v of vals) {
    const expect = Math.f16round ? Math.f16round(v) : undefined;
    const got = halfToFloat(floatToHalf(v));
    if (expect !== undefined) assertEquals(got, expect, `f16(${v})`);
  }
  assertEquals(halfToFloat(floatToHalf(70000)), Infinity);
  assert(Number.isNaN(halfToFloat(floatToHalf(NaN))));
  // exhaustive: every finite half converts back to itself
  for (let h = 0; h < 0x10000; h++) {
    if ((h & 0x7c00) === 0x7c00) continue;
    assertEquals(floatToHalf(halfToFloat(h)), h);
  }
  // random values against Math.f16round when available
  let s = 12345;
  const data = new Float32Array(1001);
  for (let i = 0; i < data.length; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    data[i] = ((s / 2 ** 32) * 2 - 1) * 10 ** ((i % 9) - 5);
  }
  const ints = Int32Array.from([3, 1, 4]);
  const bytes = encodeSafetensors(
    { w: { shape: [7, 143], data }, tok: { shape: [3], data: ints } },
    {},
    { dtype: "F16" },
  );
  const f = readSafetensors(bytes);
  const w = f.tensors.get("w")!;
  assertEquals(w.dtype, "F16");
  assert(w.data instanceof Float32Array);
  let maxRel = 0;
  for (let i = 0; i < data.length; i++) {
    if (Math.f16round) assertEquals(w.data[i], Math.f16round(data[i]));
    if (Math.abs(data[i]) > 1e-4) {
      maxRel = Math.max(maxRel, Math.abs(w.data[i] - data[i]) / Math.abs(data[i]));
    }
  }
  assert(maxRel <= 2 ** -11, `relative error ${maxRel}`);
  assertEquals([...f.tensors.get("tok")!.data], [3, 1, 4]);
  // the I32 tensor comes first in the data so both stay aligned (no holes)
  const h = JSON.parse(
    new TextDecoder().decode(
      bytes.subarray(8, 8 + Number(new DataView(bytes.buffer).getBigUint64(0, true))),
    ),
  );
  assertEquals(h.tok.data_offsets, [0, 12]);
  assertEquals(h.w.data_offsets, [12, 12 + 2 * 1001]);
});

Deno.test("one-line errors: missing, truncated, corrupt", () => {
  assertThrows(
    () => readSafetensors("/nonexistent/ck.safetensors"),
    Error,
    "checkpoint /nonexistent/ck.safetensors not found",
  );
  const good = encodeSafetensors({ a: { shape: [4], data: new Float32Array(4) } }, { k: "v" });
  const oneLine = (fn: () => unknown, part: string) => {
    const e = assertThrows(fn) as Error;
    assert(e.message.includes(part), `'${e.message}' lacks '${part}'`);
    assert(!e.message.includes("\n"), `multi-line: ${e.message}`);
    return e;
  };
  // data cut short
  oneLine(
    () => readSafetensors(good.subarray(0, good.length - 3), "cut.safetensors"),
    "cut.safetensors",
  );
  oneLine(() => readSafetensors(good.subarray(0, good.length - 3), "cut.safetensors"), "truncated");
  // header cut short
  oneLine(() => readSafetensors(good.subarray(0, 20), "h.safetensors"), "header length");
  oneLine(() => readSafetensors(good.subarray(0, 5), "h.safetensors"), "truncated");
  // bad JSON
  const bad = good.slice();
  bad[8] = 0x5b; // '['
  bad[9] = 0x7d; // '}'
  oneLine(() => readSafetensors(bad, "bad.safetensors"), "not valid JSON");
  // offsets out of range (on disk, so the file is named)
  const dir = tmpDir();
  const p = `${dir}/trunc.safetensors`;
  writeSafetensors(p, { a: { shape: [100], data: new Float32Array(100) } });
  const all = Deno.readFileSync(p);
  Deno.writeFileSync(p, all.subarray(0, all.length - 40));
  const e = oneLine(() => readSafetensors(p), p);
  assert(e.message.includes("truncated"));
  // a file far longer than its tensors (sparse: nothing is read past the header), and a device,
  // are refused before their bytes are read
  const long = `${dir}/long.safetensors`;
  Deno.writeFileSync(long, good);
  Deno.truncateSync(long, 4 * 2 ** 30);
  oneLine(() => readSafetensors(long), `${4 * 2 ** 30 - good.length} bytes past its last tensor`);
  if (existsSync("/dev/zero")) oneLine(() => readSafetensors("/dev/zero"), "not a regular file");
  // a named pipe is refused before it is opened (opening one waits for a writer)
  const fifo = `${dir}/pipe.safetensors`;
  if (new Deno.Command("mkfifo", { args: [fifo] }).outputSync().success) {
    oneLine(() => readSafetensors(fifo), "not a regular file (a device, pipe or folder)");
  }
  Deno.removeSync(dir, { recursive: true });
  // writer checks
  assertThrows(
    () => encodeSafetensors({ a: { shape: [3], data: new Float32Array(4) } }),
    Error,
    "shape [3] needs 3",
  );
});

Deno.test("Uint8Array tensors are written as U8 and read back as their values", () => {
  const px = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => (i * 37) % 256);
  const bytes = encodeSafetensors({
    images: { shape: [2, 3, 3], data: px },
    labels: { shape: [2], data: new Uint8Array([7, 1]) },
    scale: { shape: [1], data: new Float32Array([0.5]) },
  });
  const f = readSafetensors(bytes, "u8");
  const images = f.tensors.get("images")!;
  assertEquals(images.dtype, "U8");
  assertEquals(images.shape, [2, 3, 3]);
  assertEquals(Array.from(images.data), Array.from(px));
  assertEquals(Array.from(f.tensors.get("labels")!.data), [7, 1]);
  assertEquals(f.tensors.get("scale")!.data[0], 0.5);
  assertThrows(
    () => encodeSafetensors({ x: { shape: [1], data: new Uint8Array(1), dtype: "I8" } }),
    Error,
    "only U8",
  );
});

Deno.test("bytes in a Node Buffer parse as the same bytes in a Uint8Array", async () => {
  const { Buffer } = await import("node:buffer");
  const bytes = encodeSafetensors({ w: { shape: [3], data: new Float32Array([1, 2, 3]) } });
  // a Buffer that is a view into a larger one, whose slice() is a view too
  const big = Buffer.alloc(bytes.length + 5);
  big.set(bytes, 5);
  const f = readSafetensors(big.subarray(5), "buffer");
  assertEquals(Array.from(f.tensors.get("w")!.data), [1, 2, 3]);
});
