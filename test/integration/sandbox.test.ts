/**
 * The sandbox of this run (global-setup.ts), judged by outcomes: writes through HAProxy land on
 * the primary and reach the synchronous standby, Redis and the S3 store answer with their
 * credentials, WAL reaches the repository, up/down are idempotent and leave nothing behind, and
 * dry runs, refusals and damaged state files (through the real CLI) change nothing.
 */
import { randomUUID } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from "node:fs";
import { Agent } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ListObjectsV2Command, S3Client } from "@aws-sdk/client-s3";
import { afterAll, describe, expect, inject, it } from "vitest";
import { secretValues, StackOutputs } from "../../contract/outputs.ts";
import { onPg, onRedis } from "../../runbooks/connect.ts";
import { parseArgs, runRunbook } from "../../runbooks/engine/run.ts";
import type { Runbook, Target } from "../../runbooks/engine/runbook.ts";
import { sandboxDown, sandboxStatus, sandboxUp } from "../../runbooks/sandbox.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import type { ComponentStatus } from "../../sandbox/index.ts";
import { stanzaInfo } from "../../sandbox/components/backup-stanza.ts";
import { isAlive, markedProcesses } from "../../sandbox/processes.ts";
import { resolveSandboxLayout, sandboxProcesses } from "../../sandbox/sandbox.ts";
import { SandboxSecrets } from "../../sandbox/secrets.ts";
import { tradeops } from "../support/tradeops.ts";

const sandboxDir = inject("sandboxDir");
const outputsFile = inject("outputsFile");
const outputs = StackOutputs.parse(JSON.parse(readFileSync(outputsFile, "utf8")));
const layout = resolveSandboxLayout({ dir: sandboxDir });
const probeToken = randomUUID();

function pidExists(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/** A sandbox runbook through the engine, as the CLI runs it (its own target, the run's home). */
async function runSandbox<Args, T extends Target>(runbook: Runbook<Args, T>, rawArgs: Record<string, unknown>) {
  const args = parseArgs(runbook, rawArgs);
  const target = await runbook.target!(args, { stack: "sandbox" });
  return runRunbook(runbook, args, { target, stateDir: stateDirFor(target.outputs), yes: true, quiet: true });
}

async function timed<T>(label: string, work: () => Promise<T>): Promise<T> {
  const startedAt = performance.now();
  const result = await work();
  process.stderr.write(`[sandbox.test] ${label} in ${((performance.now() - startedAt) / 1000).toFixed(2)} s\n`);
  return result;
}

describe("sandbox outputs", () => {
  it("S1: outputs.json passes the outputs contract and, like secrets.json, is readable by its owner only", () => {
    expect(outputs.platform).toMatchObject({ kind: "sandbox", dir: sandboxDir });
    expect(outputs.database).toMatchObject({ name: "trading", user: "tradeops", replication: { mode: "sync", slot: "pg_b" } });
    expect(outputs.backup).toMatchObject({ endpoint: "localhost", uriStyle: "path", stanza: "trading", prefix: "/pgbackrest" });
    expect(statSync(outputsFile).mode & 0o777).toBe(0o600);
    expect(statSync(layout.files.secrets).mode & 0o777).toBe(0o600);
  });

  it("I1, I6: outputs.json carries the replication role and password and the kill-switch admin key, all masked as secrets", () => {
    const secrets = SandboxSecrets.parse(JSON.parse(readFileSync(layout.files.secrets, "utf8")));
    expect(outputs.database.replication).toMatchObject({ user: "replicator", password: secrets.replicatorPassword });
    expect(outputs.opsApi.killSwitchAdminKey).toBe(secrets.killSwitchAdminKey);
    expect(secretValues(outputs)).toEqual(expect.arrayContaining([secrets.replicatorPassword, secrets.killSwitchAdminKey]));
  });
});

describe("PostgreSQL pair", () => {
  it("I5: the primary accepts a write through the traffic endpoint (HAProxy → pg-a)", async () => {
    const served = await onPg(outputs, outputs.database.traffic, async (client) => {
      await client.query("CREATE TABLE IF NOT EXISTS sandbox_probe (token text PRIMARY KEY, at timestamptz DEFAULT now())");
      await client.query("INSERT INTO sandbox_probe (token) VALUES ($1)", [probeToken]);
      return (await client.query<{ port: number; recovery: boolean }>("SELECT inet_server_port() AS port, pg_is_in_recovery() AS recovery")).rows[0];
    });
    expect(served).toEqual({ port: outputs.database.primary.port, recovery: false });
  });

  it("I5: the standby is in recovery, streams synchronously from the primary, and sees the row", async () => {
    const replication = await onPg(outputs, outputs.database.primary, async (client) =>
      (await client.query("SELECT application_name, state, sync_state FROM pg_stat_replication")).rows,
    );
    expect(replication).toContainEqual({ application_name: "pg-b", state: "streaming", sync_state: "sync" });
    await onPg(outputs, outputs.database.standby!, async (client) => {
      expect((await client.query("SELECT pg_is_in_recovery() AS recovery")).rows[0].recovery).toBe(true);
      // Sync commit waits for the standby's flush, not its replay: allow a moment to apply.
      await expect
        .poll(async () => (await client.query("SELECT count(*)::int AS n FROM sandbox_probe WHERE token = $1", [probeToken])).rows[0].n, { timeout: 5_000 })
        .toBe(1);
    });
  });
});

describe("Redis, S3 store, pgBackRest", () => {
  it("S7: Redis answers PING with its password and runs with appendonly yes", async () => {
    await onRedis(outputs, async (redis) => {
      expect(await redis.ping()).toBe("PONG");
      expect(await redis.config("GET", "appendonly")).toEqual(["appendonly", "yes"]);
    });
  });

  it("I7: the S3 bucket is listable over TLS with the sandbox CA and holds the pgBackRest repository", async () => {
    const { backup } = outputs;
    const s3 = new S3Client({
      region: backup.region,
      endpoint: `https://${backup.endpoint}:${backup.port}`,
      forcePathStyle: true,
      credentials: { accessKeyId: backup.accessKeyId, secretAccessKey: backup.secretAccessKey },
      requestHandler: { httpsAgent: new Agent({ ca: readFileSync(backup.caFile!) }) },
    });
    try {
      const listing = await s3.send(new ListObjectsV2Command({ Bucket: backup.bucket, Prefix: "pgbackrest/" }));
      expect(listing.KeyCount).toBeGreaterThan(0);
      expect(listing.Contents?.map((object) => object.Key)).toContain("pgbackrest/archive/trading/archive.info");
    } finally {
      s3.destroy();
    }
  });

  it("I7: pgbackrest info shows the stanza sound and the WAL segment of pg_switch_wal archived", async () => {
    const switched = await onPg(outputs, outputs.database.primary, async (client) => {
      await client.query("INSERT INTO sandbox_probe (token) VALUES ($1) ON CONFLICT DO NOTHING", [`${probeToken}-wal`]);
      return (await client.query<{ wal: string }>("SELECT pg_walfile_name(pg_switch_wal()) AS wal")).rows[0]!.wal;
    });
    await expect
      .poll(async () => {
        const info = await stanzaInfo(layout);
        // Status 0 ok, or 2 "no valid backups": up takes no backup (another test file may have).
        return { sound: info?.status.code === 0 || info?.status.code === 2, archived: (info?.archive[0]?.max ?? "") >= switched };
      }, { timeout: 15_000, interval: 250 })
      .toEqual({ sound: true, archived: true });
  });
});

describe("ops API and Prometheus", () => {
  it("Z1: the ops API is ready: /health/ready answers 200 (database via HAProxy and Redis healthy)", async () => {
    const response = await fetch(new URL("/health/ready", outputs.opsApi.url), { signal: AbortSignal.timeout(5_000) });
    expect(response.status, await response.text()).toBe(200);
  });

  it("S4: Prometheus scrapes the ops API and loaded the S5 alert rules", async () => {
    const prometheus = `http://${layout.host}:${layout.ports.prometheus}`;
    await expect
      .poll(async () => {
        const body = (await (await fetch(`${prometheus}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ labels: { job: string }; health: string }> } };
        return body.data.activeTargets.find((target) => target.labels.job === "ops-api")?.health;
      }, { timeout: 20_000, interval: 500 })
      .toBe("up");
    expect(await (await fetch(`${prometheus}/api/v1/rules`)).text()).toContain('"LowDatabaseConnections"');
  });
});

describe("up / status / down", () => {
  it("S1: a second up starts nothing: every component step is skipped", async () => {
    const result = await timed("warm (idempotent) up", () => runSandbox(sandboxUp, { dir: sandboxDir, mode: "sync" }));
    expect(result.exitCode, result.failure?.message).toBe(0);
    const componentSteps = result.steps.slice(1, -1);
    expect(componentSteps).toHaveLength(12);
    expect(componentSteps.filter((step) => step.outcome !== "skipped").map((step) => step.name)).toEqual([]);
  });

  it("S3: status reports every component up with its pid and port", async () => {
    const result = await runSandbox(sandboxStatus, { dir: sandboxDir });
    const components = result.facts.components as ComponentStatus[];
    expect(components.filter((c) => c.state !== "up").map((c) => c.name)).toEqual([]);
    for (const component of components.filter((c) => c.name !== "stanza")) {
      expect(component.pid, component.name).toBeGreaterThan(0);
      expect(component.port, component.name).toBeGreaterThan(0);
    }
    expect(result.reportText).toMatch(/^pg-b\s+up\s+\d+\s+\d+\s+standby, streaming, sync$/m);
  });

  it("Z4: down stops every recorded process and leaves none behind; up brings the same data back", async () => {
    const before = (await runSandbox(sandboxStatus, { dir: sandboxDir })).facts.components as ComponentStatus[];
    const recordedPids = before.flatMap((c) => (c.pid ? [c.pid] : []));
    expect(recordedPids).toHaveLength(11);

    const down = await timed("down", () => runSandbox(sandboxDown, { dir: sandboxDir }));
    expect(down.exitCode, down.failure?.message).toBe(0);
    for (const pid of recordedPids) expect(isAlive(pid), `pid ${pid} still running`).toBe(false);
    // An exited daemon stays a zombie until init reaps it; kill(pid, 0) succeeds until then.
    await expect.poll(() => recordedPids.filter(pidExists), { timeout: 10_000, interval: 100 }).toEqual([]);
    expect(sandboxProcesses(layout)).toEqual([]);

    const up = await timed("up on existing data", () => runSandbox(sandboxUp, { dir: sandboxDir, mode: "sync" }));
    expect(up.exitCode, up.failure?.message).toBe(0);
    const rows = await onPg(outputs, outputs.database.traffic, async (client) => (await client.query("SELECT count(*)::int AS n FROM sandbox_probe WHERE token = $1", [probeToken])).rows[0].n);
    expect(rows).toBe(1);
  });
});

describe("dry runs, refusals and damaged state files change nothing (through the CLI)", () => {
  const scratch = mkdtempSync(join(tmpdir(), "tradeops-it-scratch-"));
  // The postgres OS user must be able to traverse it, or up would be refused for that instead.
  chmodSync(scratch, 0o755);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  /** Names one and two levels down: what a purge would remove first (deeper files churn with WAL and TSDB). */
  function topEntries(dir: string): string[] {
    return readdirSync(dir, { withFileTypes: true }).flatMap((entry) =>
      entry.isDirectory() ? [entry.name, ...readdirSync(join(dir, entry.name)).map((child) => `${entry.name}/${child}`)] : [entry.name],
    );
  }
  const componentPids = async () =>
    ((await runSandbox(sandboxStatus, { dir: sandboxDir })).facts.components as ComponentStatus[]).map((c) => [c.name, c.state, c.pid]);
  const oneLineOfStderr = (stderr: string) => stderr.trim().split("\n");

  it("S3: down --purge --dry-run prints the plan; every component stays up and no file is removed", async () => {
    const [pidsBefore, filesBefore] = [await componentPids(), topEntries(sandboxDir)];
    expect(pidsBefore.filter(([, state]) => state !== "up")).toEqual([]);

    const run = await tradeops(["sandbox", "down", "--purge", "--dry-run", "--dir", sandboxDir]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain("Plan for 'sandbox-down' on stack 'sandbox' (dry run: nothing will be changed)");
    expect(run.stdout).toMatch(/^\d+\. Stop the PostgreSQL primary pg-a/m);
    expect(run.stdout).toContain(`Delete the sandbox directory ${sandboxDir} and all its data [destructive]`);

    expect(await componentPids()).toEqual(pidsBefore);
    expect(topEntries(sandboxDir)).toEqual(expect.arrayContaining(filesBefore));
  });

  it("S1: up --dry-run on a new dir prints the plan and does not create the dir", async () => {
    const dir = join(scratch, "dry-run");
    const run = await tradeops(["sandbox", "up", "--dry-run", "--dir", dir, "--base-port", String(layout.basePort + 100)]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`1. Prepare the sandbox directory ${dir}`);
    expect(existsSync(dir)).toBe(false);
  });

  it("S1: up on ports another process holds exits 3 naming the port; it creates nothing (not even the dir) and starts nothing", async () => {
    const dir = join(scratch, "busy-ports");
    const run = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", String(layout.basePort)]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stderr).toContain(`port ${layout.ports.pgA} for pg-a is taken by another process`);
    expect(run.stderr).toContain(`port ${layout.ports.s3} for s3 is taken by another process`);
    expect(existsSync(dir)).toBe(false);
    expect(markedProcesses(dir)).toEqual([]);
  });

  it("S3: status --dir naming a regular file exits 2 with one line", async () => {
    const file = join(scratch, "not-a-dir");
    writeFileSync(file, "");
    const run = await tradeops(["sandbox", "status", "--dir", file]);
    expect(run.code).toBe(2);
    expect(oneLineOfStderr(run.stderr)).toEqual([`tradeops: ${file} exists and is not a directory: --dir must name the sandbox's directory`]);
    expect(run.stdout).toBe("");
  });

  it("S3: a damaged secrets.json: status still reports and names it, down still exits 0, up exits 2 naming it", async () => {
    const dir = join(scratch, "damaged");
    mkdirSync(dir);
    const secretsFile = join(dir, "secrets.json");
    writeFileSync(secretsFile, "{not json", { mode: 0o600 });

    const status = await tradeops(["sandbox", "status", "--dir", dir]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout).toMatch(/^pg-a\s+down/m);
    expect(status.stdout).toContain(`warning: ${secretsFile} is damaged (not valid JSON`);

    const down = await tradeops(["sandbox", "down", "--dir", dir]);
    expect(down.code, down.stderr).toBe(0);

    const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", String(layout.basePort + 100)]);
    expect(up.code).toBe(2);
    const [line, ...more] = oneLineOfStderr(up.stderr);
    expect(more).toEqual([]);
    expect(line).toMatch(/^tradeops: \S+ is damaged \(not valid JSON/);
    expect(line).toContain(secretsFile);
    expect(line).toContain(`sandbox down --purge --yes --dir ${dir}`);
    expect(readFileSync(secretsFile, "utf8")).toBe("{not json");
  });
});

describe("what a new user meets (#6)", () => {
  it("S1: the sandbox `up --dir` started is the one health and status act on without --dir", async () => {
    // global-setup brought the run's sandbox up with --dir in this run's TRADEOPS_HOME.
    const health = await tradeops(["health"]);
    expect(health.code, health.stderr).toBe(0);
    expect(health.stdout).toMatch(/^healthy: all \d+ components healthy/);
    const status = await tradeops(["sandbox", "status"]);
    expect(status.code, status.stderr).toBe(0);
    expect(status.stdout.split("\n")[0]).toBe(`sandbox ${sandboxDir}`);
  });

  it("S1: down and up without --dir act on the active sandbox too", async () => {
    const down = await tradeops(["sandbox", "down"]);
    expect(down.code, down.stderr).toBe(0);
    expect(sandboxProcesses(layout)).toEqual([]);
    const up = await tradeops(["sandbox", "up"]);
    expect(up.code, up.stderr).toBe(0);
    expect((await tradeops(["health"])).code).toBe(0);
  });

  it("S1: with /usr/sbin off PATH, up names the missing runuser and its package instead of blaming the dir", async () => {
    const parent = mkdtempSync(join(tmpdir(), "tradeops-it-path-"));
    const dir = join(parent, "sandbox");
    const path = (process.env.PATH ?? "").split(":").filter((entry) => !entry.endsWith("/sbin")).join(":");
    const run = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", String(layout.basePort + 200)], { PATH: path });
    expect(run.code, run.stderr).toBe(3);
    if (process.getuid?.() === 0) expect(run.stderr).toMatch(/runuser \(PostgreSQL as the postgres OS user\).*util-linux/);
    expect(run.stderr).not.toMatch(/traversable/);
    expect(existsSync(dir)).toBe(false);
    rmSync(parent, { recursive: true, force: true });
  });
});

describe("state files, refusals and modes (#15, #17)", () => {
  const scratch = mkdtempSync(join(tmpdir(), "tradeops-it-state-"));
  chmodSync(scratch, 0o755);
  afterAll(() => rmSync(scratch, { recursive: true, force: true }));

  const replicationMode = () =>
    onPg(outputs, outputs.database.primary, async (client) => (await client.query("SELECT sync_state FROM pg_stat_replication WHERE application_name = 'pg-b'")).rows[0]?.sync_state);

  it("I5: after `up --async`, a plain `up` keeps the sandbox asynchronous; `up --sync` switches it back", async () => {
    try {
      expect((await tradeops(["sandbox", "up", "--async", "--dir", sandboxDir])).code).toBe(0);
      expect(await replicationMode()).toBe("async");
      const plain = await tradeops(["sandbox", "up", "--dir", sandboxDir]);
      expect(plain.code, plain.stderr).toBe(0);
      expect(await replicationMode()).toBe("async");
    } finally {
      expect((await tradeops(["sandbox", "up", "--sync", "--dir", sandboxDir])).code).toBe(0);
    }
    expect(await replicationMode()).toBe("sync");
  });

  it("S1: with secrets.json gone and data present, up exits 3 naming the file and changes nothing; health works once it is back", async () => {
    const aside = `${layout.files.secrets}.aside`;
    renameSync(layout.files.secrets, aside);
    try {
      const pidsBefore = (await runSandbox(sandboxStatus, { dir: sandboxDir })).facts.components;
      const up = await tradeops(["sandbox", "up", "--dir", sandboxDir]);
      expect(up.code).toBe(3);
      expect(up.stderr).toContain(`${layout.files.secrets} is missing but the sandbox has data`);
      expect(up.stderr).toContain("restore it from a copy");
      expect(up.stderr).toContain(`tradeops sandbox down --purge --yes --dir ${sandboxDir}`);
      expect(existsSync(layout.files.secrets)).toBe(false);
      expect((await runSandbox(sandboxStatus, { dir: sandboxDir })).facts.components).toEqual(pidsBefore);
    } finally {
      renameSync(aside, layout.files.secrets);
    }
    const health = await tradeops(["--outputs", outputsFile, "health"]);
    expect(health.code, health.stdout).toBe(0);
  });

  it("S3: a sandbox.json with a port of 99999, or without pgBinDir: status exits 2 with one line naming the file and the key", async () => {
    const settings = JSON.parse(readFileSync(layout.files.settings, "utf8")) as Record<string, unknown> & { ports: Record<string, number> };
    for (const [name, broken, key] of [
      ["bad-port", { ...settings, ports: { ...settings.ports, pgA: 99999 } }, "ports.pgA"],
      ["no-bin-dir", { ...settings, pgBinDir: undefined }, "pgBinDir"],
    ] as const) {
      const dir = join(scratch, name);
      mkdirSync(dir);
      writeFileSync(join(dir, "sandbox.json"), JSON.stringify(broken));
      const status = await tradeops(["sandbox", "status", "--dir", dir]);
      expect(status.code).toBe(2);
      const lines = status.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^tradeops: ${join(dir, "sandbox.json")} is damaged \\(${key.replace(".", "\\.")}: `));
      expect(status.stdout).toBe("");
    }
  });

  it("S3: a sandbox.json written before components were added (no ports for them) still opens: the new ones take base port + offset", async () => {
    const settings = JSON.parse(readFileSync(layout.files.settings, "utf8")) as Record<string, unknown> & { basePort: number; ports: Record<string, number> };
    const { pgA, pgB, traffic, redis, s3, opsApi, prometheus } = settings.ports;
    const dir = join(scratch, "older");
    mkdirSync(dir);
    writeFileSync(join(dir, "sandbox.json"), JSON.stringify({ ...settings, basePort: 29000, ports: { pgA, pgB, traffic, redis, s3, opsApi, prometheus } }));
    const status = await tradeops(["sandbox", "status", "--dir", dir]);
    expect(status.stderr).not.toMatch(/is damaged/);
    expect(status.stdout).toMatch(/^alertmanager\s+down\s+-\s+29008\s*$/m);
  });

  it("S3: down --purge --yes of a dir that is not a sandbox is refused (exit 3) and deletes nothing", async () => {
    const decoy = join(scratch, "decoy");
    mkdirSync(decoy);
    writeFileSync(join(decoy, "notes.txt"), "keep me");
    const down = await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", decoy]);
    expect(down.code).toBe(3);
    expect(down.stderr).toMatch(/^tradeops: refused: no sandbox at /);
    expect(readFileSync(join(decoy, "notes.txt"), "utf8")).toBe("keep me");
  });
});
