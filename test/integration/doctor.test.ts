/**
 * `tradeops doctor` against the shared sandbox, broken one way at a time the way the troubleshooting
 * seed's scenarios break a platform; each test puts the sandbox back (by PID) even when it fails.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Redis } from "ioredis";
import pg from "pg";
import { $ } from "zx";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { opsApiRequest } from "../../clients/ops-api.ts";
import { onPg } from "../../runbooks/connect.ts";
import { DoctorDocument, type DoctorFinding } from "../../runbooks/doctor.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { checkStandby } from "../../runbooks/probes.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const sandbox = await openSandbox({ dir: sandboxDir });
const apiPort = Number(new URL(outputs.opsApi.url).port);

/** Runs the doctor through the real CLI; returns the exit code and each finding by check name. */
async function doctor(...args: string[]): Promise<{ code: number | null; findings: Map<string, DoctorFinding>; stderr: string }> {
  const run = await tradeops(["--outputs", outputsFile, "doctor", "--json", ...args]);
  const doc = DoctorDocument.parse(JSON.parse(run.stdout));
  return { code: run.code, findings: new Map((doc.report?.findings ?? []).map((f) => [f.check, f])), stderr: run.stderr };
}

const restartOpsApi = async () => {
  await sandbox.stop("ops-api");
  await sandbox.start("ops-api");
};

beforeAll(async () => {
  // Earlier files may have left slow statements (pg_sleep in hang tests) and slow requests (the
  // alert tests slow the API) in the API's latency histogram; this file starts clean.
  await onPg(outputs, outputs.database.primary, (c) => c.query("select pg_stat_statements_reset()"));
  await restartOpsApi();
});

describe("doctor on a healthy sandbox (T1)", () => {
  it("T1: doctor passes on a healthy sandbox: exit 0, no check fails, missing signals say n/a and why", async () => {
    const { code, findings, stderr } = await doctor();
    expect([...findings.values()].filter((f) => f.status === "fail"), stderr).toEqual([]);
    expect(code).toBe(0);
    expect(findings.get("replication")?.status).toBe("ok");
    expect(findings.get("redis-memory")?.saw).toMatch(/maxmemory 2\.0 GB, policy allkeys-lru/);
    expect(findings.get("websocket")).toMatchObject({ status: "n/a", saw: expect.stringMatching(/^not available \(.+\)$/) });
  });

  it("T1: the text report is a table of check, status, saw, cause and fix", async () => {
    const run = await tradeops(["--outputs", outputsFile, "doctor", "--only", "redis,replication"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^ok: 0 failed, 0 warnings, 2 ok, 0 not available\nCHECK\s+STATUS\s+SAW\s+LIKELY CAUSE\s+FIX\nredis\s+ok\s+PONG/);
  });

  it("T1: --only with an unknown check exits 2 naming the checks there are", async () => {
    const run = await tradeops(["--outputs", outputsFile, "doctor", "--only", "redis,nope"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/unknown check "nope"; checks: api, /);
  });
});

describe("the API does not start (T2)", () => {
  let holder: ChildProcess | undefined;
  const logFile = join(sandboxDir, "logs", "ops-api.log");

  afterAll(async () => {
    if (holder?.pid) process.kill(holder.pid, "SIGKILL");
    await sandbox.start("ops-api");
  });

  it("T2: another listener on the API's port fails check api, naming the process that holds it", async () => {
    await sandbox.stop("ops-api");
    holder = spawn(process.execPath, ["-e", `require("node:net").createServer((s) => s.end("nope\\n")).listen(${apiPort}, "127.0.0.1", () => console.log("up"))`], { stdio: ["ignore", "pipe", "inherit"] });
    await new Promise((done) => holder!.stdout!.once("data", done));
    const { code, findings } = await doctor("--only", "api");
    expect(code).toBe(1);
    expect(findings.get("api")).toMatchObject({ status: "fail", cause: expect.stringContaining(`port ${apiPort} is in use by another process: pid ${holder.pid} (`) });
    expect(findings.get("api")?.cause).toMatch(/node -e/);
    expect(findings.get("api")?.fix).toMatch(new RegExp(`kill ${holder.pid}`));
    process.kill(holder.pid!, "SIGKILL");
    holder = undefined;
  });

  it("T2: a required env unset in the API's env file fails check api naming the variable", async () => {
    // The API restarted the way the sandbox starts it (node --env-file), after OPS_API_TOKEN was taken out of its env file: it logs why and exits 2.
    const envFile = join(sandboxDir, "ops-api.env");
    const original = readFileSync(envFile, "utf8");
    await sandbox.stop("ops-api");
    writeFileSync(envFile, original.split("\n").filter((line) => !line.startsWith("OPS_API_TOKEN=")).join("\n"), { mode: 0o600 });
    try {
      const log = openSync(logFile, "a");
      const api = spawn(process.execPath, [`--env-file=${envFile}`, resolve(import.meta.dirname, "../../sandbox/ops-api/main.ts")], { env: { PATH: process.env.PATH }, stdio: ["ignore", log, log] });
      expect(await new Promise((done) => api.once("exit", done))).toBe(2);
      const { code, findings } = await doctor("--only", "api");
      expect(code).toBe(1);
      expect(findings.get("api")).toMatchObject({ status: "fail", cause: expect.stringMatching(/^missing required env OPS_API_TOKEN \(.*ops-api\.log\)$/) });
      expect(findings.get("api")?.fix).toMatch(/^set OPS_API_TOKEN in the API's env file/);
    } finally {
      writeFileSync(envFile, original, { mode: 0o600 });
    }
  });
});

describe("dependencies break (T2, S9, C6)", () => {
  it("S9: Redis stopped fails check redis: not running", async () => {
    await sandbox.stop("redis");
    try {
      const { code, findings } = await doctor("--only", "redis,worker");
      expect(code).toBe(1);
      expect(findings.get("redis")).toMatchObject({ status: "fail", cause: "Redis is not running: nothing listens on its port" });
      expect(findings.get("worker")?.status).toBe("fail");
    } finally {
      await sandbox.start("redis");
      // The API's Redis client reconnects with a backoff: the next tests need it ready (a trip answered 503 in CI).
      for (let i = 0; i < 100 && (await opsApiRequest(outputs.opsApi, "/health/ready").catch(() => ({ status: 0 }))).status !== 200; i++) await sleep(100);
    }
  });

  it("S9: an exhausted connection pool fails check db-connections with who holds the connections", async () => {
    const clients: pg.Client[] = [];
    try {
      const { used, usable } = await onPg(outputs, outputs.database.primary, async (c) => {
        const { rows } = await c.query(`select (select count(*) from pg_stat_activity where backend_type = 'client backend')::int as used,
                   current_setting('max_connections')::int - current_setting('superuser_reserved_connections')::int as usable`);
        return rows[0] as { used: number; usable: number };
      });
      for (let i = 0; i < usable - used - 1; i++) {
        const client = new pg.Client({ ...target(), application_name: "leaky-app" });
        await client.connect();
        clients.push(client);
      }
      const { code, findings } = await doctor("--only", "db-connections");
      expect(code).toBe(1);
      expect(findings.get("db-connections")).toMatchObject({ status: "fail", cause: expect.stringMatching(/^connection pool exhausted/) });
      expect(findings.get("db-connections")?.saw).toMatch(new RegExp(`top holders: leaky-app ${clients.length}`));
    } finally {
      await Promise.all(clients.map((c) => c.end()));
    }
  });

  it("I2: a tripped circuit breaker fails check circuit-breaker with the time it half-opens", async () => {
    const tripped = await opsApiRequest(outputs.opsApi, "/api/circuit-breaker/trip", { method: "POST", body: { reason: "exchange 5xx burst (doctor test)" } });
    expect(tripped.status).toBe(200);
    try {
      const { code, findings } = await doctor("--only", "circuit-breaker");
      expect(code).toBe(1);
      const finding = findings.get("circuit-breaker")!;
      expect(finding).toMatchObject({ status: "fail", saw: expect.stringMatching(/^OPEN since \S+ \(reason: exchange 5xx burst \(doctor test\)\)/) });
      expect(finding.cause).toMatch(/half-opens at \d{4}-\d\d-\d\dT/);
    } finally {
      await opsApiRequest(outputs.opsApi, "/api/circuit-breaker/reset", { method: "POST", body: {} });
    }
  });

  it("S13: a statement slower than 1 s in pg_stat_statements fails check slow-statements naming it", async () => {
    await onPg(outputs, outputs.database.primary, (c) => c.query("select pg_sleep(1.1) as doctor_slow_probe"));
    try {
      const { code, findings } = await doctor("--only", "slow-statements");
      expect(code).toBe(1);
      expect(findings.get("slow-statements")).toMatchObject({ status: "fail", saw: expect.stringMatching(/^1\d{3} ms mean × 1: select pg_sleep\(\$1\) as doctor_slow_probe/) });
    } finally {
      await onPg(outputs, outputs.database.primary, (c) => c.query("select pg_stat_statements_reset()"));
    }
  });

  it("T2: the API's database refused (traffic endpoint down) fails checks api-dependencies and traffic", async () => {
    await sandbox.stop("haproxy");
    try {
      const { code, findings } = await doctor("--only", "api-dependencies,traffic");
      expect(code).toBe(1);
      expect(findings.get("traffic")).toMatchObject({ status: "fail", cause: "the traffic endpoint is not running: nothing listens on its port" });
      expect(findings.get("api-dependencies")).toMatchObject({ status: "fail", saw: expect.stringMatching(/^the API reports database unhealthy/), cause: expect.stringMatching(/^the API cannot use its database/) });
    } finally {
      await sandbox.start("haproxy");
    }
  });

  it("T2: a spike of 401 answers (a token signed with another secret) warns in check auth-failures", async () => {
    const wrong = { ...outputs.opsApi, token: "a-token-from-another-jwt-secret" };
    for (let i = 0; i < 12; i++) expect((await opsApiRequest(wrong, "/api/trading/status")).status).toBe(401);
    const { code, findings } = await doctor("--only", "auth-failures");
    expect(code).toBe(0);
    expect(findings.get("auth-failures")).toMatchObject({ status: "warn", cause: expect.stringMatching(/JWT secret rotated on one side/) });
  });

  it("T2: requests stuck behind a lock make check api-latency fail on the route's p95", async () => {
    const locker = new pg.Client(target());
    await locker.connect();
    try {
      await locker.query("begin");
      await locker.query("lock table positions in access exclusive mode");
      // Each waits for the lock until the API's statement_timeout (5 s).
      await Promise.all(Array.from({ length: 4 }, () => opsApiRequest(outputs.opsApi, "/api/positions", { timeoutMs: 8_000 })));
      await locker.query("rollback");
      const { code, findings } = await doctor("--only", "api-latency");
      expect(code).toBe(1);
      expect(findings.get("api-latency")).toMatchObject({ status: "fail", saw: expect.stringMatching(/^p95 \/api\/positions [1-9]\.\d{3} s over \d+ requests/) });
    } finally {
      await locker.end();
      // A fresh API process: its latency histogram starts empty again for the next tests.
      await restartOpsApi();
    }
  });

  it("T2: a data dir on a nearly full filesystem (a 1 MiB tmpfs) fails check disk", async () => {
    const mount = mkdtempSync(join(tmpdir(), "doctor-tiny-"));
    await $`mount -t tmpfs -o size=1m tmpfs ${mount}`;
    try {
      writeFileSync(join(mount, "filler"), Buffer.alloc(900 * 1024));
      const pointed = join(mount, "..", `${mount.split("/").at(-1)}-outputs.json`);
      const raw = JSON.parse(readFileSync(outputsFile, "utf8"));
      raw.database.primary.dataDir = mount;
      writeFileSync(pointed, JSON.stringify(raw), { mode: 0o600 });
      try {
        const run = await tradeops(["--outputs", pointed, "doctor", "--json", "--only", "disk"]);
        const finding = DoctorDocument.parse(JSON.parse(run.stdout)).report!.findings[0]!;
        expect(run.code).toBe(1);
        expect(finding).toMatchObject({ status: "fail", cause: expect.stringMatching(/^less than 20 % free/) });
        expect(finding.saw).toMatch(new RegExp(`${outputs.database.primary.name} data dir ${mount}: \\d+\\.\\d kB free of 1\\.0 MB \\(\\d+ %\\)`));
      } finally {
        rmSync(pointed, { force: true });
      }
    } finally {
      await $`umount ${mount}`;
      rmSync(mount, { recursive: true, force: true });
    }
  });

  it("C6: a worker killed while its queue grows fails check worker: no consumer, queue rising", async () => {
    const queue = "queue:data-collection";
    const worker = spawn(process.execPath, [resolve(import.meta.dirname, "../support/queue-worker.ts"), outputs.redis.host, String(outputs.redis.port), queue], {
      env: { ...process.env, REDIS_PASSWORD: outputs.redis.password ?? "" },
      stdio: ["ignore", "pipe", "inherit"],
    });
    const producer = new Redis({ host: outputs.redis.host, port: outputs.redis.port, password: outputs.redis.password });
    let producing: NodeJS.Timeout | undefined;
    try {
      await new Promise((done) => worker.stdout!.once("data", done));
      await producer.lpush(queue, "job-1", "job-2");
      await waitFor(async () => (await producer.llen(queue)) === 0);
      const alive = await doctor("--only", "worker");
      expect(alive.findings.get("worker")?.status).toBe("ok");

      worker.kill("SIGKILL");
      await new Promise((done) => worker.once("exit", done));
      producing = setInterval(() => void producer.lpush(queue, `job-${Date.now()}`), 50);
      await sleep(200);
      const { code, findings } = await doctor("--only", "worker");
      expect(code).toBe(1);
      expect(findings.get("worker")).toMatchObject({
        status: "fail",
        cause: expect.stringMatching(new RegExp(`^no worker is consuming: ${queue} holds \\d+ and ${queue} is still rising`)),
      });
    } finally {
      clearInterval(producing);
      if (worker.exitCode === null) worker.kill("SIGKILL");
      await producer.del(queue);
      producer.disconnect();
    }
  });

  it("I6: a stopped standby fails check replication: replication broken", async () => {
    await sandbox.stop("pg-b");
    try {
      const { code, findings } = await doctor("--only", "replication");
      expect(code).toBe(1);
      expect(findings.get("replication")).toMatchObject({ status: "fail", cause: expect.stringMatching(/^replication is broken: the standby pg-b is down/) });
      expect(findings.get("replication")?.saw).toMatch(/ECONNREFUSED|no answer|not connected|none is connected/);
    } finally {
      await sandbox.start("pg-b");
      await waitFor(() => checkStandby(outputs).then(() => true, () => false), 20_000);
    }
  });

  it("T1: after every scenario is put back, the doctor passes again", async () => {
    const { code, findings } = await doctor();
    expect([...findings.values()].filter((f) => f.status === "fail")).toEqual([]);
    expect(code).toBe(0);
  });
});

function target() {
  const { database } = outputs;
  return { host: database.primary.host, port: database.primary.port, user: database.user, password: database.password, database: database.name };
}

async function waitFor(probe: () => Promise<boolean>, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await probe())) {
    if (Date.now() > deadline) throw new Error(`not true within ${timeoutMs} ms`);
    await sleep(100);
  }
}
