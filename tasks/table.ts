// Tables as the tasks print them: Markdown, so they paste into the README unchanged.

/** A share as a percentage with one decimal ("97.3%"). */
export function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}

/** A Markdown table, columns padded to their widest cell. */
export function markdown(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]) => `| ${r.map((x, i) => x.padEnd(w[i])).join(" | ")} |`;
  return [line(head), `|${w.map((n) => "-".repeat(n + 2)).join("|")}|`, ...rows.map(line)].join(
    "\n",
  );
}
