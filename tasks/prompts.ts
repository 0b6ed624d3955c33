// The prompts text file written beside every grid: 8 per line in grid order.

/** Prompts in rows of `cols`, separated by a space, or by " | " when a prompt has a space. */
export function promptsText(prompts: readonly string[], cols = 8): string {
  const sep = prompts.some((p) => /\s/.test(p)) ? " | " : " ";
  const lines: string[] = [];
  for (let i = 0; i < prompts.length; i += cols) lines.push(prompts.slice(i, i + cols).join(sep));
  return lines.join("\n") + "\n";
}
