/**
 * The DR site (issue #9) on a sandbox of its own (dr-setup.ts: `sandbox up --with-dr`, base port
 * +400): pg-dr restored from the S3 repository and fed by archive-get, its API at pilot light, the
 * site switch. The whole primary site is killed here, so this file does not use the run's shared
 * sandbox (it runs beside those files); its tests run in order and each leaves the home topology.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { beforeAll, describe, expect, inject, it } from "vitest";
import type { StackOutputs } from "../../contract/outputs.ts";
import { onPg } from "../../runbooks/connect.ts";
import { DrillWriter, lostWrites } from "../../runbooks/drill/writer.ts";
import { drSiteOutputs } from "../../runbooks/dr-state.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { startFakeRoute53, type FakeRoute53 } from "../support/fake-route53.ts";
import { tradeops } from "../support/tradeops.ts";

// This file's CLI runs and runbooks keep their audit lines in the DR sandbox's own home.
process.env.TRADEOPS_HOME = inject("drHome");
const dir = inject("drSandboxDir");
const basePort = inject("drBasePort");
const outputsFile = join(dir, "outputs.json");
const cli = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
const sandbox = () => openSandbox({ dir });
let outputs: StackOutputs;
let dr: NonNullable<StackOutputs["dr"]> & { database: NonNullable<NonNullable<StackOutputs["dr"]>["database"]> };

beforeAll(async () => {
  outputs = await loadOutputs({ stack: "sandbox", outputsFile });
  dr = outputs.dr as typeof dr;
});

const sql = <T = Record<string, unknown>>(node: { host: string; port: number }, text: string, values: unknown[] = []) =>
  onPg(outputs, node, async (client) => (await client.query(text, values)).rows as T[], { timeoutMs: 10_000 });
const inRecovery = async (node: { host: string; port: number }) => (await sql<{ r: boolean }>(node, "select pg_is_in_recovery() as r"))[0]!.r;
const waitFor = async (check: () => Promise<boolean>, withinMs: number) => {
  const deadline = Date.now() + withinMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return true;
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
  return false;
};
const document = (stdout: string) => RunDocument.parse(JSON.parse(stdout));
const drStatus = async () => {
  const run = await cli("dr", "status", "--json");
  return { code: run.code, report: document(run.stdout).report as { lagSeconds: number | null; inRecovery: boolean | null; behindBytes: number | null; caughtUpWithArchive: boolean | null; appUp: boolean; routed: string | null } };
};

describe("the DR site (#9)", () => {
  it("I5: sandbox up --with-dr restores pg-dr from the repository; it replays the primary's WAL through archive-get alone", async () => {
    expect(dr).toMatchObject({ name: "dr", database: { name: "pg-dr", role: "standby" }, app: { kind: "sandbox" }, maxLagSeconds: 300 });
    expect(dr.traffic).toEqual({ host: dr.database.host, port: dr.database.port });
    // Fed from the repository, never streamed from the primary.
    const conf = await sql<{ name: string; setting: string }>(dr.database, "select name, setting from pg_settings where name in ('restore_command', 'primary_conninfo')");
    expect(conf.find((row) => row.name === "restore_command")?.setting).toContain("archive-get");
    expect(conf.find((row) => row.name === "primary_conninfo")?.setting).toBe("");
    expect(await inRecovery(dr.database)).toBe(true);
    await sql(outputs.database.traffic, "create table dr_rows (n int primary key, at timestamptz not null default clock_timestamp()); insert into dr_rows (n) select generate_series(1, 100)");
    expect(await waitFor(async () => (await sql<{ c: string }>(dr.database, "select count(*) as c from dr_rows"))[0]!.c === "100", 30_000)).toBe(true);
    const status = await (await sandbox()).status();
    expect(status.components.find((c) => c.name === "pg-dr")?.detail).toMatch(/^standby \(WAL from the repository\)/);
    expect(status.components.find((c) => c.name === "site-traffic")?.detail).toBe("traffic → primary");
    expect(status.components.some((c) => c.name === "dr-ops-api")).toBe(false);
  });

  it("I6: dr status reports a lag that grows while archiving stops and falls back once it resumes", async () => {
    const before = await drStatus();
    expect(before.code).toBe(0);
    expect(before.report).toMatchObject({ inRecovery: true, appUp: false, routed: "primary" });
    await sql(outputs.database.primary, "alter system set archive_command = 'false'");
    await sql(outputs.database.primary, "select pg_reload_conf()");
    try {
      await sql(outputs.database.traffic, "insert into dr_rows (n) values (101)");
      await sql(outputs.database.primary, "select pg_switch_wal()");
      await new Promise((resolve) => setTimeout(resolve, 1_500));
      const first = await drStatus();
      await sql(outputs.database.traffic, "insert into dr_rows (n) values (102)");
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      const second = await drStatus();
      expect(first.report.behindBytes).toBeGreaterThan(0);
      expect(first.report.lagSeconds).toBeGreaterThan(0);
      expect(second.report.lagSeconds).toBeGreaterThan(first.report.lagSeconds! + 1);
    } finally {
      await sql(outputs.database.primary, "alter system reset archive_command");
      await sql(outputs.database.primary, "select pg_reload_conf()");
    }
    await sql(outputs.database.primary, "select pg_switch_wal()");
    expect(await waitFor(async () => (await drStatus()).report.lagSeconds === 0, 45_000)).toBe(true);
    expect((await sql<{ c: string }>(dr.database, "select count(*) as c from dr_rows"))[0]!.c).toBe("102");
  });

  it("I6: dr activate --dry-run prints the plan and changes nothing; beyond the lag limit it refuses (exit 3) and changes nothing", async () => {
    const plan = await cli("dr", "activate", "--dry-run");
    expect(plan.code, plan.stderr).toBe(0);
    expect(plan.stdout).toContain("3. Fence the primary site");
    expect(plan.stdout).toContain("5. Promote pg-dr");
    // Replay paused at the DR node while the primary goes on: the DR site falls behind.
    await sql(dr.database, "select pg_wal_replay_pause()");
    try {
      await sql(outputs.database.traffic, "insert into dr_rows (n) values (103)");
      await sql(outputs.database.primary, "select pg_switch_wal()");
      await new Promise((resolve) => setTimeout(resolve, 2_500));
      const run = await cli("dr", "activate", "--max-lag-seconds", "1", "--yes");
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toMatch(/pg-dr lacks [\d.]+ s of commits, beyond --max-lag-seconds 1/);
    } finally {
      await sql(dr.database, "select pg_wal_replay_resume()");
    }
    // Nothing changed, on the real nodes and processes.
    expect(await inRecovery(outputs.database.primary)).toBe(false);
    expect(await inRecovery(dr.database)).toBe(true);
    const s = await sandbox();
    expect(await s.dr!.routedTo()).toBe("primary");
    expect(s.dr!.activeSite()).toBe("primary");
    expect(s.pid("ops-api")).toBeDefined();
    expect(s.pid("dr-ops-api")).toBeUndefined();
  });

  it("I5: dr activate, dr status and dr failback refuse (exit 3) on a stack without a DR site", async () => {
    // The same sandbox's outputs without their dr block: a sandbox started without --with-dr.
    const withoutDr = join(dir, "outputs-without-dr.json");
    writeFileSync(withoutDr, JSON.stringify({ ...JSON.parse(readFileSync(outputsFile, "utf8")), dr: undefined }), { mode: 0o600 });
    for (const command of [["dr", "activate", "--yes"], ["dr", "status"], ["dr", "failback", "--yes"]]) {
      const run = await tradeops(["--outputs", withoutDr, ...command]);
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toMatch(/stack sandbox has no DR site/);
      expect(run.stderr).toContain("sandbox up --with-dr");
    }
  });

  it("I5: dr activate on a killed primary site: writes accepted at the DR site, every row acknowledged up to the reported RPO is there, none after it", async () => {
    const writer = new DrillWriter(outputs, "dr-it", 1);
    await DrillWriter.prepare(outputs);
    await waitFor(async () => (await drStatus()).report.lagSeconds === 0, 30_000);
    writer.start();
    await new Promise((resolve) => setTimeout(resolve, 2_000));
    // The whole primary site: both database nodes and the app, SIGKILL.
    const s = await sandbox();
    for (const component of ["pg-a", "pg-b", "ops-api"] as const) process.kill(s.pid(component)!, "SIGKILL");
    await new Promise((resolve) => setTimeout(resolve, 500));
    await writer.stop();
    expect(writer.acknowledged.length).toBeGreaterThan(50);

    const run = await cli("dr", "activate", "--yes", "--json");
    expect(run.code, run.stderr).toBe(0);
    const doc = document(run.stdout);
    const report = doc.report as { rtoSeconds: number; rpo: { measured: boolean; dataUpTo: string } };
    expect(report.rtoSeconds).toBeGreaterThan(0);
    expect(report.rpo.measured).toBe(false);
    const dataUpTo = Date.parse(report.rpo.dataUpTo);

    // The report's RPO splits the acknowledged rows exactly: none acknowledged before it is missing, none written after it is present.
    const atDr = drSiteOutputs(await loadOutputs({ stack: "sandbox", outputsFile }), dr);
    const lost = new Set(await lostWrites(atDr, "dr-it", 1, writer.acknowledged));
    const present = await onPg(atDr, dr.database, async (c) => (await c.query<{ n: number; at: Date }>("select n, at from tradeops_drill_writes where drill = 'dr-it'")).rows);
    expect(writer.acknowledged.filter((w) => w.at <= dataUpTo && lost.has(w.n))).toEqual([]);
    expect(present.filter((row) => row.at.getTime() > dataUpTo + 1)).toEqual([]);
    const lastPresent = Math.max(...present.map((row) => row.n));
    expect([...lost].every((n) => n > lastPresent)).toBe(true);
    expect(lost.size).toBe(writer.acknowledged.filter((w) => w.n > lastPresent).length);

    // The DR site takes writes and serves users.
    expect(await inRecovery(dr.database)).toBe(false);
    await sql(dr.database, "insert into dr_rows (n) values (1001)");
    const status = await drStatus();
    expect(status.report).toMatchObject({ inRecovery: false, appUp: true, routed: "dr" });
    // Users reach the DR site's API through the site switch.
    const answer = await fetch(`http://127.0.0.1:${basePort + 14}/health/ready`);
    expect(answer.status).toBe(200);
    // Audit: every step of the run is on the record.
    const audit = readFileSync(join(stateDirFor(outputs), "audit.jsonl"), "utf8").trim().split("\n").map((line) => JSON.parse(line)).filter((line) => line.runId === doc.runId);
    expect(audit.map((line) => line.step).filter(Boolean)).toEqual(expect.arrayContaining(["Fence the primary site", "Promote pg-dr", "Send users to the DR site"]));
  });

  it("I6: dr failback returns to the original topology: pg-a primary with pg-b streaming, health green, the DR node current again", async () => {
    const run = await cli("dr", "failback", "--yes", "--json");
    expect(run.code, run.stderr).toBe(0);
    expect(document(run.stdout).report).toMatchObject({ homeRejoinedBy: "pg_rewind", trafficTo: expect.stringContaining("primary site") });
    expect(await inRecovery(outputs.database.primary)).toBe(false);
    const replication = await sql<{ application_name: string; sync_state: string }>(outputs.database.primary, "select application_name, sync_state from pg_stat_replication");
    expect(replication).toEqual([{ application_name: "pg-b", sync_state: "sync" }]);
    // What the DR site wrote came home.
    expect((await sql<{ c: string }>(outputs.database.traffic, "select count(*) as c from dr_rows where n = 1001"))[0]!.c).toBe("1");
    const health = await cli("health");
    expect(health.code, health.stdout + health.stderr).toBe(0);
    // Current again: it replayed the last segment the primary archived, and it is within its limit.
    const status = await drStatus();
    expect(status.code).toBe(0);
    expect(status.report).toMatchObject({ inRecovery: true, caughtUpWithArchive: true, appUp: false, routed: "primary" });
    expect((await sandbox()).dr!.activeSite()).toBe("primary");
  });

  it("I5, I6: with a Route53 pair in the outputs, a planned activation loses nothing and moves the PRIMARY half to the DR site; failback moves it back", async () => {
    const dns = { zoneId: "Z0DRTEST", recordName: "api.trading.example.com", healthCheckId: "hc-primary-1", primaryTarget: "prod-lb.eu-west-1.elb.amazonaws.com", drTarget: "dr-lb.eu-central-1.elb.amazonaws.com", ttl: 60 };
    const route53: FakeRoute53 = await startFakeRoute53([dns.zoneId]);
    // The CLI's own client, pointed at the fake the way the AWS SDK lets any client be pointed.
    const env = { AWS_ENDPOINT_URL_ROUTE_53: route53.url, AWS_ACCESS_KEY_ID: "AKIAFAKEROUTE53", AWS_SECRET_ACCESS_KEY: "fake-route53-secret", AWS_REGION: "us-east-1" };
    const primaryHalf = () => route53.zones.get(dns.zoneId)!.filter((set) => set.setIdentifier === "primary");
    try {
      const current = JSON.parse(readFileSync(outputsFile, "utf8"));
      const withDns = join(dir, "outputs-route53.json");
      writeFileSync(withDns, JSON.stringify({ ...current, dr: { ...current.dr, dns } }), { mode: 0o600 });
      const activate = await tradeops(["--outputs", withDns, "dr", "activate", "--yes", "--json"], env);
      expect(activate.code, activate.stderr).toBe(0);
      // The primary answered the fence: its last WAL was switched into the repository and replayed.
      expect((document(activate.stdout).report as { rpo: unknown }).rpo).toMatchObject({ measured: true, lostBytes: 0 });
      expect(primaryHalf()).toEqual([{ name: `${dns.recordName}.`, type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [dns.drTarget], healthCheckId: dns.healthCheckId }]);
      const back = await tradeops(["--outputs", withDns, "dr", "failback", "--yes"], env);
      expect(back.code, back.stderr).toBe(0);
      expect(primaryHalf()).toEqual([{ name: `${dns.recordName}.`, type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [dns.primaryTarget], healthCheckId: dns.healthCheckId }]);
      expect(route53.changes.map((change) => change.action)).toEqual(["UPSERT", "UPSERT"]);
      // The SECONDARY half belongs to the dr stack: never touched.
      expect(route53.zones.get(dns.zoneId)!.filter((set) => set.setIdentifier === "secondary")).toEqual([]);
    } finally {
      await route53.close();
    }
    expect(await inRecovery(outputs.database.primary)).toBe(false);
    expect((await drStatus()).report).toMatchObject({ inRecovery: true, routed: "primary" });
  });

  it("I6: dr failback re-seeds a home node whose data is gone from a fresh backup of the DR node (pgbackrest restore --type=standby --delta)", async () => {
    const activate = await cli("dr", "activate", "--yes");
    expect(activate.code, activate.stderr).toBe(0);
    await sql(dr.database, "insert into dr_rows (n) values (2001)");
    // The primary site's disks are lost: pg_rewind has nothing to rewind.
    await (await sandbox()).postgres.discard("pg-a");
    const run = await cli("dr", "failback", "--yes", "--json");
    expect(run.code, run.stdout + run.stderr).toBe(0);
    expect(document(run.stdout).report).toMatchObject({ homeRejoinedBy: "restored from a fresh backup of pg-dr" });
    expect(await inRecovery(outputs.database.primary)).toBe(false);
    expect((await sql<{ c: string }>(outputs.database.traffic, "select count(*) as c from dr_rows where n in (1001, 2001)"))[0]!.c).toBe("2");
    const replication = await sql<{ application_name: string; sync_state: string }>(outputs.database.primary, "select application_name, sync_state from pg_stat_replication");
    expect(replication).toEqual([{ application_name: "pg-b", sync_state: "sync" }]);
    expect((await drStatus()).report).toMatchObject({ inRecovery: true, routed: "primary" });
  });

  it("I5, C8: drill --site: the primary site killed under load, dr activate, the writes lost counted at the DR site, dr failback; report and plot", async () => {
    const reportDir = join(dir, "site-drill");
    const run = await tradeops(["drill", "--site", "--cycles", "1", "--dir", dir, "--report", reportDir, "--json"]);
    expect(run.code, run.stdout.slice(-2_000) + run.stderr.slice(-2_000)).toBe(0);
    const summary = JSON.parse(readFileSync(join(reportDir, "drill.json"), "utf8"));
    expect(summary).toMatchObject({ kind: "site", cycles: [{ from: "primary site", to: "pg-dr", fencedRefusedWrite: true }] });
    const [cycle] = summary.cycles;
    expect(cycle.rtoSeconds).toBeGreaterThan(0);
    expect(cycle.acknowledged).toBeGreaterThan(0);
    expect(cycle.lostSeconds).toBeGreaterThanOrEqual(0);
    expect(cycle.rejoinedBy).toMatchObject({ "pg-a": "pg_rewind" });
    const markdown = readFileSync(join(reportDir, "drill.md"), "utf8");
    expect(markdown).toContain("# Whole-site DR drill");
    expect(markdown).toContain("RTO: dr activate's first step → first write at the DR site");
    expect(readFileSync(join(reportDir, "timeline.png")).subarray(1, 4).toString()).toBe("PNG");
    // Home again.
    expect(await inRecovery(outputs.database.primary)).toBe(false);
    expect((await drStatus()).report).toMatchObject({ inRecovery: true, routed: "primary" });
  });
});
