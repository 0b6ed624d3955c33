// The user's cache folder for this project, the one place for what it remembers between runs (the
// kernel variants an adapter chose, decoded image folders, evaluation classifiers trained on the
// user's data): $PIXART_CACHE_DIR, else $XDG_CACHE_HOME/pixart-webgpu, else
// ~/.cache/pixart-webgpu; null without a file system (a web page) or any of these variables.

/**
 * The few host operations the engine's caches use, typed here rather than through Deno's global
 * so that the web page's build (DOM types only) type-checks the same modules; null in a browser.
 */
export interface HostFs {
  env: { get(name: string): string | undefined };
  pid: number;
  readTextFileSync(path: string): string;
  writeTextFileSync(path: string, text: string): void;
  mkdirSync(path: string, options?: { recursive?: boolean }): void;
  renameSync(from: string, to: string): void;
}

export const hostFs: HostFs | null = (globalThis as { Deno?: HostFs }).Deno ?? null;

/** A variable of the environment, or undefined (no environment, or no permission to read it). */
export function readEnv(name: string): string | undefined {
  try {
    return hostFs?.env.get(name);
  } catch {
    return undefined;
  }
}

/** The cache folder; `env` reads a variable (tests pass their own). */
export function userCacheDir(env: (name: string) => string | undefined = readEnv): string | null {
  const get = (name: string) => env(name) || undefined; // set but empty counts as unset
  const own = get("PIXART_CACHE_DIR");
  if (own) return own;
  const xdg = get("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/pixart-webgpu`;
  const home = get("HOME") ?? get("USERPROFILE");
  return home ? `${home}/.cache/pixart-webgpu` : null;
}
