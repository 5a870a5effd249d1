/**
 * The drill's report: drill.json (every figure), drill.md (for a ticket or a review), and the
 * timeline plot — acknowledged writes per 10 ms around each kill, with the kill, fence, promote and
 * first-write marks — rendered by Vega-Lite to SVG and by resvg to PNG.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { table } from "../format.ts";

export interface DrillCycle {
  cycle: number;
  from: string;
  to: string;
  /** Epoch ms. */
  killAt: number;
  /** Epoch ms of the failover's marks; `dataUpTo` (whole-site drill): the last commit the DR site has. */
  marks: { fenced?: number; promoted?: number; firstWrite?: number; dataUpTo?: number };
  /** The failover runbook's RTO: its first step → first write accepted through the endpoint. */
  rtoSeconds: number | null;
  /** What a client saw: the longest time between two of its acknowledged writes. */
  outageSeconds: number | null;
  acknowledged: number;
  /** Acknowledged writes the new primary does not have (RPO, in rows). */
  lost: number[];
  /** The RPO in time (whole-site drill): from the last acknowledged write the DR site has to the last one acknowledged. */
  lostSeconds?: number | null;
  /** The fenced old primary, restarted by hand, refused a write (never two writable nodes). */
  fencedRefusedWrite: boolean;
  failbackSeconds: number | null;
  failbackWriteGapSeconds: number | null;
  rejoinedBy: Record<string, string>;
  steps: { failover: Array<{ name: string; ms: number }>; failback: Array<{ name: string; ms: number }> };
  /** Acknowledged writes per 10 ms, t = ms from the kill. */
  timeline: Array<{ t: number; writes: number }>;
}

export interface DrillSummary {
  /** `node`: the primary killed, `failover`; `site`: the whole primary site killed, `dr activate` (I5). @default "node" */
  kind?: "node" | "site";
  mode: "sync" | "async";
  cycles: DrillCycle[];
  startedAt: string;
}

/** I5, "DB failure": the seed's targets for a failover. */
export const SEED_TARGETS = { rtoSeconds: 15 * 60, rpoSeconds: 5 * 60 };
/** I5, "whole site down": the seed's targets for a DR activation. */
export const SEED_SITE_TARGETS = { rtoSeconds: 60 * 60, rpoSeconds: 15 * 60 };

export interface DrillFiles {
  dir: string;
  markdown: string;
  json: string;
  svg: string;
  png: string;
}

/** min / median / max of the defined values, or undefined when there are none. */
export function spread(values: Array<number | null>): { min: number; median: number; max: number } | undefined {
  const sorted = values.filter((value): value is number => value !== null).sort((a, b) => a - b);
  if (!sorted.length) return undefined;
  return { min: sorted[0]!, median: sorted[Math.floor((sorted.length - 1) / 2)]!, max: sorted.at(-1)! };
}

/** Buckets acknowledged writes (epoch ms) into 10 ms bins around the kill. */
export function timelineOf(acks: number[], killAt: number): Array<{ t: number; writes: number }> {
  const bins = new Map<number, number>();
  for (const at of acks) {
    const t = Math.floor((at - killAt) / 10) * 10;
    bins.set(t, (bins.get(t) ?? 0) + 1);
  }
  if (!bins.size) return [];
  const ts = [...bins.keys()];
  const timeline: Array<{ t: number; writes: number }> = [];
  for (let t = Math.min(...ts); t <= Math.max(...ts); t += 10) timeline.push({ t, writes: bins.get(t) ?? 0 });
  return timeline;
}

export function summaryRows(summary: DrillSummary): string[][] {
  const seconds = (value: number | undefined) => (value === undefined ? "-" : `${value.toFixed(3)} s`);
  const row = (label: string, values: Array<number | null>, target: string, format = seconds) => {
    const s = spread(values);
    return [label, format(s?.min), format(s?.median), format(s?.max), target];
  };
  const count = (value: number | undefined) => (value === undefined ? "-" : String(value));
  if (summary.kind === "site") {
    return [
      row("RTO: dr activate's first step → first write at the DR site", summary.cycles.map((c) => c.rtoSeconds), `${SEED_SITE_TARGETS.rtoSeconds / 60} min (I5)`),
      row("RPO: acknowledged writes lost", summary.cycles.map((c) => c.lost.length), "-", count),
      row("RPO: time of acknowledged writes lost", summary.cycles.map((c) => c.lostSeconds ?? null), `${SEED_SITE_TARGETS.rpoSeconds / 60} min (I5)`),
      row("dr failback: first step → first write at home", summary.cycles.map((c) => c.failbackSeconds), "-"),
      row("dr failback's write gap", summary.cycles.map((c) => c.failbackWriteGapSeconds), "-"),
    ];
  }
  return [
    row("RTO: failover's first step → first write through the endpoint", summary.cycles.map((c) => c.rtoSeconds), `${SEED_TARGETS.rtoSeconds / 60} min (I5)`),
    row("client outage: longest time between two acknowledged writes", summary.cycles.map((c) => c.outageSeconds), "-"),
    row("RPO: acknowledged writes lost", summary.cycles.map((c) => c.lost.length), `${SEED_TARGETS.rpoSeconds / 60} min of writes (I5)${summary.mode === "sync" ? "; 0 in sync mode" : ""}`, count),
    row("failback: first step → first write on the home primary", summary.cycles.map((c) => c.failbackSeconds), "-"),
    row("failback's write gap", summary.cycles.map((c) => c.failbackWriteGapSeconds), "-"),
  ];
}

function markdown(summary: DrillSummary, files: DrillFiles): string {
  const cycles = summary.cycles.map((c) => [
    String(c.cycle),
    `${c.from} → ${c.to}`,
    c.rtoSeconds === null ? "-" : `${c.rtoSeconds.toFixed(3)} s`,
    c.outageSeconds === null ? "-" : `${c.outageSeconds.toFixed(3)} s`,
    `${c.lost.length} of ${c.acknowledged}${c.lostSeconds ? ` (${c.lostSeconds.toFixed(3)} s)` : ""}`,
    c.fencedRefusedWrite ? "yes" : "**NO**",
    c.failbackSeconds === null ? "-" : `${c.failbackSeconds.toFixed(3)} s`,
    Object.entries(c.rejoinedBy).map(([node, how]) => `${node}: ${how}`).join("; "),
  ]);
  const site = summary.kind === "site";
  const md = (header: string[], rows: string[][]) => [`| ${header.join(" | ")} |`, `|${header.map(() => "---").join("|")}|`, ...rows.map((r) => `| ${r.join(" | ")} |`)].join("\n");
  return [
    site ? `# Whole-site DR drill, ${summary.startedAt}` : `# Failover drill, ${summary.startedAt}`,
    "",
    site
      ? `${summary.cycles.length} cycle(s) on the sandbox with its DR site. Each cycle: a writer commits numbered rows through the primary site's traffic endpoint; the primary site (primary, standby, app) is killed with SIGKILL; \`tradeops dr activate\`; every acknowledged row is looked for at the DR site (WAL reaches it through the repository: loss is bounded by archive_timeout); the fenced old primary is restarted by hand and must refuse a write; \`tradeops dr failback\`.`
      : `${summary.cycles.length} cycle(s) on the sandbox, ${summary.mode === "sync" ? "synchronous" : "asynchronous"} replication. Each cycle: a writer commits numbered rows through the traffic endpoint; the primary is killed with SIGKILL; \`tradeops failover\`; every acknowledged row is looked for on the new primary; the fenced old primary is restarted by hand and must refuse a write; \`tradeops failback\`.`,
    "",
    md(["", "min", "median", "max", "seed target"], summaryRows(summary)),
    "",
    md(["cycle", site ? "activation" : "failover", "RTO", "client outage", "acknowledged writes lost", "fenced old primary refused a write", "failback", "rejoined by"], cycles),
    "",
    `![timeline](${files.png.split("/").at(-1)})`,
    "",
    site
      ? "Timeline: acknowledged writes per 10 ms at the primary site; t = 0 is the kill; marks: the last commit the DR site has (what is right of it and left of the kill was lost), fence, promote, first write at the DR site."
      : "Timeline: acknowledged writes per 10 ms; t = 0 is the kill; marks: fence, promote, first write through the endpoint.",
    "",
  ].join("\n");
}

const MARK_LABELS = { dataUpTo: "DR site has up to here", fenced: "fenced", promoted: "promoted", firstWrite: "first write" } as const;

/** The Vega-Lite spec of the timeline: one row per cycle. */
function plotSpec(summary: DrillSummary): object {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: summary.kind === "site" ? "Whole-site DR drill: acknowledged writes per 10 ms at the primary site" : `Failover drill: acknowledged writes per 10 ms (${summary.mode})`,
    vconcat: summary.cycles.map((c) => {
      const marks = [
        { label: "kill", t: 0 },
        ...(["dataUpTo", "fenced", "promoted", "firstWrite"] as const).flatMap((key) => (c.marks[key] ? [{ label: MARK_LABELS[key], t: c.marks[key]! - c.killAt }] : [])),
      ].map((mark, i) => ({ ...mark, y: 10 + 12 * i })); // staggered: marks a few ms apart would print over each other
      return {
        title: `cycle ${c.cycle}: ${c.from} → ${c.to}, RTO ${c.rtoSeconds?.toFixed(3) ?? "-"} s, lost ${c.lost.length}`,
        width: 720,
        height: 140,
        layer: [
          {
            data: { values: c.timeline },
            mark: { type: "area", interpolate: "step-after", color: "#4c78a8" },
            encoding: { x: { field: "t", type: "quantitative", title: "ms from the kill" }, y: { field: "writes", type: "quantitative", title: "writes / 10 ms" } },
          },
          { data: { values: marks }, mark: { type: "rule", color: "#e45756", strokeWidth: 1.5 }, encoding: { x: { field: "t", type: "quantitative" } } },
          {
            data: { values: marks },
            mark: { type: "text", align: "left", dx: 3, dy: -4, color: "#e45756", fontSize: 10 },
            encoding: { x: { field: "t", type: "quantitative" }, y: { field: "y", type: "quantitative", scale: null }, text: { field: "label" } },
          },
        ],
      };
    }),
  };
}

/** Writes drill.json, drill.md, timeline.svg and timeline.png into `dir`. */
export async function writeDrillReport(summary: DrillSummary, dir: string): Promise<DrillFiles> {
  mkdirSync(dir, { recursive: true });
  const files: DrillFiles = { dir, markdown: join(dir, "drill.md"), json: join(dir, "drill.json"), svg: join(dir, "timeline.svg"), png: join(dir, "timeline.png") };
  writeFileSync(files.json, `${JSON.stringify(summary, null, 2)}\n`);
  writeFileSync(files.markdown, markdown(summary, files));
  const [vega, vegaLite, { Resvg }] = await Promise.all([import("vega"), import("vega-lite"), import("@resvg/resvg-js")]);
  const view = new vega.View(vega.parse(vegaLite.compile(plotSpec(summary) as Parameters<typeof vegaLite.compile>[0]).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(files.svg, svg);
  writeFileSync(files.png, new Resvg(svg, { background: "white", fitTo: { mode: "zoom", value: 2 } }).render().asPng());
  return files;
}

/** The report's text for the terminal. */
export function summaryText(summary: DrillSummary): string {
  return table(["DRILL", "MIN", "MEDIAN", "MAX", "SEED TARGET"], summaryRows(summary));
}
