/**
 * Times the tradeops commands an operator runs, end to end through the real CLI, against a fresh
 * sandbox in a temp dir (base port 28400 unless BENCH_BASE_PORT is set), and prints a table.
 *
 *   npm run bench            # default rounds
 *   BENCH_ROUNDS=20 npm run bench
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { table } from "../runbooks/format.ts";
import { tradeops } from "../test/support/tradeops.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 5);
const basePort = process.env.BENCH_BASE_PORT ?? "28400";
const dir = mkdtempSync(join(tmpdir(), "tradeops-bench-"));
// The bench's own home: its audit lines and active sandbox stay out of the operator's.
const env = { TRADEOPS_HOME: mkdtempSync(join(tmpdir(), "tradeops-bench-home-")) };
const outputs = join(dir, "outputs.json");
const rows: (string | number)[][] = [];

async function time(label: string, args: string[], times: number): Promise<void> {
  const samples: number[] = [];
  for (let i = 0; i < times; i++) {
    const started = performance.now();
    const run = await tradeops(args, env);
    samples.push(performance.now() - started);
    if (run.code !== 0) throw new Error(`${label} exited ${run.code}: ${run.stderr.trim().split("\n").pop()}`);
  }
  samples.sort((a, b) => a - b);
  const ms = (v: number) => `${Math.round(v)} ms`;
  rows.push([label, times, ms(samples[Math.floor(samples.length / 2)]!), ms(samples[0]!), ms(samples.at(-1)!)]);
}

try {
  await time("tradeops --help (cold start)", ["--help"], rounds * 2);
  await time("sandbox up (cold: initdb, basebackup, stanza)", ["sandbox", "up", "--dir", dir, "--base-port", basePort], 1);
  await time("sandbox up (warm: all running)", ["sandbox", "up", "--dir", dir], rounds);
  await time("health (6 components in parallel)", ["--outputs", outputs, "health"], rounds * 2);
  await time("diagnose (6 views)", ["--outputs", outputs, "diagnose"], rounds);
  await time("backup --dry-run", ["--outputs", outputs, "backup", "--dry-run"], rounds);
  await time("backup --type full", ["--outputs", outputs, "backup", "--type", "full"], 2);
  await time("backup --type incr", ["--outputs", outputs, "backup", "--type", "incr"], 2);
  await time("sandbox down", ["sandbox", "down", "--dir", dir], 1);
} finally {
  await tradeops(["sandbox", "down", "--dir", dir], env);
  rmSync(dir, { recursive: true, force: true });
  rmSync(env.TRADEOPS_HOME, { recursive: true, force: true });
}
console.log(table(["COMMAND", "RUNS", "MEDIAN", "MIN", "MAX"], rows));
