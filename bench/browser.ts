// The page in a headless browser, for the browser test and the page's benchmark: `deno task serve`
// on a free port, and Chromium with WebGPU on (its SwiftShader adapter where no GPU is enabled).

import { existsSync } from "node:fs";
import puppeteer, { type Browser } from "puppeteer-core";

const ROOT = new URL("../", import.meta.url);
export const CHROMIUM = Deno.env.get("PIXART_CHROMIUM") ?? "/usr/bin/chromium";
/** WebGPU is off by default on Linux; root in a container has no user namespaces to sandbox with */
export const CHROMIUM_FLAGS = ["--enable-unsafe-webgpu", "--no-sandbox"];

/** `deno task serve --port 0`: the address it prints, and a way to stop it. */
export async function startServer(): Promise<{ url: string; stop: () => Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["task", "serve", "--port", "0"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // kept for the one-line error until the server listens; passed through after that
  let errors = "", started = false;
  const stderr = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({
      write: (s) =>
        void (started ? Deno.stderr.writeSync(new TextEncoder().encode(s)) : errors += s),
    }),
  );
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const stop = async () => {
    try {
      child.kill("SIGTERM");
    } catch { /* it has exited */ }
    await lines.cancel();
    await child.status;
    await stderr.catch(() => {});
  };
  let out = "";
  while (!/http:\/\/localhost:\d+\//.test(out)) {
    const { value, done } = await lines.read();
    if (done) {
      await stop();
      throw new Error(`deno task serve exited without an address: ${errors.trim()}`);
    }
    out += value;
  }
  started = true;
  return { url: out.match(/http:\/\/localhost:\d+\//)![0], stop };
}

/** Headless Chromium with `args` (CHROMIUM_FLAGS and any more); a missing browser is one line. */
export function launchChromium(args: string[] = CHROMIUM_FLAGS): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no browser at ${CHROMIUM}: install chromium (apt-get install chromium) or set ` +
        `PIXART_CHROMIUM to a Chrome or Chromium binary`,
    );
  }
  return puppeteer.launch({ executablePath: CHROMIUM, headless: true, args });
}
