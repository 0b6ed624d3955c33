// The user's cache folder for this project, the one place for what it remembers between runs (the
// kernel variants an adapter chose, decoded image folders, evaluation classifiers trained on the
// user's data): $PIXART_CACHE_DIR, else $XDG_CACHE_HOME/pixart-webgpu, else
// ~/.cache/pixart-webgpu; null without a file system (a web page) or any of these variables.

const hasDeno = typeof (globalThis as { Deno?: unknown }).Deno !== "undefined";

function readEnv(name: string): string | undefined {
  if (!hasDeno) return undefined;
  try {
    return Deno.env.get(name);
  } catch {
    return undefined; // no env permission
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
