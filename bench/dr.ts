/**
 * Whole-site DR figures (issue #9) over BENCH_RUNS runs (default 5), on a fresh sandbox with its
 * DR site in a temp dir (base port 28700 unless BENCH_BASE_PORT is set), through the real CLI:
 * `tradeops drill --site` — a writer commits numbered rows through the primary site's endpoint,
 * the primary site (primary, standby, app) is SIGKILLed, `tradeops dr activate`, the acknowledged
 * rows are counted at the DR site, `tradeops dr failback` — and its drill.json becomes this table:
 *
 *   activation RTO   dr activate's first step → first write accepted at the DR site
 *   RPO              acknowledged writes lost, in rows and in time (the last commit the DR site
 *                    has → the last acknowledged write), bounded by the primary's archive_timeout
 *   failback         dr failback: first step → first write at home, and its write gap
 *
 *   npm run bench:dr
 *   BENCH_RUNS=10 npm run bench:dr
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { DrillSummary } from "../runbooks/drill/report.ts";
import { SEED_SITE_TARGETS } from "../runbooks/drill/report.ts";
import { table } from "../runbooks/format.ts";
import { stats, statsTable } from "./stats.ts";
import { tradeops } from "../test/support/tradeops.ts";

const runs = Number(process.env.BENCH_RUNS ?? 5);
const basePort = process.env.BENCH_BASE_PORT ?? "28700";
const parent = mkdtempSync(join(tmpdir(), "tradeops-bench-dr-"));
chmodSync(parent, 0o755);
const dir = join(parent, "sandbox");
const reportDir = join(parent, "report");
const env = { TRADEOPS_HOME: join(parent, "home") };

let summary: DrillSummary;
const started = performance.now();
try {
  const drill = await tradeops(["drill", "--site", "--cycles", String(runs), "--dir", dir, "--base-port", basePort, "--report", reportDir], env);
  if (drill.code !== 0) throw new Error(`drill --site exited ${drill.code}: ${drill.stderr.trim().split("\n").slice(-3).join(" | ")}`);
  summary = JSON.parse(readFileSync(join(reportDir, "drill.json"), "utf8")) as DrillSummary;
} finally {
  await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", dir], env);
  rmSync(parent, { recursive: true, force: true });
}

const seconds = (pick: (cycle: DrillSummary["cycles"][number]) => number | null | undefined) =>
  summary.cycles.map(pick).filter((value): value is number => typeof value === "number");
const rows: Array<[string, number[]]> = [
  ["dr activate RTO: first step → first write at the DR site", seconds((c) => c.rtoSeconds)],
  ["RPO in time: last commit the DR site has → last acknowledged write", seconds((c) => c.lostSeconds)],
  ["dr failback: first step → first write at home", seconds((c) => c.failbackSeconds)],
  ["dr failback write gap", seconds((c) => c.failbackWriteGapSeconds)],
];
console.log(statsTable("WHOLE-SITE DR BENCH", rows));
const lost = stats(summary.cycles.map((c) => c.lost.length));
const acknowledged = stats(summary.cycles.map((c) => c.acknowledged));
console.log(
  `\n${table(
    ["ROWS", "N", "MIN", "MEDIAN", "MAX"],
    [
      ["acknowledged writes lost", String(lost.n), String(lost.min), String(lost.median), String(lost.max)],
      ["acknowledged writes per run", String(acknowledged.n), String(acknowledged.min), String(acknowledged.median), String(acknowledged.max)],
    ],
  )}`,
);
const rto = stats(rows[0]![1]);
const rpo = stats(rows[1]![1]);
console.log(
  `\nseed (I5, whole site down): RTO ${SEED_SITE_TARGETS.rtoSeconds / 60} min, RPO ${SEED_SITE_TARGETS.rpoSeconds / 60} min — ` +
    `measured max: RTO ${rto.max.toFixed(3)} s (${((100 * rto.max) / SEED_SITE_TARGETS.rtoSeconds).toFixed(3)} % of it), RPO ${rpo.max.toFixed(3)} s (archive_timeout 10 s); ` +
    `fenced old primary refused a write in ${summary.cycles.filter((c) => c.fencedRefusedWrite).length}/${summary.cycles.length} runs; whole bench ${((performance.now() - started) / 1000).toFixed(0)} s`,
);
