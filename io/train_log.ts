// The trainer's log (train-log.jsonl): one JSON record per line — a logging window's loss, or an
// evaluation — each with its `step`.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";

/**
 * Drops the records after `step`: a run resumed from an earlier checkpoint than where it stopped
 * redoes those steps, and their first records would otherwise stay beside the new ones (the loss
 * curve would double back). Written to a temporary file and renamed, so a crash keeps one whole
 * log. Returns how many records were dropped.
 */
export function trimTrainingLog(path: string, step: number): number {
  if (!existsSync(path)) return 0;
  const lines = readFileSync(path, "utf8").split("\n").filter(Boolean);
  const kept = lines.filter((l) => {
    try {
      const s = (JSON.parse(l) as { step?: unknown }).step;
      return !(typeof s === "number" && s > step);
    } catch {
      return true; // not ours to judge: keep what cannot be read
    }
  });
  if (kept.length === lines.length) return 0;
  const tmp = `${path}.tmp`;
  writeFileSync(tmp, kept.map((l) => l + "\n").join(""));
  renameSync(tmp, path);
  return lines.length - kept.length;
}
