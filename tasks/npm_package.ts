// The folder of a pinned npm package in Deno's npm cache, for the data tasks whose packages are too
// large to sit in deno.json's imports (`deno task` would install them for every test run): each
// task has its own lock file, and imports the package here at run time with a computed
// specifier, so `deno check` leaves it alone; Deno fetches it into its cache on first use.

import { dirname } from "node:path";
import { fileURLToPath } from "node:url";

/** The unpacked folder of `spec` ("name@version"), fetched into Deno's npm cache if need be. */
export async function npmPackageDir(spec: string): Promise<string> {
  const file = `npm:${spec}/package.json`;
  await import(file, { with: { type: "json" } });
  return dirname(fileURLToPath(import.meta.resolve(file)));
}
