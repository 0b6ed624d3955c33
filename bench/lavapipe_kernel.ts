// Compiles one matmul kernel on the adapter and runs it once on zero-filled buffers, so that a CPU
// adapter (lavapipe) JIT-compiles it and stores the machine code in Mesa's shader cache, where
// bench/lavapipe_code.py reads it back. Not part of the product.
//
//   deno run -A bench/lavapipe_kernel.ts VARIANT LAYOUT [half]   e.g. reg16 NT, reg:8:8:rows NN;
//   or --wgsl FILE

import { device, initDevice } from "../kernels/mod.ts";
import { MATMUL_VARIANTS } from "../kernels/matmul.ts";
import {
  type Layout,
  type MatmulSpec,
  regWGSL,
  scalarWGSL,
  sharedWGSL,
  subgroupWGSL,
} from "../kernels/matmul_wgsl.ts";

const [variant, layout, half] = Deno.args;
let code: string;
if (variant === "--wgsl") code = Deno.readTextFileSync(layout);
else {
  // a named variant, or a register tiling "reg:TM:TN:map" (map: grid or rows)
  const [, tm, tn, map] = variant.split(":");
  const t = variant.startsWith("reg:")
    ? { kind: "reg" as const, TM: Number(tm), TN: Number(tn), map: map as "grid" | "rows" }
    : MATMUL_VARIANTS[variant];
  if (!t) throw new Error(`unknown variant ${variant}: ${Object.keys(MATMUL_VARIANTS).join(", ")}`);
  const spec: MatmulSpec = {
    layout: layout as Layout,
    half: half === "half",
    bias: false,
    epilogue: "none",
  };
  code = t.kind === "reg"
    ? regWGSL(spec, t)
    : t.kind === "shared"
    ? sharedWGSL(spec)
    : t.kind === "subgroup"
    ? subgroupWGSL(spec, t)
    : scalarWGSL(spec);
}
if (Deno.env.get("SHOW_WGSL")) console.log(code);
await initDevice();
const dev = device();
const pipeline = dev.createComputePipeline({
  layout: "auto",
  compute: { module: dev.createShaderModule({ code }), entryPoint: "main" },
});
const bindings = [
  ...code.matchAll(/@binding\((\d+)\)\s*var<(storage,\s*read_write|storage,\s*read|uniform)>/g),
];
const entries = bindings.map((m) => ({
  binding: Number(m[1]),
  resource: {
    buffer: dev.createBuffer({
      size: 1 << 16,
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
    }),
  },
}));
const enc = dev.createCommandEncoder();
const pass = enc.beginComputePass();
pass.setPipeline(pipeline);
pass.setBindGroup(0, dev.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries }));
pass.dispatchWorkgroups(1);
pass.end();
dev.queue.submit([enc.finish()]);
await dev.queue.onSubmittedWorkDone();
