// Typed YAML configs, validated once at load against the one declaration of every key
// (io/config_schema.ts, re-exported here).

import { parse as parseYaml } from "yaml";
import { errnoText } from "./errors.ts";
import { basename, extname } from "node:path";
import { type Config, parseConfigObject, typeName } from "./config_schema.ts";

export * from "./config_schema.ts";

/** Parses and validates YAML text. */
export function parseConfig(text: string, name = "<string>"): Config {
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`config ${name}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  return parseConfigObject(doc, name);
}

/**
 * Applies "section.key=value" overrides (values parsed as YAML scalars, e.g. from a command line)
 * to a parsed document before validation.
 */
function applyOverrides(doc: unknown, overrides: readonly string[], name: string): unknown {
  const root = (doc ?? {}) as Record<string, unknown>;
  for (const o of overrides) {
    const eq = o.indexOf("=");
    const path = eq > 0 ? o.slice(0, eq).trim() : "";
    const parts = path.split(".");
    if (eq <= 0 || parts.length !== 2 || !parts[0] || !parts[1]) {
      throw new Error(`config ${name}: override '${o}' must look like section.key=value`);
    }
    let value: unknown;
    try {
      value = parseYaml(o.slice(eq + 1));
    } catch (e) {
      throw new Error(`config ${name}: override '${o}': ${(e as Error).message.split("\n")[0]}`);
    }
    const [s, k] = parts;
    if (typeof root[s] !== "object" || root[s] === null) root[s] = {};
    (root[s] as Record<string, unknown>)[k] = value;
  }
  return root;
}

/**
 * Reads, parses and validates a YAML config file; `overrides` ("train.lr=1e-3", ...) replace
 * values before validation. `underlay`: values in place of the defaults, under the file's own (a
 * LoRA run's model is its base's: the relations between keys are checked against it). Errors are
 * one line and name the file.
 */
export function loadConfig(
  path: string,
  overrides: readonly string[] = [],
  underlay: Record<string, Record<string, unknown>> = {},
): Config {
  let text: string;
  try {
    text = Deno.readTextFileSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw new Error(`config ${path} not found`);
    if (e instanceof Deno.errors.IsADirectory) {
      throw new Error(`config ${path} is a folder: pass a YAML file such as configs/tiny.yaml`);
    }
    throw new Error(`config ${path} could not be read: ${errnoText(e)}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (e) {
    throw new Error(`config ${path}: invalid YAML: ${(e as Error).message.split("\n")[0]}`);
  }
  if (doc === null || doc === undefined) return parseConfigObject(doc, path);
  if (overrides.length) {
    if (typeof doc !== "object" || Array.isArray(doc)) {
      throw new Error(`config ${path}: the top level must be a mapping, got ${typeName(doc)}`);
    }
    doc = applyOverrides(doc, overrides, path);
  }
  if (Object.keys(underlay).length && typeof doc === "object" && !Array.isArray(doc)) {
    const d = { ...(doc as Record<string, unknown>) };
    for (const [section, values] of Object.entries(underlay)) {
      const own = d[section];
      // a section that is not a mapping stays as written, for the schema's own error
      if (own === undefined || own === null) d[section] = { ...values };
      else if (typeof own === "object" && !Array.isArray(own)) d[section] = { ...values, ...own };
    }
    doc = d;
  }
  return parseConfigObject(doc, path);
}

/** The config's name for output folders: the file name without its extension. */
export function configName(path: string): string {
  const b = basename(path);
  return b.slice(0, b.length - extname(b).length);
}
