// Class balance (data.balance_power): sampling weights that make rare classes drawn more often
// than their share of the data, for io/batcher.ts, and the one line that says what they do.

/** How many of `indices` each label has. */
function classCounts(labels: Int32Array, indices: Int32Array): Map<number, number> {
  const count = new Map<number, number>();
  for (const i of indices) count.set(labels[i], (count.get(labels[i]) ?? 0) + 1);
  return count;
}

/**
 * Sampling weights that even out the classes: image i weighs count(label_i)^−power among
 * `indices`, so power 0 draws every image equally often (classes as frequent as in the data) and
 * power 1 every class equally often; ½ is between (a common-class image is seen less often, a
 * rare one more, without repeating the rarest dozens of times).
 */
export function classBalanceWeights(
  labels: Int32Array,
  indices: Int32Array,
  power: number,
): Float64Array {
  const count = classCounts(labels, indices);
  return Float64Array.from(indices, (i) => count.get(labels[i])! ** -power);
}

/**
 * One line on what classBalanceWeights does: the most common and the rarest class's share of the
 * draws, before → after (a class of n images draws n·n^−power of the total weight).
 */
export function describeBalance(labels: Int32Array, indices: Int32Array, power: number): string {
  const count = classCounts(labels, indices);
  let total = 0;
  for (const n of count.values()) total += n ** (1 - power);
  const byCount = [...count.values()].sort((a, b) => b - a);
  const share = (n: number) =>
    `${percent2(n / indices.length)} → ${percent2(n ** (1 - power) / total)}`;
  const head = `class balance (data.balance_power ${power}): `;
  if (count.size === 1) return `${head}1 class, all of the draws`;
  return `${head}${count.size} classes; the most common one's share of the draws ` +
    `${share(byCount[0])}, the rarest's ${share(byCount.at(-1)!)}`;
}

/** two significant digits (a rare class's share is hundredths of a percent), no exponent */
const percent2 = (x: number) => `${Number((100 * x).toPrecision(2))}%`;
