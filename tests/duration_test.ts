// Durations in progress lines and ETAs.

import assert from "node:assert/strict";
import { formatDuration } from "../io/duration.ts";

Deno.test("durations print as seconds, minutes and seconds, or hours and minutes", () => {
  assert.equal(formatDuration(7.4), "7s");
  assert.equal(formatDuration(59.6), "1m00s");
  assert.equal(formatDuration(185), "3m05s");
  assert.equal(formatDuration(3600 * 2 + 14 * 60 + 59), "2h14m");
  assert.equal(formatDuration(Infinity), "?");
  assert.equal(formatDuration(NaN), "?");
});
