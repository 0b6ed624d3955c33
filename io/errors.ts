// Operating-system errors as a few plain words, for one-line messages that name the path
// themselves: "permission denied", not "Permission denied (os error 13): open '/x/y'".

export function errnoText(e: unknown): string {
  if (e instanceof Deno.errors.PermissionDenied) return "permission denied";
  if (e instanceof Deno.errors.NotFound) return "no such file or folder";
  if (e instanceof Deno.errors.AlreadyExists) return "it already exists";
  if (e instanceof Deno.errors.IsADirectory) return "it is a folder";
  if (e instanceof Deno.errors.NotADirectory) return "a part of the path is a file";
  const m = (e as Error)?.message ?? String(e);
  if (/no space left/i.test(m)) return "no space left on the device";
  if (/read-only file system/i.test(m)) return "the file system is read-only";
  return m.replace(/\s*\(os error \d+\).*$/s, "").replace(/:.*$/s, "").toLowerCase();
}
