/**
 * Failover, switchover, failback and the drill (issue #8) on the run's shared sandbox: a real
 * PostgreSQL pair behind a real HAProxy. Every test leaves the sandbox as it found it — pg-a the
 * primary, pg-b streaming synchronously, health green — because the files after this one need it.
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, describe, expect, inject, it } from "vitest";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { onPg } from "../../runbooks/connect.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { auxiliaryProcess, expectBoundedRefusal } from "../support/hang.ts";
import { tradeops } from "../support/tradeops.ts";

const sandboxDir = inject("sandboxDir");
const home = inject("tradeopsHome");
const outputsFile = inject("outputsFile");
const initial = await loadOutputs({ stack: "sandbox", outputsFile });
const auditFile = join(stateDirFor(initial), "audit.jsonl");
const sandbox = () => openSandbox({ dir: sandboxDir });
/** A runbook on the run's sandbox: its outputs.json is read afresh by every command (roles change under the tests). */
const cli = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
/** `tradeops sandbox <verb> --dir <the run's sandbox> …` */
const sandboxCli = (verb: string, ...args: string[]) => tradeops(["sandbox", verb, "--dir", sandboxDir, ...args]);

/** Who takes writes, asked of both nodes directly. */
async function writable(): Promise<string[]> {
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
  const nodes = [outputs.database.primary, outputs.database.standby!];
  const states = await Promise.all(nodes.map((node) => onPg(outputs, node, async (c) => (await c.query("select pg_is_in_recovery() as r")).rows[0].r, { timeoutMs: 3_000 }).catch(() => undefined)));
  return nodes.filter((_, i) => states[i] === false).map((node) => node.name);
}

async function homeTopology(): Promise<{ primary: string; standby: string; sync: string | undefined }> {
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
  const sync = await onPg(outputs, outputs.database.primary, async (c) => (await c.query("select sync_state from pg_stat_replication where application_name = $1", [outputs.database.standby!.name])).rows[0]?.sync_state);
  return { primary: outputs.database.primary.name, standby: outputs.database.standby!.name, sync };
}

/** Back to the home topology whatever a failed test left. */
afterAll(async () => {
  if ((await writable()).join() !== "pg-a") await cli("failback");
  await sandboxCli("up", "--sync");
});

describe("failover (#8)", () => {
  it("I5: failover --dry-run prints the plan and changes nothing: the primary still takes writes", async () => {
    const run = await cli("failover", "--dry-run");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("3. Fence the old primary pg-a");
    expect(run.stdout).toContain("4. Promote pg-b");
    expect(await writable()).toEqual(["pg-a"]);
    const port = await onPg(initial, initial.database.traffic, async (c) => {
      await c.query("create table if not exists t_dry (i int)");
      return (await c.query("insert into t_dry values (1) returning inet_server_port() as port")).rows[0].port;
    });
    expect(port).toBe(initial.database.primary.port);
  });

  it("I6: failover refuses (exit 3, nothing changed) when the standby is stopped", async () => {
    await (await sandbox()).stop("pg-b");
    try {
      const run = await cli("failover");
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/pg-b does not answer .*: there is nothing to fail over to/);
      expect(await writable()).toEqual(["pg-a"]);
    } finally {
      expect((await sandboxCli("up")).code).toBe(0);
    }
  });

  it("I6: failover refuses (exit 3) when the standby's lag exceeds --max-lag; --force --reason proceeds and the audit log says who and why", async () => {
    // Replay stalls while the primary writes: pg-b receives (sync commits go on) but does not apply.
    const startup = auxiliaryProcess(initial.database.standby!.dataDir, "startup");
    process.kill(startup, "SIGSTOP");
    let resumed = false;
    try {
      await onPg(initial, initial.database.traffic, (c) => c.query("create table if not exists t_lag (i int); insert into t_lag select generate_series(1, 20000)"));
      const refused = await cli("failover", "--max-lag", "1000");
      expect(refused.code).toBe(3);
      expect(refused.stderr).toMatch(/pg-b replay lag [\d.]+ (kB|MB) exceeds --max-lag 1000 B/);
      expect(await writable()).toEqual(["pg-a"]);

      expect((await cli("failover", "--max-lag", "1000", "--force")).stderr).toMatch(/--force needs --reason/);
      process.kill(startup, "SIGCONT");
      resumed = true;
      const forced = await cli("failover", "--max-lag", "1000", "--force", "--reason", "drill: forced past the lag", "--json");
      expect(forced.code, forced.stderr).toBe(0);
      const doc = RunDocument.parse(JSON.parse(forced.stdout));
      const audit = readFileSync(auditFile, "utf8").trim().split("\n").map((line) => JSON.parse(line)).filter((line) => line.runId === doc.runId);
      expect(audit.find((line) => line.facts?.forced)?.facts.forced).toMatchObject({ reason: "drill: forced past the lag", who: expect.stringContaining("@") });
      expect(await writable()).toEqual(["pg-b"]);
      // The promoted node streams to nobody until failback: the report says what that costs.
      expect((doc.report as { standby: string }).standby).toBe("none until `tradeops failback` rejoins pg-a: commits are not synchronous meanwhile (RPO 0 suspended)");
    } finally {
      if (!resumed) process.kill(startup, "SIGCONT");
    }
    const back = await cli("failback");
    expect(back.code, back.stderr).toBe(0);
    expect(await homeTopology()).toEqual({ primary: "pg-a", standby: "pg-b", sync: "sync" });
  });

  it("I6: with the standby hung, failover refuses within seconds naming it (the deadline helper, #14)", async () => {
    await expectBoundedRefusal(await sandbox(), "pg-b", () => cli("failover"), { names: /pg-b does not answer \(no answer within 3 s\)/, withinSeconds: 15 });
    expect(await writable()).toEqual(["pg-a"]);
  });
});

describe("switchover and failback (#8)", () => {
  it("I5: switchover moves the primary with both nodes up, loses nothing, and the old primary rejoins as the synchronous standby", async () => {
    const before = await onPg(initial, initial.database.traffic, async (c) => {
      await c.query("create table if not exists t_switch (i serial primary key, at timestamptz default now())");
      return (await c.query("insert into t_switch default values returning i")).rows[0].i as number;
    });
    const run = await cli("switchover", "--json");
    expect(run.code, run.stderr).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { writeGapSeconds: number };
    expect(report.writeGapSeconds).toBeGreaterThan(0);
    expect(await homeTopology()).toEqual({ primary: "pg-b", standby: "pg-a", sync: "sync" });
    const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
    expect(await onPg(outputs, outputs.database.traffic, async (c) => (await c.query("select count(*)::int as n from t_switch where i <= $1", [before])).rows[0].n)).toBe(before);
    // The sandbox follows the new roles: up starts nothing new, health and diagnose see pg-b as the primary.
    const up = await sandboxCli("up", "--json");
    expect(up.code, up.stderr).toBe(0);
    expect(RunDocument.parse(JSON.parse(up.stdout)).steps.filter((step) => step.outcome === "ok").map((step) => step.name)).toEqual([
      `Prepare the sandbox directory ${sandboxDir}`,
      "Check that every component answers",
    ]);
    expect((await cli("health")).code).toBe(0);
    const diagnose = await cli("diagnose", "--json");
    expect((RunDocument.parse(JSON.parse(diagnose.stdout)).facts.replication as { rows: string[][] }).rows).toContainEqual(expect.arrayContaining(["pg-a", "streaming", "sync"]));
  });

  it("I6: failback switches back to the home node; run again it is a no-op that says so", async () => {
    const run = await cli("failback");
    expect(run.code, run.stderr).toBe(0);
    expect(await homeTopology()).toEqual({ primary: "pg-a", standby: "pg-b", sync: "sync" });
    expect((await cli("health")).code).toBe(0);
    const again = await cli("failback");
    expect(again.code).toBe(0);
    expect(again.stdout.trim()).toBe("already in the home topology: nothing was done");
    expect(again.stderr).toMatch(/\[2\/\d+\] Rejoin pg-a as a standby of pg-b: skipped/);
  });

  it("I5: switchover refuses (exit 3) with the standby down; failback refuses (exit 3) when no node takes writes", async () => {
    const s = await sandbox();
    await s.stop("pg-b");
    try {
      const run = await cli("switchover");
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/pg-b does not answer .*a switchover needs a standby it can promote/);
      await s.stop("pg-a");
      const back = await cli("failback");
      expect(back.code).toBe(3);
      expect(back.stderr).toMatch(/no node takes writes/);
    } finally {
      const up = await sandboxCli("up");
      expect(up.code, up.stderr).toBe(0);
    }
    expect(await homeTopology()).toEqual({ primary: "pg-a", standby: "pg-b", sync: "sync" });
  });

  it("I5: with a node hung, switchover and failback refuse within seconds naming it, and change nothing (the deadline helper, #14)", async () => {
    await expectBoundedRefusal(await sandbox(), "pg-b", () => cli("switchover"), { names: /pg-b .*no answer within 3 s/, withinSeconds: 15 });
    await expectBoundedRefusal(await sandbox(), "pg-a", () => cli("failback"), { names: /pg-a .*no answer within 3 s/, withinSeconds: 15 });
    expect(await homeTopology()).toEqual({ primary: "pg-a", standby: "pg-b", sync: "sync" });
  });
});

describe("the drill (#8)", () => {
  it("I5: drill --cycles 2, synchronous: every acknowledged write survives each SIGKILL, the fenced old primary refuses writes, report and plot written", async () => {
    const reportDir = join(home, "drill-sync");
    const run = await tradeops(["drill", "--cycles", "2", "--dir", sandboxDir, "--report", reportDir, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    const drill = JSON.parse(readFileSync(join(reportDir, "drill.json"), "utf8")) as { mode: string; cycles: Array<{ lost: number[]; acknowledged: number; fencedRefusedWrite: boolean; rtoSeconds: number; failbackSeconds: number }> };
    expect(drill.mode).toBe("sync");
    expect(drill.cycles).toHaveLength(2);
    for (const cycle of drill.cycles) {
      expect(cycle.acknowledged).toBeGreaterThan(100);
      expect(cycle.lost).toEqual([]);
      expect(cycle.fencedRefusedWrite).toBe(true);
      expect(cycle.rtoSeconds).toBeGreaterThan(0);
      expect(cycle.failbackSeconds).toBeGreaterThan(0);
    }
    expect(readdirSync(reportDir).sort()).toEqual(["drill.json", "drill.md", "timeline.png", "timeline.svg"]);
    expect(readFileSync(join(reportDir, "timeline.png")).subarray(1, 4).toString()).toBe("PNG");
    expect(readFileSync(join(reportDir, "timeline.svg"), "utf8")).toMatch(/^<svg/);
    expect(readFileSync(join(reportDir, "drill.md"), "utf8")).toContain("| RPO: acknowledged writes lost | 0 | 0 | 0 |");
    expect(await homeTopology()).toEqual({ primary: "pg-a", standby: "pg-b", sync: "sync" });
  });

  it("I5: drill --async measures and reports the writes it lost instead of claiming zero", async () => {
    const reportDir = join(home, "drill-async");
    try {
      const run = await tradeops(["drill", "--cycles", "1", "--async", "--dir", sandboxDir, "--report", reportDir]);
      expect(run.code, run.stderr).toBe(0);
      const drill = JSON.parse(readFileSync(join(reportDir, "drill.json"), "utf8")) as { mode: string; cycles: Array<{ lost: number[]; acknowledged: number }> };
      expect(drill.mode).toBe("async");
      expect(Array.isArray(drill.cycles[0]!.lost)).toBe(true);
      expect(readFileSync(join(reportDir, "drill.md"), "utf8")).toMatch(/asynchronous replication/);
      expect(run.stdout).toMatch(/RPO: acknowledged writes lost\s+\d+\s+\d+\s+\d+/);
    } finally {
      expect((await sandboxCli("up", "--sync")).code).toBe(0);
    }
    expect(existsSync(join(reportDir, "timeline.png"))).toBe(true);
  });
});
