/**
 * Failover figures (issue #8), in one run, on a fresh sandbox in a temp dir (base port 28500 unless
 * BENCH_BASE_PORT is set), BENCH_CYCLES cycles (default 10):
 *
 *   raw promote   SIGKILL the primary; `pg_ctl promote -w` on the standby → first INSERT on it
 *                 (no fencing, no traffic switch: PostgreSQL alone, the floor)
 *   failover      SIGKILL the primary; `tradeops failover`: first step → first write accepted
 *                 through the traffic endpoint (the runbook's RTO), and the whole command
 *   failback      `tradeops failback` after that failover: first step → first write on the home node
 *   switchover    `tradeops switchover`, both nodes up: the write gap
 *
 *   npm run bench:failover
 *   BENCH_CYCLES=20 npm run bench:failover
 */
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { stats, statsTable } from "./stats.ts";
import { loadOutputs } from "../runbooks/outputs.ts";
import { onPg } from "../runbooks/connect.ts";
import { openSandbox } from "../sandbox/index.ts";
import { tradeops } from "../test/support/tradeops.ts";

const cycles = Number(process.env.BENCH_CYCLES ?? 10);
const basePort = process.env.BENCH_BASE_PORT ?? "28500";
const parent = mkdtempSync(join(tmpdir(), "tradeops-bench-failover-"));
chmodSync(parent, 0o755);
const dir = join(parent, "sandbox");
const env = { TRADEOPS_HOME: join(parent, "home") };
const samples: Record<string, number[]> = { raw: [], rto: [], failoverCommand: [], failback: [], switchoverGap: [] };

async function cli(...args: string[]): Promise<{ report: Record<string, number>; seconds: number }> {
  const started = performance.now();
  const run = await tradeops(["--outputs", join(dir, "outputs.json"), ...args, "--json"], env);
  const seconds = (performance.now() - started) / 1000;
  if (run.code !== 0) throw new Error(`tradeops ${args.join(" ")} exited ${run.code}: ${run.stderr.trim() || run.stdout}`);
  return { report: JSON.parse(run.stdout).report, seconds };
}

/** PostgreSQL alone: kill the primary, promote the standby, time its first accepted INSERT. */
async function rawPromote(): Promise<number> {
  const sandbox = await openSandbox({ dir });
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile: join(dir, "outputs.json") });
  const [primary, standby] = [outputs.database.primary.name, outputs.database.standby!];
  process.kill(sandbox.pid(primary as "pg-a")!, "SIGKILL");
  const started = performance.now();
  execFileSync("runuser", ["-u", "postgres", "--", "/usr/lib/postgresql/15/bin/pg_ctl", "promote", "-w", "-D", standby.dataDir], { stdio: "ignore" });
  await onPg(outputs, standby, (c) => c.query("create table if not exists bench_raw (at timestamptz default now()); insert into bench_raw default values"));
  const seconds = (performance.now() - started) / 1000;
  // Put the stack where a failover would have: the promoted node recorded and routed, the dead one fenced.
  await sandbox.traffic.route(standby.name as "pg-b");
  await sandbox.postgres.recordPrimary(standby.name as "pg-b");
  await sandbox.postgres.demote(primary as "pg-a", standby.name as "pg-b");
  return seconds;
}

try {
  const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", basePort], env);
  if (up.code !== 0) throw new Error(`sandbox up: ${up.stderr.trim().split("\n").pop()}`);
  for (let cycle = 1; cycle <= cycles; cycle++) {
    samples.raw!.push(await rawPromote());
    samples.failback!.push((await cli("failback")).report.failbackSeconds!);

    const sandbox = await openSandbox({ dir });
    process.kill(sandbox.pid("pg-a")!, "SIGKILL");
    const failover = await cli("failover");
    samples.rto!.push(failover.report.rtoSeconds!);
    samples.failoverCommand!.push(failover.seconds);
    samples.failback!.push((await cli("failback")).report.failbackSeconds!);

    samples.switchoverGap!.push((await cli("switchover")).report.writeGapSeconds!);
    samples.switchoverGap!.push((await cli("switchover")).report.writeGapSeconds!);
    process.stderr.write(`[bench] cycle ${cycle}/${cycles}\n`);
  }
} finally {
  await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", dir], env);
  rmSync(parent, { recursive: true, force: true });
}

const rows: Array<[string, number[]]> = [
  ["raw: pg_ctl promote → first INSERT on the promoted node", samples.raw!],
  ["tradeops failover RTO: first step → first write through the endpoint", samples.rto!],
  ["tradeops failover, the whole command (CLI start to exit)", samples.failoverCommand!],
  ["tradeops failback: first step → first write on the home node", samples.failback!],
  ["tradeops switchover write gap", samples.switchoverGap!],
];
const ratio = stats(samples.rto!).median / stats(samples.raw!).median;
console.log(statsTable("FAILOVER BENCH", rows));
console.log(`\nfailover RTO / raw promote (medians): ${ratio.toFixed(2)}×   targets (#8): failover ≤ 1 s, switchover gap ≤ 0.5 s, failback ≤ 5 s`);
