/**
 * The ops API's /metrics (Prometheus text format), read once per doctor run: request latency by
 * route (T2 slow API), status counts (429, 401), process memory.
 */
import { httpRequest } from "../../clients/http.ts";
import type { CallOptions } from "../../clients/deadline.ts";

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

export class Metrics {
  readonly samples: Sample[];

  constructor(samples: Sample[]) {
    this.samples = samples;
  }

  /** Every sample of `name` whose labels include `match`. */
  select(name: string, match: Record<string, string> = {}): Sample[] {
    return this.samples.filter((s) => s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v));
  }

  value(name: string): number | undefined {
    return this.select(name)[0]?.value;
  }

  /**
   * The q-quantile of a histogram per value of `by` (e.g. route), from the cumulative buckets since
   * the process started, as Prometheus' histogram_quantile interpolates it; with the request count.
   */
  quantileBy(histogram: string, by: string, q: number): Map<string, { seconds: number; count: number }> {
    const buckets = new Map<string, Map<number, number>>();
    for (const sample of this.select(`${histogram}_bucket`)) {
      const key = sample.labels[by] ?? "";
      const le = sample.labels.le === "+Inf" ? Number.POSITIVE_INFINITY : Number(sample.labels.le);
      const perKey = buckets.get(key) ?? new Map<number, number>();
      perKey.set(le, (perKey.get(le) ?? 0) + sample.value);
      buckets.set(key, perKey);
    }
    const result = new Map<string, { seconds: number; count: number }>();
    for (const [key, perKey] of buckets) {
      const sorted = [...perKey.entries()].sort((a, b) => a[0] - b[0]);
      const count = sorted.at(-1)?.[1] ?? 0;
      if (count === 0) continue;
      const rank = q * count;
      let previous: [number, number] = [0, 0];
      for (const [le, cumulative] of sorted) {
        if (cumulative >= rank) {
          // Past the last finite bucket the quantile is only known to exceed it.
          const seconds = Number.isFinite(le) ? previous[0] + ((le - previous[0]) * (rank - previous[1])) / Math.max(cumulative - previous[1], 1) : previous[0];
          result.set(key, { seconds, count });
          break;
        }
        previous = [le, cumulative];
      }
    }
    return result;
  }
}

export async function scrapeMetrics(url: string, options: CallOptions): Promise<Metrics> {
  const answer = await httpRequest(new URL("/metrics", url), options);
  if (answer.status !== 200) throw new Error(`/metrics answered ${answer.status}`);
  return new Metrics(parseExposition(String(answer.body)));
}

const SAMPLE = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/;
const LABEL = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;

/** Sample lines of the text format (comments and HELP/TYPE skipped). parse-prometheus-text-format 1.1.1 drops histogram labels (route), which the latency check needs. */
export function parseExposition(text: string): Sample[] {
  const samples: Sample[] = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const match = SAMPLE.exec(line);
    if (!match) continue;
    const labels: Record<string, string> = {};
    for (const [, key, value] of (match[2] ?? "").matchAll(LABEL)) labels[key!] = value!.replace(/\\(.)/g, "$1");
    samples.push({ name: match[1]!, labels, value: Number(match[3]) });
  }
  return samples;
}
