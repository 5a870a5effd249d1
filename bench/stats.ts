/** What every bench prints: per figure, its count, min, median and max in seconds, as one table. */
import { table } from "../runbooks/format.ts";

export function stats(values: number[]): { n: number; min: number; median: number; max: number } {
  const sorted = [...values].sort((a, b) => a - b);
  return { n: sorted.length, min: sorted[0]!, median: sorted[Math.floor((sorted.length - 1) / 2)]!, max: sorted.at(-1)! };
}

/** `title | N | MIN | MEDIAN | MAX`, one row per labelled sample list. */
export function statsTable(title: string, rows: Array<[label: string, seconds: number[]]>): string {
  const s = (seconds: number) => `${seconds.toFixed(3)} s`;
  return table(
    [title, "N", "MIN", "MEDIAN", "MAX"],
    rows.map(([label, values]) => {
      const stat = stats(values);
      return [label, String(stat.n), s(stat.min), s(stat.median), s(stat.max)];
    }),
  );
}
