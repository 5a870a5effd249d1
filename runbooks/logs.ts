/**
 * `tradeops logs` — Z2, S12, C5: every component's log through one adapter (sandbox files,
 * `docker logs`, `kubectl logs`) with the seeds' filters — errors, one strategy, orders and fills,
 * rate-limit lines, a pattern — and `--summary`: error counts and the top errors in the window.
 */
import { z } from "zod";
import { Duration, spell } from "./durations.ts";
import { UsageError } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { table } from "./format.ts";
import { loadOutputs } from "./outputs.ts";
import { logSource } from "./platform/logs.ts";

/** JSON `"level":"error"`, PostgreSQL `ERROR:`/`FATAL:`/`PANIC:`, and the usual words of stack traces. */
const ERROR_LINE = /"level":"(error|fatal)"|\b(ERROR|FATAL|PANIC|CRITICAL)\b|\bException\b|Traceback|\[ERROR\]/;
const ORDER_LINE = /\b(orders?|fills?|filled|executions?|trades?)\b/i;
const RATE_LIMIT_LINE = /\b429\b|rate.?limit|Retry-After|too many requests/i;
const strategyLine = (id: string) => new RegExp(`"strategy(_id|Id)?":\\s*"?${escape(id)}\\b|\\bstrategy(_id|Id)?[=: ]+"?${escape(id)}\\b`, "i");
const escape = (text: string) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

export interface LogFilter {
  errors?: boolean;
  orders?: boolean;
  rateLimits?: boolean;
  strategy?: string;
  grep?: RegExp;
}

export function matches(line: string, filter: LogFilter): boolean {
  if (filter.errors && !ERROR_LINE.test(line)) return false;
  if (filter.orders && !ORDER_LINE.test(line)) return false;
  if (filter.rateLimits && !RATE_LIMIT_LINE.test(line)) return false;
  if (filter.strategy && !strategyLine(filter.strategy).test(line)) return false;
  return !filter.grep || filter.grep.test(line);
}

/** An error line without what changes between occurrences (times, numbers, ids): lines that group. */
export function errorShape(line: string): string {
  let text = line;
  try {
    const parsed = JSON.parse(line) as { msg?: string; error?: string };
    if (parsed.msg) text = `${parsed.msg}${parsed.error ? `: ${parsed.error}` : ""}`;
  } catch {
    // Not JSON.
  }
  return text
    .replace(/\d{4}-\d\d-\d\d[T ][\d:.]+\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?/g, "")
    .replace(/\b0x[0-9a-f]+\b|\b\d+(\.\d+)?\b/gi, "N")
    .replace(/\s+/g, " ")
    .trim()
    .slice(0, 160);
}

const Pattern = z.string().transform((text, ctx) => {
  try {
    return new RegExp(text, "i");
  } catch {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(text)} is not a valid pattern` });
    return z.NEVER;
  }
});

type Picked = { component: string; lines: string[] };

export const logs = defineRunbook({
  command: ["logs"],
  name: "logs",
  summary: "every component's log through one adapter, filtered (errors, a strategy, orders, rate limits, a pattern) or summarised",
  features: ["Z2", "S12", "C5"],
  mutates: false,
  args: z.object({
    component: flag(z.string().min(1).optional(), { description: "one component (default: all)", placeholder: "component", positional: true }),
    since: flag(Duration.optional(), { description: "only lines of this last period, e.g. 15m, 2h", placeholder: "duration" }),
    errors: flag(z.boolean().default(false), { description: "only error lines" }),
    grep: flag(Pattern.optional(), { description: "only lines matching this pattern (case-insensitive)", placeholder: "pattern" }),
    strategy: flag(z.string().regex(/^[\w.-]+$/).optional(), { description: "only lines of this strategy id", placeholder: "id" }),
    orders: flag(z.boolean().default(false), { description: "only order and fill lines" }),
    rateLimits: flag(z.boolean().default(false), { description: "only rate-limit lines (429, Retry-After)" }),
    tail: flag(z.number().int().min(1).max(100_000).default(200), { description: "at most this many lines per component", placeholder: "lines" }),
    summary: flag(z.boolean().default(false), { description: "error counts per component and the top errors in the window, instead of lines" }),
  }),
  /** An unknown component is a usage error (exit 2) naming the ones there are. */
  async target(args, source) {
    const outputs = await loadOutputs(source);
    const available = await logSource(outputs).components();
    if (args.component && !available.includes(args.component)) {
      throw new UsageError(`logs: no component ${JSON.stringify(args.component)} here; there are ${available.join(", ") || "none"}`);
    }
    return { outputs, components: args.component ? [args.component] : available };
  },
  steps: (args, { outputs, components }) => [
    {
      name: "Read the logs",
      plan: `${components.join(", ")}${args.since ? ` (last ${spell(args.since)})` : ""}`,
      readOnly: true,
      action: async (ctx) => {
        const source = logSource(outputs);
        const filter: LogFilter = { errors: args.errors || args.summary, orders: args.orders, rateLimits: args.rateLimits, strategy: args.strategy, grep: args.grep };
        const picked: Picked[] = [];
        const unreadable: string[] = [];
        for (const component of components) {
          try {
            const lines = (await source.read(component, { sinceMs: args.since, signal: ctx.signal })).filter((line) => matches(line, filter));
            picked.push({ component, lines: args.summary ? lines : lines.slice(-args.tail) });
          } catch (error) {
            unreadable.push(`${component}: ${(error as Error).message}`);
          }
        }
        ctx.record("logs", { summary: args.summary, picked, unreadable });
      },
    },
  ],
  report: (facts) => {
    const { summary, picked, unreadable } = (facts.logs as { summary: boolean; picked: Picked[]; unreadable: string[] } | undefined) ?? { summary: false, picked: [], unreadable: [] };
    const notes = unreadable.map((u) => `(could not read ${u})`);
    if (summary) {
      const counts = picked.map((p) => [p.component, p.lines.length]);
      const top = new Map<string, { count: number; components: Set<string> }>();
      for (const p of picked) {
        for (const line of p.lines) {
          const shape = errorShape(line);
          const entry = top.get(shape) ?? { count: 0, components: new Set<string>() };
          entry.count++;
          entry.components.add(p.component);
          top.set(shape, entry);
        }
      }
      const ranked = [...top].sort((a, b) => b[1].count - a[1].count).slice(0, 10);
      const text = [table(["COMPONENT", "ERRORS"], counts), "", ranked.length ? table(["COUNT", "COMPONENTS", "TOP ERRORS"], ranked.map(([shape, e]) => [e.count, [...e.components].join(","), shape])) : "no error in the window", ...notes].join("\n");
      return { text, json: { errors: Object.fromEntries(counts), top: ranked.map(([shape, e]) => ({ error: shape, count: e.count, components: [...e.components] })), unreadable } };
    }
    const width = Math.max(0, ...picked.map((p) => p.component.length));
    const text = [...picked.flatMap((p) => p.lines.map((line) => `${p.component.padEnd(width)} | ${line}`)), ...notes].join("\n");
    return { text, json: { lines: picked, unreadable } };
  },
});
