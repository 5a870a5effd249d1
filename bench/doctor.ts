/**
 * What the doctor and the support bundle cost on a healthy sandbox (issue #12; goal: doctor ≤ 2 s):
 * `tradeops doctor` end to end through the CLI (what an operator waits for) and its checks alone
 * (in-process, without Node's start), then `tradeops support-bundle`: time and archive size. A fresh
 * sandbox in a temp dir (base port 28700 unless BENCH_BASE_PORT is set), BENCH_ROUNDS rounds
 * (default 10), always taken down.
 *
 *   npm run bench:doctor
 */
import { chmodSync, mkdtempSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CHECKS, runChecks } from "../runbooks/doctor.ts";
import { bytes, table } from "../runbooks/format.ts";
import { loadOutputs } from "../runbooks/outputs.ts";
import { tradeops } from "../test/support/tradeops.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 10);
const basePort = process.env.BENCH_BASE_PORT ?? "28700";
const dir = mkdtempSync(join(tmpdir(), "tradeops-bench-doctor-"));
chmodSync(dir, 0o755);
const env = { TRADEOPS_HOME: mkdtempSync(join(tmpdir(), "tradeops-bench-home-")) };
const outputsFile = join(dir, "outputs.json");

const spread = (values: number[], unit: (v: number) => string) => {
  const sorted = [...values].sort((a, b) => a - b);
  return [sorted[0]!, sorted[Math.floor((sorted.length - 1) / 2)]!, sorted.at(-1)!].map(unit);
};
const seconds = (ms: number) => `${(ms / 1000).toFixed(3)} s`;

async function timed(work: () => Promise<unknown>): Promise<number> {
  const started = performance.now();
  await work();
  return performance.now() - started;
}

const rows: string[][] = [];
try {
  const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", basePort], env);
  if (up.code !== 0) throw new Error(`sandbox up: ${up.stderr.trim().split("\n").pop()}`);
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile });

  const cli: number[] = [];
  const checks: number[] = [];
  const slowest: number[] = [];
  for (let round = 0; round <= rounds; round++) {
    let code: number | null = null;
    const ms = await timed(async () => (code = (await tradeops(["--outputs", outputsFile, "doctor"], env)).code));
    if (code !== 0) throw new Error(`doctor exited ${code} on the healthy sandbox`);
    let worst = 0;
    const inProcess = await timed(async () => {
      const findings = await runChecks(outputs, CHECKS, new AbortController().signal);
      worst = Math.max(...findings.map((f) => f.durationMs));
    });
    // Round 0 warms the page cache and the connections' first TLS/SCRAM work.
    if (round > 0) cli.push(ms), checks.push(inProcess), slowest.push(worst);
  }
  rows.push(["tradeops doctor (CLI, end to end)", String(rounds), ...spread(cli, seconds), "≤ 2 s"]);
  rows.push([`its ${CHECKS.length} checks in parallel (in-process)`, String(rounds), ...spread(checks, seconds), "-"]);
  rows.push(["the slowest check of a run", String(rounds), ...spread(slowest, seconds), "1.5 s (its deadline)"]);

  const sizes: number[] = [];
  const times: number[] = [];
  for (let round = 0; round < Math.min(rounds, 5); round++) {
    const archive = join(dir, `bundle-${round}.tar.gz`);
    let code: number | null = null;
    times.push(await timed(async () => (code = (await tradeops(["--outputs", outputsFile, "support-bundle", "--out", archive], env)).code)));
    if (code !== 0) throw new Error(`support-bundle exited ${code}`);
    sizes.push(statSync(archive).size);
  }
  rows.push(["tradeops support-bundle: time", String(times.length), ...spread(times, seconds), "-"]);
  rows.push(["tradeops support-bundle: archive size", String(sizes.length), ...spread(sizes, bytes), "-"]);
} finally {
  await tradeops(["sandbox", "down", "--dir", dir], env);
  rmSync(dir, { recursive: true, force: true });
  rmSync(env.TRADEOPS_HOME, { recursive: true, force: true });
}
console.log(table(["DOCTOR / SUPPORT BUNDLE (healthy sandbox)", "N", "MIN", "MEDIAN", "MAX", "GOAL"], rows));
