/**
 * The trading controls (kill switch, pause/resume, positions, circuit breaker) and the orderly
 * stop/start, run by the real CLI against the sandbox's reference ops API, PostgreSQL and Redis.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { request } from "node:http";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterEach, describe, expect, inject, it } from "vitest";
import { opsApiRequest } from "../../clients/ops-api.ts";
import { onPg } from "../../runbooks/connect.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const sandbox = await openSandbox({ dir: sandboxDir });
const auditFile = join(stateDirFor(outputs), "audit.jsonl");
const onStack = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
const api = (path: string, body?: unknown) => opsApiRequest(outputs.opsApi, path, body === undefined ? {} : { method: "POST", body });

const openPosition = async (symbol = "BTCUSDT") => api("/api/positions", { symbol, side: "long", quantity: 1, entry_price: 100 });
const killSwitchActive = async () => ((await api("/api/kill-switch/status")).body as { active: boolean }).active;
const openCount = async () => ((await api("/api/positions")).body as { positions: unknown[] }).positions.length;

/** Every test leaves the bot as it found it: kill switch off, trading running, the app up. */
afterEach(async () => {
  if (sandbox.pid("ops-api") === undefined) await sandbox.start("ops-api");
  if (await killSwitchActive()) await api("/api/kill-switch/force-deactivate", { admin_key: outputs.opsApi.killSwitchAdminKey });
  await api("/api/trading/resume", {});
});

function auditOf(runId: string) {
  return readFileSync(auditFile, "utf8").trim().split("\n").map((line) => JSON.parse(line)).filter((line) => line.runId === runId);
}

describe("kill switch (I1)", () => {
  it("I1: kill-switch on makes the API refuse new orders; off with a wrong code exits 3, with the right code works", async () => {
    expect((await openPosition()).status).toBe(201);
    const on = await onStack("--json", "kill-switch", "on", "--reason", "exchange misbehaves");
    expect(on.code, on.stderr).toBe(0);
    const doc = RunDocument.parse(JSON.parse(on.stdout));
    const report = doc.report as { path: string; issuedCode: string };
    expect(report.path).toBe("api");
    expect(report.issuedCode).toMatch(/^[A-Z0-9]{6}$/);
    expect((await openPosition("ETHUSDT")).status).toBe(409);

    const wrong = await onStack("kill-switch", "off", "--code", report.issuedCode === "AAAAAA" ? "BBBBBB" : "AAAAAA");
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/confirmation code does not match/);
    expect(await killSwitchActive()).toBe(true);

    const right = await onStack("kill-switch", "off", "--code", report.issuedCode);
    expect(right.code, right.stderr).toBe(0);
    expect(right.stdout).toMatch(/^kill switch: off \(by its confirmation code/);
    expect(await killSwitchActive()).toBe(false);
    // The code is shown to the operator, never kept in the audit log.
    expect(JSON.stringify(auditOf(doc.runId))).not.toContain(report.issuedCode);
    await api("/api/positions/close-all", {});
  });

  it("I1: --force needs the admin key: none anywhere exits 2, a wrong one 3, the right one from a file works and is masked in the audit", async () => {
    expect((await onStack("kill-switch", "on", "--reason", "force drill")).code).toBe(0);
    const withoutKey = join(sandboxDir, "outputs-without-admin-key.json");
    const doc = JSON.parse(readFileSync(outputsFile, "utf8"));
    delete doc.opsApi.killSwitchAdminKey;
    writeFileSync(withoutKey, JSON.stringify(doc), { mode: 0o600 });
    const noKey = await tradeops(["--outputs", withoutKey, "kill-switch", "off", "--force"]);
    expect(noKey.code).toBe(2);
    expect(noKey.stderr).toMatch(/--force needs the admin key/);

    const wrongFile = join(sandboxDir, "wrong-admin-key");
    writeFileSync(wrongFile, "not-the-admin-key-at-all\n", { mode: 0o600 });
    const wrong = await tradeops(["--outputs", withoutKey, "kill-switch", "off", "--force", "--admin-key-file", wrongFile]);
    expect(wrong.code).toBe(3);
    expect(wrong.stderr).toMatch(/admin key does not match/);

    const keyFile = join(sandboxDir, "admin-key");
    writeFileSync(keyFile, `${outputs.opsApi.killSwitchAdminKey}\n`, { mode: 0o600 });
    const right = await tradeops(["--outputs", withoutKey, "--json", "kill-switch", "off", "--force", "--admin-key-file", keyFile]);
    expect(right.code, right.stderr).toBe(0);
    expect(await killSwitchActive()).toBe(false);
    const lines = auditOf(RunDocument.parse(JSON.parse(right.stdout)).runId);
    expect(lines.map((l) => l.result)).toEqual(["started", "ok", "finished"]);
    expect(right.stdout + JSON.stringify(lines)).not.toContain(outputs.opsApi.killSwitchAdminKey!);
  });

  it("I1: with the API stopped, kill-switch on stops the app and writes the flag row, says so, and only --force lifts it", async () => {
    await sandbox.stop("ops-api");
    const on = await onStack("kill-switch", "on", "--reason", "api is gone");
    expect(on.code, on.stderr).toBe(0);
    expect(on.stdout).toMatch(/^kill switch: ACTIVE \(fallback: app stopped \+ flag row\)/);
    expect(on.stdout).toMatch(/no confirmation code exists/);
    const rows = await onPg(outputs, outputs.database.traffic, async (c) => (await c.query("select reason from kill_switch_events where deactivated_at is null")).rows);
    expect(rows).toEqual([{ reason: "api is gone (set by tradeops: the API did not answer)" }]);

    await sandbox.start("ops-api");
    expect((await api("/api/kill-switch/status")).body).toMatchObject({ active: true, has_confirmation_code: false });
    expect((await openPosition()).status).toBe(409);
    const off = await onStack("--yes", "kill-switch", "off", "--force");
    expect(off.code, off.stderr).toBe(0);
    expect(await killSwitchActive()).toBe(false);
  });

  it("I1: --dry-run of kill-switch on prints the plan and the kill switch stays off; status reports it; bad flags exit 2", async () => {
    const dry = await onStack("--dry-run", "kill-switch", "on", "--reason", "dry");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toContain("1. Activate the kill switch through the ops API");
    expect(await killSwitchActive()).toBe(false);
    const status = await onStack("kill-switch", "status");
    expect(status.stdout.trim()).toBe("kill switch: off");
    expect((await onStack("kill-switch", "on")).code).toBe(2);
    expect((await onStack("kill-switch", "off", "--code", "X", "--force")).code).toBe(2);
    const badFlag = await onStack("kill-switch", "on", "--reason", "x", "--admin-key", "leak");
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr.trim().split("\n")).toHaveLength(1);
  });
});

describe("trading, positions, circuit breaker (I9, I3, I2)", () => {
  it("I3: positions close-all without --yes is refused and closes nothing; with --yes the API reports zero open positions", async () => {
    await openPosition("BTCUSDT");
    await openPosition("ETHUSDT");
    const before = await openCount();
    expect(before).toBeGreaterThanOrEqual(2);
    const refused = await onStack("positions", "close-all", "--reason", "drill");
    expect(refused.code).toBe(3);
    expect(await openCount()).toBe(before);

    const list = await onStack("--json", "positions", "list");
    expect((RunDocument.parse(JSON.parse(list.stdout)).report as { positions: unknown[] }).positions).toHaveLength(before);

    const closed = await onStack("--yes", "positions", "close-all", "--reason", "drill");
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toMatch(new RegExp(`^closed ${before} position\\(s\\):\\nID\\s+SYMBOL`));
    expect(await openCount()).toBe(0);
  });

  it("I9: trading pause stops new orders, resume lets them in again; --dry-run pauses nothing", async () => {
    expect((await onStack("--dry-run", "trading", "pause")).code).toBe(0);
    expect(((await api("/api/trading/status")).body as { paused: boolean }).paused).toBe(false);
    const pause = await onStack("trading", "pause", "--reason", "maintenance");
    expect(pause.code, pause.stderr).toBe(0);
    expect(pause.stdout).toMatch(/^trading: PAUSED — maintenance/);
    expect((await openPosition()).status).toBe(409);
    expect((await onStack("trading", "status")).stdout).toMatch(/^trading: PAUSED/);
    expect((await onStack("trading", "resume")).stdout.trim()).toBe("trading: running");
    expect((await openPosition()).status).toBe(201);
    await api("/api/positions/close-all", {});
  });

  it("I2: circuit-breaker status shows a tripped breaker OPEN and reset closes it", async () => {
    await api("/api/circuit-breaker/trip", { reason: "exchange 5xx burst" });
    const status = await onStack("circuit-breaker", "status");
    expect(status.stdout).toMatch(/^circuit breaker: OPEN since .* \(exchange 5xx burst\)/);
    expect((await onStack("--dry-run", "circuit-breaker", "reset")).code).toBe(0);
    expect(((await api("/api/circuit-breaker/status")).body as { state: string }).state).not.toBe("CLOSED");
    const reset = await onStack("circuit-breaker", "reset");
    expect(reset.code, reset.stderr).toBe(0);
    expect(reset.stdout).toMatch(/^circuit breaker: CLOSED/);
  });
});

describe("orderly stop and start (Z4, I9)", () => {
  it("Z4: stop drains an in-flight request and stops the app then the infrastructure; start brings it all back with no row lost and health green", async () => {
    await openPosition("SOLUSDT");
    const counts = () =>
      onPg(outputs, outputs.database.traffic, async (c) => (await c.query("select (select count(*) from positions)::int as positions, (select count(*) from kill_switch_events)::int as kill_switch_events")).rows[0]);
    const before = await counts();

    // An in-flight request: its body arrives only once the app has begun shutting down.
    const appLog = join(sandbox.logsDir, "ops-api.log");
    const inFlight = slowPost("/api/circuit-breaker/reset", "{}");
    const stopping = onStack("--json", "stop");
    await waitFor(() => readFileSync(appLog, "utf8").includes("shutting down: refusing new requests"));
    inFlight.finish();
    expect(await inFlight.status).toBe(200);

    const stopped = await stopping;
    expect(stopped.code, stopped.stderr).toBe(0);
    const report = RunDocument.parse(JSON.parse(stopped.stdout)).report as { drainedCleanly: boolean; openPositions: unknown[]; infraStopped: string[] };
    expect(report.drainedCleanly).toBe(true);
    expect(report.openPositions.length).toBeGreaterThanOrEqual(1);
    expect(report.infraStopped).toEqual(["redis", "haproxy", "pg-a", "pg-b"]);
    for (const component of ["ops-api", "redis", "pg-a", "pg-b"] as const) expect(sandbox.pid(component), component).toBeUndefined();

    const started = await onStack("start");
    expect(started.code, started.stderr).toBe(0);
    expect(await counts()).toEqual(before);
    expect((await onStack("health")).code).toBe(0);
    // Trading stays paused after a start: resuming is explicit.
    expect(((await api("/api/trading/status")).body as { paused: boolean }).paused).toBe(true);
    await api("/api/trading/resume", {});
    await api("/api/positions/close-all", {});
  });

  it("I9: stop --close-positions is refused without --yes (nothing stops); with it the positions are closed before the app stops", async () => {
    await openPosition("ADAUSDT");
    const refused = await onStack("stop", "--close-positions");
    expect(refused.code).toBe(3);
    expect(sandbox.pid("ops-api")).toBeDefined();
    expect(await openCount()).toBeGreaterThan(0);

    const run = await onStack("--yes", "--json", "stop", "--close-positions");
    expect(run.code, run.stderr).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { closedPositions: number };
    expect(report.closedPositions).toBeGreaterThan(0);
    expect((await onStack("start")).code).toBe(0);
    expect(await openCount()).toBe(0);
  });

  it("I1, I3, Z4: --dry-run of kill-switch off, positions close-all and start changes nothing", async () => {
    const on = await onStack("--json", "kill-switch", "on", "--reason", "dry-run drill");
    const code = (RunDocument.parse(JSON.parse(on.stdout)).report as { issuedCode: string }).issuedCode;
    expect((await onStack("--dry-run", "kill-switch", "off", "--code", code)).code).toBe(0);
    expect(await killSwitchActive()).toBe(true);
    expect((await onStack("kill-switch", "off", "--code", code)).code).toBe(0);
    await api("/api/trading/resume", {});

    await openPosition("XRPUSDT");
    const open = await openCount();
    const dryClose = await onStack("--dry-run", "positions", "close-all", "--reason", "dry");
    expect(dryClose.stdout).toMatch(/Close all positions/);
    expect(await openCount()).toBe(open);
    await api("/api/positions/close-all", {});

    await sandbox.stop("ops-api");
    const dryStart = await onStack("--dry-run", "start");
    expect(dryStart.code).toBe(0);
    expect(dryStart.stdout).toMatch(/Start the app and wait until it is ready/);
    expect(sandbox.pid("ops-api")).toBeUndefined();
  });

  it("Z4: --dry-run of stop changes nothing (every component still runs)", async () => {
    const dry = await onStack("--dry-run", "stop", "--close-positions");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/Close the open positions/);
    for (const component of ["ops-api", "redis", "pg-a", "pg-b", "haproxy"] as const) expect(sandbox.pid(component), component).toBeDefined();
  });
});

/** A POST whose body is held back until `finish()`: a request in flight for as long as the test wants. */
function slowPost(path: string, body: string): { status: Promise<number>; finish(): void } {
  const url = new URL(path, outputs.opsApi.url);
  const req = request(url, { method: "POST", headers: { authorization: `Bearer ${outputs.opsApi.token}`, "content-length": Buffer.byteLength(body) } });
  const status = new Promise<number>((resolve, reject) => {
    req.on("response", (res) => {
      res.resume();
      res.on("end", () => resolve(res.statusCode ?? 0));
    });
    req.on("error", reject);
  });
  req.flushHeaders();
  return { status, finish: () => req.end(body) };
}

async function waitFor(check: () => boolean, withinMs = 20_000): Promise<void> {
  const deadline = Date.now() + withinMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error("timed out waiting");
    await sleep(50);
  }
}

