// What --resume says when the settings a run trained with before its step are not the config's:
// the run goes on, but no straight run of the config gives its result — a change meant for later
// steps belongs in a phase. Said alike for a model's run and an adapter's (train:lora).

import { type Config, parseConfigObject, settingsChangedBefore } from "../io/config_schema.ts";
import { LR_CURVE_KEYS, lrChangedBefore } from "./lr_schedule.ts";

/** The note for a run resumed at `step` that recorded `recorded` (its train_config), or null. */
export function resumeSettingsNote(
  recorded: string | undefined,
  cfg: Config,
  step: number,
): string | null {
  if (!recorded) return null;
  let was: Config;
  try {
    was = parseConfigObject(JSON.parse(recorded), "recorded by the run", true);
  } catch (e) {
    return `note: the run's recorded settings were not compared with the config's (${
      (e as Error).message
    })`;
  }
  const all = settingsChangedBefore(was, cfg, step);
  const ofCurve = (c: string) => LR_CURVE_KEYS.some((k) => c.startsWith(`${k} `));
  const changed = all.filter((c) => !ofCurve(c));
  // a key of the curve counts only where the rate it gives moved before the step (a decay that
  // starts later may be moved); the rate also moves with the curve's length, which the settings
  // leave out as bookkeeping. A changed key is named once, as the key, else the rate
  const lr = lrChangedBefore(was, cfg, step);
  if (lr) changed.push(...(all.some(ofCurve) ? all.filter(ofCurve) : [lr]));
  return changed.length
    ? `note: before step ${step} the run trained with other settings than the config's: ` +
      `${changed.join("; ")} — a straight run of this config differs from this one`
    : null;
}
