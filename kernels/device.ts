// The one place that acquires the WebGPU adapter and device. Everything else calls `device()`
// after `initDevice()` has resolved.

export interface DeviceInfo {
  adapter: string;
  fallback: boolean;
  features: string[];
  timestampQuery: boolean;
  shaderF16: boolean;
  /** subgroup builtins in WGSL (`enable subgroups;`): the matmul's subgroup variant needs them */
  subgroups: boolean;
  /** the largest buffer a kernel may bind: min(maxStorageBufferBindingSize, maxBufferSize) */
  bufferLimit: number;
  /** how many storage buffers one kernel may bind (maxStorageBuffersPerShaderStage; WebGPU
   * guarantees 8) */
  storageBuffers: number;
  /** how many workgroups a dispatch may have in each dimension (maxComputeWorkgroupsPerDimension) */
  workgroupsPerDimension: number;
}

let current: GPUDevice | null = null;
let info: DeviceInfo | null = null;
let lostReason: string | null = null;
const lostListeners: ((reason: string) => void)[] = [];
const uncaptured: string[] = [];
let pending: Promise<GPUDevice> | null = null;

const HOW_TO_GET_ONE = "install a GPU driver, or on a machine without a GPU Mesa's CPU driver " +
  "(apt-get install mesa-vulkan-drivers), then run Deno 2 with WebGPU enabled";

/** Acquires the adapter and device once; later calls return the same device. */
export function initDevice(): Promise<GPUDevice> {
  if (current) return Promise.resolve(current);
  pending ??= acquire();
  return pending;
}

async function acquire(): Promise<GPUDevice> {
  const gpu = (globalThis.navigator as Navigator | undefined)?.gpu;
  if (!gpu) throw new Error(`WebGPU is not available (no navigator.gpu): ${HOW_TO_GET_ONE}`);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) throw new Error(`no WebGPU adapter found: ${HOW_TO_GET_ONE}`);
  const wanted: GPUFeatureName[] = ["shader-f16", "timestamp-query", "subgroups"];
  const requiredFeatures = wanted.filter((f) => adapter.features.has(f));
  const l = adapter.limits;
  const dev = await adapter.requestDevice({
    requiredFeatures,
    requiredLimits: {
      maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
      maxBufferSize: l.maxBufferSize,
      maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
      maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
      maxComputeWorkgroupSizeY: l.maxComputeWorkgroupSizeY,
      maxStorageBuffersPerShaderStage: l.maxStorageBuffersPerShaderStage,
      maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
    },
  });
  dev.lost.then((e) => {
    lostReason = `${e.reason}: ${e.message}`;
    for (const f of lostListeners.splice(0)) f(lostReason);
  });
  dev.addEventListener("uncapturederror", (e) => {
    // Errors outside an error scope are reported at the next sync or read (the labels of the
    // pipelines and bind groups in the message name the kernel).
    uncaptured.push(`WebGPU error: ${(e as GPUUncapturedErrorEvent).error.message}`);
  });
  const ai = adapter.info;
  info = {
    adapter: ai.description || [ai.vendor, ai.architecture, ai.device].filter(Boolean).join(" "),
    fallback: (ai as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter ?? false,
    features: [...dev.features],
    timestampQuery: dev.features.has("timestamp-query"),
    shaderF16: dev.features.has("shader-f16"),
    subgroups: dev.features.has("subgroups"),
    bufferLimit: Math.min(dev.limits.maxStorageBufferBindingSize, dev.limits.maxBufferSize),
    storageBuffers: dev.limits.maxStorageBuffersPerShaderStage,
    workgroupsPerDimension: dev.limits.maxComputeWorkgroupsPerDimension,
  };
  current = dev;
  return dev;
}

/** The device; throws if `initDevice()` has not resolved or the device was lost. */
export function device(): GPUDevice {
  if (!current) throw new Error("WebGPU device not initialised: await initDevice() first");
  checkDevice();
  return current;
}

export function deviceInfo(): DeviceInfo {
  if (!info) throw new Error("WebGPU device not initialised: await initDevice() first");
  return info;
}

/**
 * Why the device was lost ("unknown: …", "destroyed: …"), or null while it works. A lost device
 * stays lost: every later call into the engine throws.
 */
export function deviceLost(): string | null {
  return lostReason;
}

/** Calls `f` with the reason once the device is lost (at once if it already is). */
export function onDeviceLost(f: (reason: string) => void): void {
  if (lostReason) f(lostReason);
  else lostListeners.push(f);
}

/** Throws if the device was lost, or reported an error no scope caught since the last check. */
export function checkDevice(): void {
  if (lostReason) throw new Error(`WebGPU device lost: ${lostReason}`);
  if (uncaptured.length) throw new Error(uncaptured.splice(0).join("; "));
}
