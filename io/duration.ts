// Durations as progress lines print them: "7s", "3m05s", "2h14m" (seconds dropped past an hour,
// where they are noise in an ETA).

/** `s` seconds as the shortest of "Ns", "NmSSs", "NhMMm"; "?" for a non-finite estimate. */
export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return "?";
  s = Math.round(s);
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), sec = s % 60;
  return h
    ? `${h}h${String(m).padStart(2, "0")}m`
    : m
    ? `${m}m${String(sec).padStart(2, "0")}s`
    : `${sec}s`;
}
