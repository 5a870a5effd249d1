/**
 * The reference ops API against a real PostgreSQL 15 and a real Redis: the sandbox's own pg-a and
 * Redis, started by its component code in a sandbox of this file's own (these tests stop and freeze
 * them, so never the shared one of global-setup.ts), and stopped by PID through `sandbox.down()`
 * afterwards, even when a test fails.
 */
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { promisify } from "node:util";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { projectRoot } from "../../contract/home.ts";
import {
  CircuitBreakerStatus,
  KillSwitchActivated,
  KillSwitchDeactivated,
  KillSwitchStatus,
  LivenessReport,
  Position,
  PositionList,
  ReadyReport,
  TradingStatus,
} from "../../contract/ops-api.ts";
import type { StackOutputs } from "../../contract/outputs.ts";
import { openSandbox, type ComponentName, type Sandbox } from "../../sandbox/index.ts";
import { sandboxLayout, type SandboxLayout } from "../../sandbox/layout.ts";
import { type OpsApi, type OpsApiConfig, startOpsApi } from "../../sandbox/ops-api/server.ts";
import { sandboxEnv, waitUntil } from "../../sandbox/processes.ts";
import { INTEGRATION_BASE_PORT } from "./global-setup.ts";

const run = promisify(execFile);

/** Above the shared sandbox's ports (its base + 1 … + 11), so the two never meet. */
const BASE_PORT = INTEGRATION_BASE_PORT + 20;
/**
 * pg-a archives its WAL into the S3 store through the stanza: without them every stop of pg-a
 * waits out archive-push retries (3.3 s measured, against 0.2 s).
 */
const COMPONENTS: ComponentName[] = ["s3", "pg-a", "stanza", "redis"];

/** Every log line any ops API wrote during the run, and every confirmation code it issued. */
const logLines: string[] = [];
const issuedCodes: string[] = [];
/** Figures quoted in reports; printed at the end. */
const measured: Record<string, string> = {};

let dir: string | undefined;
let sandbox: Sandbox;
let layout: SandboxLayout;
let outputs: StackOutputs;
let token: string;
let adminKey: string;
let api: OpsApi;
let redis: Redis;
let db: pg.Pool;

const sandboxLog = (line: string) => process.stderr.write(`[ops-api.test] ${line}\n`);
const databaseUrl = (database = outputs.database.name, port = outputs.database.primary.port) =>
  `postgresql://${outputs.database.user}:${outputs.database.password}@${outputs.database.primary.host}:${port}/${database}`;
const redisUrl = () => `redis://:${outputs.redis.password}@${outputs.redis.host}:${outputs.redis.port}`;
const apiConfig = (overrides: Partial<OpsApiConfig> = {}): OpsApiConfig => ({
  host: "127.0.0.1",
  port: 0,
  databaseUrl: databaseUrl(),
  redisUrl: redisUrl(),
  token,
  killSwitchAdminKey: adminKey,
  version: "test",
  logSink: (line) => logLines.push(line),
  ...overrides,
});

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "tradeops-ops-api-"));
  // async: pg-b joins for one test only, and must never hold pg-a's commits.
  sandbox = await openSandbox({ dir, basePort: BASE_PORT, mode: "async" });
  layout = sandboxLayout({ dir, basePort: BASE_PORT });
  outputs = sandbox.outputs;
  token = outputs.opsApi.token;
  adminKey = outputs.opsApi.killSwitchAdminKey!;
  for (const component of COMPONENTS) await sandbox.start(component, sandboxLog);
  db = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
  redis = new Redis(redisUrl(), { maxRetriesPerRequest: 1 }).on("error", () => undefined);
  api = await startOpsApi(apiConfig());
});

afterAll(async () => {
  await api?.close().catch(() => undefined);
  await db?.end().catch(() => undefined);
  redis?.disconnect();
  try {
    // By PID in reverse start order, then every process carrying the sandbox's marker (spawnOpsApi's too).
    if (sandbox) await sandbox.down({}, sandboxLog);
  } finally {
    if (dir) rmSync(dir, { recursive: true, force: true });
  }
  console.table(measured);
});

describe("reference ops API", () => {
  test("Z1: /health answers liveness without a token", async () => {
    const { status, body } = await call("GET", "/health", undefined, null);
    expect(status).toBe(200);
    const liveness = LivenessReport.parse(body);
    expect(liveness).toMatchObject({ status: "ok", version: "test" });
  });

  test("Z1: /health/ready reports database and redis healthy with latency", async () => {
    const { status, body } = await call("GET", "/health/ready", undefined, null);
    expect(status).toBe(200);
    const report = ReadyReport.parse(body);
    expect(report.status).toBe("healthy");
    expect(report.components.database).toMatchObject({ status: "healthy" });
    expect(report.components.redis).toMatchObject({ status: "healthy" });
    expect(report.components.exchange).toEqual({ status: "healthy", mode: "simulated" });

    const durations: number[] = [];
    for (let i = 0; i < 50; i += 1) {
      const started = performance.now();
      expect((await call("GET", "/health/ready", undefined, null)).status).toBe(200);
      durations.push(performance.now() - started);
    }
    measured["/health/ready healthy, p50 / max ms"] = `${percentile(durations, 50)} / ${percentile(durations, 100)}`;
  });

  test("/api/* answers 401 without the bearer token or with a wrong one", async () => {
    expect((await call("GET", "/api/kill-switch/status", undefined, null)).status).toBe(401);
    expect((await call("GET", "/api/kill-switch/status", undefined, "not-the-token")).status).toBe(401);
    expect((await call("POST", "/api/kill-switch", { reason: "no token" }, null)).status).toBe(401);
    expect((await call("GET", "/api/kill-switch/status")).body).toEqual({ active: false });
  });

  test("unknown routes answer 404 and known routes with the wrong method 405", async () => {
    expect((await call("GET", "/api/nope")).status).toBe(404);
    expect((await call("GET", "/nope", undefined, null)).status).toBe(404);
    expect((await call("GET", "/api/kill-switch")).status).toBe(405);
  });

  test("bad bodies answer 400 with an error naming the problem", async () => {
    const missingReason = await call("POST", "/api/kill-switch", {});
    expect(missingReason.status).toBe(400);
    expect(missingReason.body.error).toMatch(/reason/);
    expect((await call("POST", "/api/kill-switch", "{not json")).status).toBe(400);
    expect((await call("POST", "/api/kill-switch", { reason: "x", extra: 1 })).status).toBe(400);
    const badSide = await call("POST", "/api/positions", { symbol: "BTCUSDT", side: "sideways", quantity: 1, entry_price: 1 });
    expect(badSide.status).toBe(400);
    expect(badSide.body.error).toMatch(/side/);
    expect((await call("POST", "/api/positions", { symbol: "BTCUSDT", side: "long", quantity: -1, entry_price: 1 })).status).toBe(400);
    expect((await call("GET", "/api/kill-switch/status")).body).toEqual({ active: false });
  });

  test("I1: kill switch activation returns a code, survives an API restart, and deactivates only with that code", async () => {
    const activation = await call("POST", "/api/kill-switch", { reason: "긴급 중단 사유" });
    expect(activation.status).toBe(201);
    const activated = KillSwitchActivated.parse(activation.body);
    issuedCodes.push(activated.confirmation_code);
    expect(activated.confirmation_code).toMatch(/^[A-Z0-9]{6}$/);

    const again = await call("POST", "/api/kill-switch", { reason: "second press" });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ active: true, reason: "긴급 중단 사유", activated_at: activated.activated_at });
    expect(JSON.stringify(again.body)).not.toContain(activated.confirmation_code);
    expect((await call("GET", "/api/trading/status")).body).toMatchObject({ paused: true, kill_switch_active: true });

    await api.close();
    api = await startOpsApi(apiConfig());

    const status = KillSwitchStatus.parse((await call("GET", "/api/kill-switch/status")).body);
    expect(status).toEqual({ active: true, activated_at: activated.activated_at, reason: "긴급 중단 사유", has_confirmation_code: true });
    expect(JSON.stringify(status)).not.toContain(activated.confirmation_code);

    const wrongCode = activated.confirmation_code === "AAAAAA" ? "BBBBBB" : "AAAAAA";
    expect((await call("POST", "/api/kill-switch/deactivate", { confirmation_code: wrongCode })).status).toBe(403);
    expect((await call("GET", "/api/kill-switch/status")).body).toMatchObject({ active: true });

    const deactivation = await call("POST", "/api/kill-switch/deactivate", {
      confirmation_code: activated.confirmation_code.toLowerCase(),
    });
    expect(deactivation.status).toBe(200);
    expect(KillSwitchDeactivated.parse(deactivation.body).deactivated_by).toBe("confirmation_code");
    expect((await call("GET", "/api/kill-switch/status")).body).toEqual({ active: false });

    const { rows } = await db.query(
      "SELECT reason, confirmation_code, deactivated_at, deactivated_by FROM kill_switch_events ORDER BY id DESC LIMIT 1",
    );
    expect(rows[0]).toMatchObject({
      reason: "긴급 중단 사유",
      confirmation_code: activated.confirmation_code,
      deactivated_by: "confirmation_code",
    });
    expect(rows[0].deactivated_at).toBeInstanceOf(Date);

    // Lifting the kill switch does not restart trading on its own (I9): resuming is explicit.
    expect((await call("GET", "/api/trading/status")).body).toMatchObject({ paused: true, kill_switch_active: false });
    expect((await call("POST", "/api/trading/resume")).body).toMatchObject({ paused: false });
  });

  test("I1: force-deactivate refuses a wrong admin key and accepts the right one", async () => {
    const notActive = await call("POST", "/api/kill-switch/force-deactivate", { admin_key: adminKey });
    expect(notActive.status).toBe(409);

    const activation = await call("POST", "/api/kill-switch", { reason: "force drill" });
    issuedCodes.push(KillSwitchActivated.parse(activation.body).confirmation_code);
    expect((await call("POST", "/api/kill-switch/force-deactivate", { admin_key: `${adminKey}x` })).status).toBe(403);
    expect((await call("POST", "/api/kill-switch/force-deactivate", { admin_key: token })).status).toBe(403);
    expect((await call("GET", "/api/kill-switch/status")).body).toMatchObject({ active: true });

    const forced = await call("POST", "/api/kill-switch/force-deactivate", { admin_key: adminKey });
    expect(forced.status).toBe(200);
    expect(KillSwitchDeactivated.parse(forced.body).deactivated_by).toBe("admin_key");
    expect((await call("GET", "/api/kill-switch/status")).body).toEqual({ active: false });
    await call("POST", "/api/trading/resume");
  });

  test("I1: a kill_switch_events row inserted by psql counts as active", async () => {
    // The seed's method 3, verbatim.
    await run("psql", [databaseUrl(), "-v", "ON_ERROR_STOP=1", "-c", "INSERT INTO kill_switch_events (activated_at, reason) VALUES (NOW(), '긴급 중단 사유');"]);

    expect((await call("GET", "/api/kill-switch/status")).body).toMatchObject({
      active: true,
      reason: "긴급 중단 사유",
      has_confirmation_code: false,
    });
    expect(TradingStatus.parse((await call("GET", "/api/trading/status")).body)).toMatchObject({
      paused: true,
      kill_switch_active: true,
    });
    expect((await call("POST", "/api/trading/resume")).status).toBe(409);
    expect((await call("POST", "/api/kill-switch", { reason: "double" })).status).toBe(409);
    const byCode = await call("POST", "/api/kill-switch/deactivate", { confirmation_code: "ABC123" });
    expect(byCode.status).toBe(403);
    expect(byCode.body.error).toMatch(/force-deactivate/);

    expect((await call("POST", "/api/kill-switch/force-deactivate", { admin_key: adminKey })).status).toBe(200);
    expect((await call("GET", "/api/kill-switch/status")).body).toEqual({ active: false });
    expect((await call("POST", "/api/trading/resume")).status).toBe(200);
  });

  test("I2: the circuit breaker trips, turns HALF_OPEN after 30 s, and resets to CLOSED", async () => {
    await redis.del("cb:state");
    expect(CircuitBreakerStatus.parse((await call("GET", "/api/circuit-breaker/status")).body)).toEqual({
      state: "CLOSED",
      failures: 0,
      reset_timeout_s: 30,
    });

    const trip = await call("POST", "/api/circuit-breaker/trip", { reason: "exchange errors" });
    expect(trip.status).toBe(200);
    expect(trip.body).toMatchObject({ state: "OPEN", failures: 1, reason: "exchange errors" });
    expect((await call("POST", "/api/circuit-breaker/trip", { reason: "again" })).status).toBe(409);
    expect(await metricValue("circuit_breaker_state")).toBe(2);

    // Skip the 30 s wait by ageing the stored opening time, as a drill may.
    await redis.hset("cb:state", "opened_at", new Date(Date.now() - 31_000).toISOString());
    expect((await call("GET", "/api/circuit-breaker/status")).body).toMatchObject({ state: "HALF_OPEN", failures: 1 });
    expect(await metricValue("circuit_breaker_state")).toBe(1);

    const reset = await call("POST", "/api/circuit-breaker/reset");
    expect(reset.status).toBe(200);
    expect(reset.body).toEqual({ state: "CLOSED", failures: 0, reset_timeout_s: 30 });
    expect(await metricValue("circuit_breaker_state")).toBe(0);
  });

  test("I3: close-all closes every open position with its reason", async () => {
    const opened = [
      await call("POST", "/api/positions", { symbol: "BTCUSDT", side: "long", quantity: 0.5, entry_price: 64_250.5 }),
      await call("POST", "/api/positions", { symbol: "ETHUSDT", side: "short", quantity: 3, entry_price: 3_120 }),
    ];
    expect(opened.map(({ status }) => status)).toEqual([201, 201]);
    const list = PositionList.parse((await call("GET", "/api/positions")).body);
    expect(list.positions.map(({ symbol, side, quantity, entry_price }) => ({ symbol, side, quantity, entry_price }))).toEqual([
      { symbol: "BTCUSDT", side: "long", quantity: 0.5, entry_price: 64_250.5 },
      { symbol: "ETHUSDT", side: "short", quantity: 3, entry_price: 3_120 },
    ]);
    expect(await metricValue("open_positions")).toBe(2);

    const closeAll = await call("POST", "/api/positions/close-all", { reason: "긴급 청산" });
    expect(closeAll).toEqual({ status: 200, body: { closed: 2 } });
    expect((await call("GET", "/api/positions")).body).toEqual({ positions: [] });
    const ids = opened.map(({ body }) => Position.parse(body).id);
    const { rows } = await db.query("SELECT status, close_reason, closed_at FROM positions WHERE id = ANY($1)", [ids]);
    expect(rows).toHaveLength(2);
    for (const row of rows) {
      expect(row).toMatchObject({ status: "closed", close_reason: "긴급 청산" });
      expect(row.closed_at).toBeInstanceOf(Date);
    }
    expect((await call("POST", "/api/positions/close-all", { reason: "nothing left" })).body).toEqual({ closed: 0 });
  });

  test("I9: orderly stop pauses trading, refuses new positions while paused, and resumes", async () => {
    await call("POST", "/api/positions", { symbol: "005930", side: "long", quantity: 10, entry_price: 71_000 });

    // The seed's steps 1-3 post no body at all.
    const pause = await call("POST", "/api/trading/pause");
    expect(pause.status).toBe(200);
    expect(pause.body).toMatchObject({ paused: true, reason: "paused by operator", kill_switch_active: false });
    const repeat = await call("POST", "/api/trading/pause", { reason: "second pause" });
    expect(repeat.body).toMatchObject({ paused: true, reason: "paused by operator", since: pause.body.since });
    expect(await metricValue("trading_paused")).toBe(1);
    expect((await call("POST", "/api/positions", { symbol: "BTCUSDT", side: "long", quantity: 1, entry_price: 1 })).status).toBe(409);
    expect(PositionList.parse((await call("GET", "/api/positions")).body).positions).toHaveLength(1);
    expect((await call("POST", "/api/positions/close-all")).body).toEqual({ closed: 1 });

    const resume = await call("POST", "/api/trading/resume");
    expect(resume.status).toBe(200);
    expect(resume.body).toMatchObject({ paused: false, kill_switch_active: false });
    expect(await metricValue("trading_paused")).toBe(0);
  });

  test("S7: /metrics exports queue lengths, state gauges and request durations", async () => {
    await redis.del("queue:trade-execution");
    await redis.lpush("queue:trade-execution", "order-1", "order-2", "order-3");
    const { status, text } = await scrape();
    expect(status).toBe(200);
    expect(text).toContain('tradeops_queue_length{queue="trade-execution"} 3');
    expect(text).toContain('tradeops_queue_length{queue="notification"} 0');
    expect(text).toMatch(/^kill_switch_active 0$/m);
    expect(text).toMatch(/^open_positions 0$/m);
    expect(text).toMatch(/http_request_duration_seconds_count\{method="GET",route="\/api\/positions",status="200"\} \d+/);
    expect(text).toMatch(/^process_cpu_seconds_total /m);
    await redis.del("queue:trade-execution");
  });

  test("Z1: /health/ready answers 503 naming redis within 2 s when Redis is stopped, and recovers", async () => {
    await sandbox.stop("redis", sandboxLog);
    try {
      const started = performance.now();
      const { status, body } = await call("GET", "/health/ready", undefined, null);
      const elapsed = performance.now() - started;
      expect(status).toBe(503);
      const report = ReadyReport.parse(body);
      expect(report.components.redis.status).toBe("unhealthy");
      expect(report.components.redis.error).toBeTruthy();
      expect(report.components.database.status).toBe("healthy");
      expect(elapsed).toBeLessThan(2_000);
      measured["/health/ready with Redis stopped, ms"] = elapsed.toFixed(1);

      const breakerStarted = performance.now();
      const breaker = await call("GET", "/api/circuit-breaker/status");
      expect(breaker.status).toBe(503);
      expect(breaker.body.error).toMatch(/redis/);
      measured["/api/circuit-breaker/status with Redis stopped, ms"] = (performance.now() - breakerStarted).toFixed(1);
      expect((await call("GET", "/health", undefined, null)).status).toBe(200);
      expect((await call("GET", "/api/trading/status")).status).toBe(200);
      // prom-client spells NaN "Nan"; Prometheus parses either.
      expect((await scrape()).text).toMatch(/^tradeops_queue_length\{queue="trade-execution"\} nan$/im);
    } finally {
      await sandbox.start("redis", sandboxLog);
    }
    const restarted = performance.now();
    await waitFor(async () => (await call("GET", "/health/ready", undefined, null)).status === 200, 10_000);
    measured["ready again after Redis restart, ms"] = (performance.now() - restarted).toFixed(0);
    expect((await call("GET", "/api/circuit-breaker/status")).status).toBe(200);
  });

  test("Z1: a frozen Redis (SIGSTOP) turns /health/ready into a 503 after the 1 s probe limit instead of a hang", async () => {
    const pid = sandbox.pid("redis")!;
    process.kill(pid, "SIGSTOP");
    try {
      const started = performance.now();
      const { status, body } = await call("GET", "/health/ready", undefined, null);
      const elapsed = performance.now() - started;
      expect(status).toBe(503);
      expect(ReadyReport.parse(body).components.redis.error).toMatch(/timed out|no answer/i);
      expect(elapsed).toBeLessThan(2_000);
      measured["/health/ready with Redis frozen, ms"] = elapsed.toFixed(0);
    } finally {
      process.kill(pid, "SIGCONT");
    }
    await waitFor(async () => (await call("GET", "/health/ready", undefined, null)).status === 200, 10_000);
  });

  test("Z1: an API started while PostgreSQL is down serves /health, answers 503, and creates its schema once it is back", async () => {
    await db.query("CREATE DATABASE late_schema");
    await db.end();
    await sandbox.stop("pg-a", sandboxLog);

    const lateApi = await startOpsApi(apiConfig({ databaseUrl: databaseUrl("late_schema") }));
    const postgresBack = async () => {
      await sandbox.start("pg-a", sandboxLog);
    };
    try {
      expect((await call("GET", "/health", undefined, null, lateApi)).status).toBe(200);
      const started = performance.now();
      const ready = await call("GET", "/health/ready", undefined, null, lateApi);
      const elapsed = performance.now() - started;
      expect(ready.status).toBe(503);
      expect(ReadyReport.parse(ready.body).components.database.status).toBe("unhealthy");
      expect(ReadyReport.parse(ready.body).components.redis.status).toBe("healthy");
      expect(elapsed).toBeLessThan(2_000);
      measured["/health/ready with PostgreSQL stopped, ms"] = elapsed.toFixed(1);
      const tradingStatus = await call("GET", "/api/trading/status", undefined, token, lateApi);
      expect(tradingStatus.status).toBe(503);
      expect(tradingStatus.body.error).toMatch(/database/);

      await postgresBack();
      const restarted = performance.now();
      await waitFor(async () => (await call("GET", "/health/ready", undefined, null, lateApi)).status === 200, 10_000);
      measured["ready again after PostgreSQL restart, ms"] = (performance.now() - restarted).toFixed(0);
      expect((await call("GET", "/api/trading/status", undefined, token, lateApi)).body).toMatchObject({ paused: false });

      const late = new pg.Pool({ connectionString: databaseUrl("late_schema"), max: 1 });
      const { rows } = await late.query("SELECT count(*)::int AS tables FROM pg_tables WHERE tablename IN ('kill_switch_events', 'trading_state', 'positions')");
      await late.end();
      expect(rows[0].tables).toBe(3);
    } finally {
      await postgresBack();
      await lateApi.close();
      db = new pg.Pool({ connectionString: databaseUrl(), max: 2 });
    }
    // The long-running API rode out the outage too.
    await waitFor(async () => (await call("GET", "/health/ready", undefined, null)).status === 200, 10_000);
    expect((await call("GET", "/api/kill-switch/status")).status).toBe(200);
  });

  test("Z1: /health/ready answers 503 when the database it reaches is a read-only standby", async () => {
    // pg_basebackup from pg-a, streaming; `sandbox.down()` stops it with the rest.
    await sandbox.start("pg-b", sandboxLog);

    const standbyApi = await startOpsApi(apiConfig({ databaseUrl: databaseUrl("trading", outputs.database.standby!.port) }));
    try {
      const { status, body } = await call("GET", "/health/ready", undefined, null, standbyApi);
      expect(status).toBe(503);
      expect(ReadyReport.parse(body).components.database).toMatchObject({
        status: "unhealthy",
        error: expect.stringMatching(/read-only/),
      });
      expect((await call("POST", "/api/trading/pause", { reason: "on a standby" }, token, standbyApi)).status).toBe(503);
    } finally {
      await standbyApi.close();
    }
  });

  test("Z4: SIGTERM drains the in-flight request, answers 503 to a new one, and exits 0", async () => {
    await db.query("CREATE DATABASE shutdown_drill");
    const child = spawnOpsApi({ DATABASE_URL: databaseUrl("shutdown_drill") });
    const url = new URL((await child.waitForLine((line) => line.msg === "listening")).url as string);
    const port = Number(url.port);

    // In flight: headers and half the body are in when the signal arrives.
    const body = JSON.stringify({ reason: "drain drill" });
    const inFlight = await rawConnection(port);
    inFlight.socket.write(
      `POST /api/trading/pause HTTP/1.1\r\nHost: ops\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body.slice(0, 10)}`,
    );
    // New: its headers complete only after the signal.
    const late = await rawConnection(port);
    late.socket.write("GET /health HTTP/1.1\r\nHost: ops\r\n");
    await sleep(100);

    const signalled = performance.now();
    child.process.kill("SIGTERM");
    await child.waitForLine((line) => String(line.msg).startsWith("shutting down"));
    late.socket.write("\r\n");
    inFlight.socket.write(body.slice(10));

    expect(await late.response).toMatch(/^HTTP\/1\.1 503 /);
    const drained = await inFlight.response;
    expect(drained).toMatch(/^HTTP\/1\.1 200 /);
    expect(drained).toContain('"reason":"drain drill"');
    expect(await child.exitCode).toBe(0);
    measured["SIGTERM to exit with one drained request, ms"] = (performance.now() - signalled).toFixed(0);
    await expect(rawConnection(port)).rejects.toThrow(/ECONNREFUSED/);
  });

  test("Z4, T2: a bad environment exits 2 with one line naming the variable; a busy port exits 1", async () => {
    const badPort = spawnOpsApi({ OPS_API_PORT: "eighty" });
    expect(await badPort.exitCode).toBe(2);
    expect(badPort.lines).toHaveLength(1);
    expect(badPort.lines[0]).toMatchObject({ level: "error", variables: ["OPS_API_PORT"] });
    expect(String(badPort.lines[0]!.msg)).toContain("OPS_API_PORT");

    const sameKey = spawnOpsApi({ KILL_SWITCH_ADMIN_KEY: token, DATABASE_URL: undefined });
    expect(await sameKey.exitCode).toBe(2);
    expect(sameKey.lines).toHaveLength(1);
    expect(sameKey.lines[0]!.variables).toEqual(["DATABASE_URL"]);

    const sameSecrets = spawnOpsApi({ KILL_SWITCH_ADMIN_KEY: token });
    expect(await sameSecrets.exitCode).toBe(2);
    expect(sameSecrets.lines[0]!.variables).toEqual(["KILL_SWITCH_ADMIN_KEY"]);

    const busyPort = spawnOpsApi({ OPS_API_PORT: new URL(api.url).port });
    expect(await busyPort.exitCode).toBe(1);
    expect(busyPort.lines.at(-1)).toMatchObject({ level: "error", error: expect.stringMatching(/EADDRINUSE/) });
  });

  test("Z3, T2: no log line carries the token, the admin key, a password or a confirmation code", () => {
    expect(logLines.length).toBeGreaterThan(20);
    const everything = logLines.join("\n");
    for (const value of [token, adminKey, outputs.database.password, outputs.redis.password, ...issuedCodes]) {
      expect(everything).not.toContain(value);
    }
    for (const line of logLines) {
      expect(JSON.parse(line)).toMatchObject({ time: expect.any(String), level: expect.any(String), msg: expect.any(String) });
    }
    expect(everything).toContain(`postgresql://tradeops:***@127.0.0.1:${outputs.database.primary.port}/trading`);
  });
});

// ---- HTTP helpers -----------------------------------------------------------------------------

interface Answer {
  status: number;
  // Loosely typed on purpose: tests parse with the protocol schemas where the shape matters.
  body: any;
}

async function call(method: string, path: string, body?: unknown, bearer: string | null = token, target: OpsApi = api): Promise<Answer> {
  const response = await fetch(`${target.url}${path}`, {
    method,
    headers: bearer === null ? {} : { authorization: `Bearer ${bearer}` },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

async function scrape(): Promise<{ status: number; text: string }> {
  const response = await fetch(`${api.url}/metrics`);
  return { status: response.status, text: await response.text() };
}

async function metricValue(name: string): Promise<number> {
  const match = new RegExp(`^${name} (\\S+)$`, "m").exec((await scrape()).text);
  return match ? Number(match[1]) : NaN;
}

/** A raw socket, so a test controls exactly when each byte of a request arrives. */
function rawConnection(port: number): Promise<{ socket: Socket; response: Promise<string> }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, "127.0.0.1");
    socket.once("error", reject);
    socket.once("connect", () => {
      let received = "";
      socket.on("data", (chunk) => (received += chunk));
      const response = new Promise<string>((done) => socket.once("close", () => done(received)));
      resolve({ socket, response });
    });
  });
}

// ---- The ops API as a process (main.ts) -------------------------------------------------------

interface OpsApiProcess {
  process: ChildProcess;
  lines: Record<string, unknown>[];
  exitCode: Promise<number | null>;
  waitForLine(match: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
}

/** Carries the sandbox's marker: `sandbox.down()` in afterAll stops any one still running. */
function spawnOpsApi(env: Record<string, string | undefined>): OpsApiProcess {
  const child = spawn(process.execPath, [layout.opsApi.main], {
    cwd: projectRoot,
    env: {
      ...sandboxEnv(layout),
      OPS_API_PORT: "0",
      DATABASE_URL: databaseUrl(),
      REDIS_URL: redisUrl(),
      OPS_API_TOKEN: token,
      KILL_SWITCH_ADMIN_KEY: adminKey,
      ...env,
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: Record<string, unknown>[] = [];
  const waiters = new Set<() => void>();
  let pending = "";
  const collect = (chunk: Buffer) => {
    pending += chunk.toString("utf8");
    const complete = pending.split("\n");
    pending = complete.pop() ?? "";
    for (const line of complete.filter(Boolean)) {
      logLines.push(line);
      lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    for (const wake of waiters) wake();
  };
  child.stdout!.on("data", collect);
  child.stderr!.on("data", collect);
  const exitCode = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
  const waitForLine: OpsApiProcess["waitForLine"] = (match, timeoutMs = 15_000) =>
    new Promise((resolve, reject) => {
      const check = () => {
        const found = lines.find(match);
        if (!found) return;
        waiters.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        reject(new Error(`no matching log line within ${timeoutMs} ms; got ${JSON.stringify(lines)}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return { process: child, lines, exitCode, waitForLine };
}

// ---- Waiting and figures ----------------------------------------------------------------------

async function waitFor(condition: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  if (!(await waitUntil(condition, timeoutMs, 50))) throw new Error(`condition not met within ${timeoutMs} ms`);
}

function percentile(values: number[], p: number): string {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!.toFixed(2);
}
