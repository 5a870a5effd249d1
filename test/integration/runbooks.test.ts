/**
 * health, diagnose and backup run by the real CLI against the real sandbox of this test run
 * (global-setup.ts): PostgreSQL primary + synchronous standby, HAProxy, Redis, s3rver + pgBackRest,
 * the ops API.
 */
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, it } from "vitest";
import { opsApiRequest } from "../../clients/ops-api.ts";
import { secretValues } from "../../contract/outputs.ts";
import { PgbackrestInfo } from "../../runbooks/backup.ts";
import { HealthDocument } from "../../runbooks/health.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { onPg } from "../../runbooks/connect.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { pgbackrest } from "../../runbooks/platform/db-node.ts";
import { lockFor } from "../../runbooks/locks/index.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const auditFile = join(stateDirFor(outputs), "audit.jsonl");
const onStack = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);

async function backupLabels(): Promise<string[]> {
  const info = PgbackrestInfo.parse(JSON.parse(await pgbackrest(outputs)("info", ["--output=json"])));
  return info[0]?.backup.map((b) => b.label) ?? [];
}

describe("health (Z1, S3, C1)", () => {
  it("Z1: health shows every component healthy with its latency and exits 0", async () => {
    const run = await onStack("health", "--json");
    expect(run.code, run.stderr).toBe(0);
    const doc = HealthDocument.parse(JSON.parse(run.stdout));
    expect(doc.report?.components.map((c) => c.component).sort()).toEqual(
      ["alertmanager", "backup-repository", "ops-api", "primary", "prometheus", "redis", "standby", "traffic"],
    );
    for (const component of doc.report!.components) {
      expect(component.status, `${component.component}: ${component.detail}`).toBe("healthy");
      expect(component.latencyMs).toBeGreaterThan(0);
    }
    expect(doc.report!.components.find((c) => c.component === "traffic")?.detail).toBe("routes to pg-a (writable)");
    expect(doc.report!.components.find((c) => c.component === "standby")?.detail).toMatch(/^pg-b streaming \(sync\), replay lag/);
  });

  it("Z1: the text report is a table with a headline", async () => {
    const run = await onStack("health");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^healthy: all 8 components healthy\nCOMPONENT\s+STATUS\s+LATENCY/);
    expect(run.stdout).toMatch(/^standby\s+healthy\s+\d+\.\d ms/m);
  });
});

describe("diagnose (Z5)", () => {
  it("Z5: diagnose shows the replication state, biggest tables, Redis queues and data dir disk use", async () => {
    const run = await onStack("diagnose", "--json");
    expect(run.code, run.stderr).toBe(0);
    const facts = RunDocument.parse(JSON.parse(run.stdout)).facts as Record<string, { rows: unknown[][]; note?: string }>;
    expect(facts.replication!.rows).toContainEqual(expect.arrayContaining(["pg-b", "streaming", "sync"]));
    expect(facts.biggestTables!.rows.map((r) => r[0])).toContain("public.kill_switch_events");
    expect(facts.redis!.rows).toContainEqual(["queue:trade-execution", expect.any(Number)]);
    expect(facts.timescaleChunks!.note).toBe("TimescaleDB extension not installed: no chunks to show");
    expect(facts.disk!.rows.map((r) => r[0])).toEqual(["pg-a", "pg-b"]);
    expect(facts.disk!.rows[0]![4]).toMatch(/ of .* \(\d+ %\)$/);
  });
});

describe("backup (Z6, S8, I7) and the engine's safety rails", () => {
  it("Z6: --dry-run of backup prints the plan and the repository gains nothing", async () => {
    const before = await backupLabels();
    const run = await onStack("backup", "--dry-run");
    expect(run.code).toBe(0);
    expect(run.stdout).toContain("1. Check the backup repository and WAL archiving");
    expect(run.stdout).toContain("2. Take a full backup\n");
    expect(await backupLabels()).toEqual(before);
  });

  it("Z6: backup takes a full backup, the repository lists it, and the audit log has one masked line per step", async () => {
    const before = await backupLabels();
    const run = await onStack("backup", "--json");
    expect(run.code, run.stderr).toBe(0);
    const doc = RunDocument.parse(JSON.parse(run.stdout));
    const after = await backupLabels();
    expect(after).toHaveLength(before.length + 1);
    expect(doc.facts.backup).toMatchObject({ label: after.at(-1), type: "full" });

    expect(doc.auditFile).toBe(auditFile);
    const audit = readFileSync(auditFile, "utf8");
    const lines = audit.trim().split("\n").map((l) => JSON.parse(l)).filter((l) => l.runId === doc.runId);
    expect(lines.map((l) => [l.step ?? null, l.result])).toEqual([
      [null, "started"],
      ["Check the backup repository and WAL archiving", "ok"],
      ["Take a full backup", "ok"],
      [null, "finished"],
    ]);
    const secrets = secretValues(outputs);
    expect(secrets.length).toBeGreaterThanOrEqual(6);
    for (const secret of secrets) expect(audit).not.toContain(secret);
  });

  it("Z6: backup refuses (exit 3) when the outputs name a repository that does not answer, and takes nothing", async () => {
    const before = await backupLabels();
    const elsewhere = join(sandboxDir, "outputs-elsewhere.json");
    const doc = JSON.parse(readFileSync(outputsFile, "utf8"));
    doc.backup.port = 1; // nothing listens there: the config file's own endpoint must not be used instead
    writeFileSync(elsewhere, JSON.stringify(doc), { mode: 0o600 });
    const run = await tradeops(["--outputs", elsewhere, "backup"]);
    expect(run.code).toBe(3);
    expect(run.stderr).toMatch(/stopped at "Check the backup repository and WAL archiving": backup repository does not answer: /);
    expect(await backupLabels()).toEqual(before);
  });

  it("I6: copies of one cluster's outputs meet one lock: the second mutating runbook exits 3 naming the holder; another cluster is not blocked", async () => {
    const copy = (name: string, change: (doc: Record<string, any>) => void) => {
      const doc = JSON.parse(readFileSync(outputsFile, "utf8"));
      change(doc);
      // In the run's TRADEOPS_HOME, which the global teardown deletes.
      const file = join(mkdtempSync(join(process.env.TRADEOPS_HOME!, `${name}-`)), "outputs.json");
      writeFileSync(file, JSON.stringify(doc), { mode: 0o600 });
      return file;
    };
    // The second operator's copy: another platform.dir, another directory for the file.
    const sameCluster = copy("same-cluster", (doc) => (doc.platform.dir = "/srv/elsewhere"));
    const otherCluster = copy("other-cluster", (doc) => (doc.backup.port = 1));
    const first = onStack("backup", "--type", "incr");
    const lock = lockFor(outputs).where;
    for (let i = 0; i < 200 && !existsSync(lock); i++) await sleep(25);
    expect(existsSync(lock)).toBe(true);
    for (const outputsCopy of [outputsFile, sameCluster, sameCluster]) {
      const second = await tradeops(["--outputs", outputsCopy, "backup"]);
      expect(second.code).toBe(3);
      expect(second.stderr).toMatch(/^tradeops: refused: stack is locked by runbook 'backup' \(pid \d+ on \S+, .*, since /);
    }
    // Another cluster takes its own lock and gets as far as its own precondition.
    const other = await tradeops(["--outputs", otherCluster, "backup"]);
    expect(other.code).toBe(3);
    expect(other.stderr).toMatch(/backup repository does not answer/);
    expect((await first).code).toBe(0);
    expect(existsSync(lock)).toBe(false);
  });
});

describe("unlock (#16)", () => {
  it("I6: a lock left by a run on another host blocks backup; unlock --force --yes removes it, on the record", async () => {
    const lock = lockFor(outputs).where;
    const gone = { runbook: "failover", runId: "0b5c9f3e-1d2a-4c55-9a51-0d9e7f6a1b2c", pid: 4242, host: "operator-laptop", who: "alice@operator-laptop", since: "2026-12-03T03:12:00.000Z" };
    writeFileSync(lock, JSON.stringify(gone));
    const blocked = await onStack("backup");
    expect(blocked.code).toBe(3);
    expect(blocked.stderr).toMatch(/stack is locked by runbook 'failover' \(pid 4242 on operator-laptop, alice@operator-laptop/);

    const withoutForce = await onStack("unlock", "--yes");
    expect(withoutForce.code).toBe(3);
    expect(withoutForce.stderr).toMatch(/pass --force \(and --yes\)/);
    expect(existsSync(lock)).toBe(true);

    const unlocked = await onStack("unlock", "--force", "--yes", "--json");
    expect(unlocked.code, unlocked.stderr).toBe(0);
    const doc = RunDocument.parse(JSON.parse(unlocked.stdout));
    expect(doc.report).toEqual({ removed: gone });
    expect(existsSync(lock)).toBe(false);
    const removal = readFileSync(auditFile, "utf8").trim().split("\n").map((line) => JSON.parse(line)).find((line) => line.runId === doc.runId && line.step?.startsWith("Remove the stack lock"));
    expect(removal).toMatchObject({ result: "ok", facts: { removed: { who: "alice@operator-laptop", runbook: "failover" } } });
  });
});

describe("secrets never leak", () => {
  it("a secret inside a running query is masked in diagnose's report, --json and the audit log", async () => {
    const token = outputs.opsApi.token;
    const adminKey = outputs.opsApi.killSwitchAdminKey!;
    expect(adminKey).toBeTruthy();
    // A query text carrying credentials (it happens: a bad app logs them in SQL comments).
    const slowQuery = onPg(outputs, outputs.database.traffic, (c) => c.query(`select pg_sleep(4), '${token}', '${adminKey}'`));
    await sleep(500);
    const json = await onStack("diagnose", "--json");
    const text = await onStack("diagnose");
    await slowQuery;
    expect(json.code).toBe(0);
    const activeQueries = (RunDocument.parse(JSON.parse(json.stdout)).facts.activeQueries as { rows: string[][] }).rows;
    expect(activeQueries.map((r) => r.at(-1))).toContainEqual(expect.stringMatching(/pg_sleep\(4\), '\*\*\*\*', '\*\*\*\*'/));
    expect(text.stdout).toMatch(/pg_sleep\(4\), '\*\*\*\*'/);
    const audit = readFileSync(auditFile, "utf8");
    for (const output of [json.stdout, json.stderr, text.stdout, text.stderr, audit]) {
      expect(output).not.toContain(token);
      expect(output).not.toContain(adminKey);
      expect(output).not.toContain(token.slice(0, 12));
    }
  });
});

describe("health when a component dies", () => {
  it("Z1: killing the standby makes health exit 1 naming it; sandbox up brings it back", async () => {
    const standby = outputs.database.standby!;
    const postmasterPid = Number(readFileSync(join(standby.dataDir, "postmaster.pid"), "utf8").split("\n")[0]);
    process.kill(postmasterPid, "SIGKILL");

    const run = await onStack("health", "--json");
    expect(run.code).toBe(1);
    const doc = HealthDocument.parse(JSON.parse(run.stdout));
    const byName = Object.fromEntries(doc.report!.components.map((c) => [c.component, c]));
    expect(byName.standby).toMatchObject({ status: "unhealthy", detail: expect.stringMatching(/ECONNREFUSED|connect/) });
    // Synchronous replication: with its standby gone the primary's commits would wait forever.
    expect(byName.primary).toMatchObject({ status: "unhealthy", detail: expect.stringMatching(/synchronous standby/) });
    expect(doc.failure?.message).toMatch(/^unhealthy: .*standby/);

    const text = await onStack("health");
    expect(text.code).toBe(1);
    expect(text.stderr).toMatch(/✖ health stopped at "Confirm every component is healthy": unhealthy: .*standby \(/);

    const up = await tradeops(["sandbox", "up", "--dir", sandboxDir]);
    expect(up.code, up.stderr).toBe(0);
    const healed = await onStack("health");
    expect(healed.code, healed.stdout).toBe(0);
  });

  it("S5: Prometheus killed with SIGKILL: health exits 1 naming it (the monitoring that pages people is a component too)", async () => {
    const sandbox = await openSandbox({ dir: sandboxDir });
    process.kill(sandbox.pid("prometheus")!, "SIGKILL");
    try {
      const run = await onStack("health", "--json");
      expect(run.code).toBe(1);
      const prometheus = HealthDocument.parse(JSON.parse(run.stdout)).report!.components.find((c) => c.component === "prometheus");
      expect(prometheus).toMatchObject({ status: "unhealthy", detail: expect.stringMatching(/cannot reach http:\/\/127\.0\.0\.1:\d+\/-\/ready \(ECONNREFUSED\)/) });
    } finally {
      await sandbox.start("prometheus");
    }
    expect((await onStack("health")).code).toBe(0);
  });

  it("Z1: a stopped Redis is named as not answering on its host and port, not with the client's raw text", async () => {
    const sandbox = await openSandbox({ dir: sandboxDir });
    await sandbox.stop("redis");
    try {
      const run = await onStack("health", "--json");
      expect(run.code).toBe(1);
      const redis = HealthDocument.parse(JSON.parse(run.stdout)).report!.components.find((c) => c.component === "redis");
      expect(redis?.detail).toMatch(new RegExp(`^Redis does not answer on ${outputs.redis.host}:${outputs.redis.port} `));
      expect(redis?.detail).not.toContain("Connection is closed.");
    } finally {
      await sandbox.start("redis");
      // The API's Redis client reconnects with a backoff: the files after this one need it ready.
      for (let i = 0; i < 100 && (await opsApiRequest(outputs.opsApi, "/health/ready").catch(() => ({ status: 0 }))).status !== 200; i++) await sleep(100);
    }
  });
});
