import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { hostname, tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { StackOutputs } from "../../contract/outputs.ts";
import { ExitCode, Refusal, StepFailure, UsageError } from "../../runbooks/engine/errors.ts";
import { auditFileIn, parseArgs, runRunbook, type RunOptions } from "../../runbooks/engine/run.ts";
import { defineRunbook, type Runbook, type Step } from "../../runbooks/engine/runbook.ts";
import { SECRETS, sampleOutputs } from "../support/sample-outputs.ts";

const outputs = StackOutputs.parse(sampleOutputs());
let stateDir: string;
let options: RunOptions;

beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), "tradeops-engine-"));
  options = { target: { outputs }, stateDir, quiet: true };
});
afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

const auditLines = () =>
  readFileSync(auditFileIn(stateDir), "utf8")
    .trim()
    .split("\n")
    .map((line) => JSON.parse(line));

/** As the CLI does: the args parsed once, then the run. */
const run = <Args,>(runbook: Runbook<Args>, raw: unknown, runOptions: RunOptions) => runRunbook(runbook, parseArgs(runbook, raw), runOptions);

/** A runbook over an in-memory "world", so each test can see exactly what ran. */
function counterRunbook(steps: Step[], mutates = true) {
  return defineRunbook({
    command: ["counter"],
    name: "counter",
    summary: "test runbook",
    features: [],
    mutates,
    args: z.object({ token: z.string().optional(), count: z.number().int().default(1) }),
    steps: () => steps,
  });
}

describe("step engine", () => {
  it("--dry-run prints the numbered plan, runs no step code and writes planned audit lines", async () => {
    const ran: string[] = [];
    const runbook = counterRunbook([
      { name: "Stop the API", plan: "scale api to 0", action: async () => void ran.push("stop"), undo: { plan: "scale api back", run: async () => {} } },
      { name: "Restore the database", destructive: true, precondition: async () => void ran.push("pre"), action: async () => void ran.push("restore") },
    ]);
    const result = await run(runbook, {}, { ...options, dryRun: true });
    expect(ran).toEqual([]);
    expect(result.exitCode).toBe(ExitCode.ok);
    expect(result.plan).toEqual([
      "1. Stop the API",
      "   does: scale api to 0",
      "   undo: scale api back",
      "2. Restore the database [destructive]",
    ]);
    expect(auditLines().map((l) => [l.step, l.result, l.dryRun])).toEqual([
      ["Stop the API", "planned", true],
      ["Restore the database", "planned", true],
    ]);
  });

  it("a dry run or a read-only run never creates the state dir", async () => {
    const missing = join(stateDir, "typo", "sandbox");
    const runbook = counterRunbook([{ name: "Look", action: async () => {} }]);
    expect((await run(runbook, {}, { ...options, stateDir: missing, dryRun: true })).exitCode).toBe(0);
    expect((await run(counterRunbook([{ name: "Look", action: async () => {} }], false), {}, { ...options, stateDir: missing })).exitCode).toBe(0);
    expect(existsSync(join(stateDir, "typo"))).toBe(false);
  });

  it("a state dir that cannot be a directory is a usage error before anything runs", async () => {
    const file = join(stateDir, "a-file");
    writeFileSync(file, "");
    let ran = false;
    const runbook = counterRunbook([{ name: "Change", action: async () => void (ran = true) }]);
    await expect(run(runbook, {}, { ...options, stateDir: join(file, "sub") })).rejects.toThrow(UsageError);
    expect(ran).toBe(false);
  });

  it("facts are masked as they are recorded, so --json and reports never carry a secret", async () => {
    const runbook = counterRunbook([
      { name: "Find a query", action: async (ctx) => ctx.record("query", `select '${SECRETS.opsToken}'`) },
    ]);
    const result = await run(runbook, {}, options);
    expect(result.facts.query).toBe("select '****'");
  });

  it("writes one masked audit line per step with who, duration and recorded facts", async () => {
    const runbook = counterRunbook([
      {
        name: "Read the lag",
        action: async (ctx) => {
          ctx.log(`connecting with ${SECRETS.dbPassword}`);
          ctx.record("standbyLagBytes", 4096);
          ctx.record("dsn", `postgres://tradeops:${SECRETS.dbPassword}@127.0.0.1:5432/trading`);
        },
      },
      { name: "Do nothing else", action: async () => {} },
    ]);
    const result = await run(runbook, { token: SECRETS.opsToken }, options);
    expect(result.exitCode).toBe(ExitCode.ok);
    const lines = auditLines();
    const steps = lines.filter((l) => l.step);
    expect(steps.map((l) => [l.index, l.step, l.result])).toEqual([
      [1, "Read the lag", "ok"],
      [2, "Do nothing else", "ok"],
    ]);
    expect(steps[0].facts.standbyLagBytes).toBe(4096);
    expect(steps[0].args.token).toBe("****");
    expect(typeof steps[0].durationMs).toBe("number");
    expect(steps[0].who).toMatch(/@/);
    const file = readFileSync(auditFileIn(stateDir), "utf8");
    for (const secret of Object.values(SECRETS)) expect(file).not.toContain(secret);
    expect(lines.at(-1)).toMatchObject({ result: "finished", exitCode: 0 });
  });

  it("stops at a failed step with its name, the reason and what to do next; later steps do not run", async () => {
    const ran: string[] = [];
    const runbook = counterRunbook([
      { name: "Fence the old primary", action: async () => void ran.push("fence"), undo: { plan: "start it again", run: async () => {} } },
      {
        name: "Promote the standby",
        action: async () => {
          throw new StepFailure("pg_promote returned false", "check the standby log");
        },
      },
      { name: "Switch traffic", action: async () => void ran.push("switch") },
    ]);
    const result = await run(runbook, {}, options);
    expect(result.exitCode).toBe(ExitCode.stepFailed);
    expect(ran).toEqual(["fence"]);
    expect(result.failure).toEqual({
      step: "Promote the standby",
      message: "pg_promote returned false",
      next: "check the standby log; to back out instead: Fence the old primary → start it again",
    });
    expect(auditLines().filter((l) => l.step).map((l) => l.result)).toEqual(["ok", "failed"]);
  });

  it("a failing precondition refuses with exit 3 and changes nothing", async () => {
    let acted = false;
    const runbook = counterRunbook([
      {
        name: "Promote the standby",
        precondition: async () => {
          throw new Refusal("standby lag 40 MB exceeds 16 MB", "wait for it to catch up or pass --max-lag");
        },
        action: async () => {
          acted = true;
        },
      },
    ]);
    const result = await run(runbook, {}, options);
    expect(result.exitCode).toBe(ExitCode.refused);
    expect(acted).toBe(false);
    expect(result.failure?.next).toBe("wait for it to catch up or pass --max-lag");
  });

  it("re-running after a fix resumes: steps whose effect is in place are skipped", async () => {
    const world = { backedUp: false, restored: false, broken: true };
    const runbook = counterRunbook([
      { name: "Back up", isDone: async () => world.backedUp, action: async () => void (world.backedUp = true) },
      {
        name: "Restore",
        isDone: async () => world.restored,
        action: async () => {
          if (world.broken) throw new Error("disk full");
          world.restored = true;
        },
      },
    ]);
    expect((await run(runbook, {}, options)).exitCode).toBe(ExitCode.stepFailed);
    world.broken = false;
    const second = await run(runbook, {}, options);
    expect(second.exitCode).toBe(ExitCode.ok);
    expect(second.steps.map((s) => s.outcome)).toEqual(["skipped", "ok"]);
  });

  it("a destructive step needs --yes, or the stack name typed back", async () => {
    let restored = 0;
    const runbook = counterRunbook([{ name: "Restore", destructive: true, action: async () => void restored++ }]);
    await expect(run(runbook, {}, options)).rejects.toThrow(/need --yes/);
    await expect(run(runbook, {}, { ...options, confirm: async () => "prod" })).rejects.toThrow(/did not match/);
    expect(restored).toBe(0);
    expect((await run(runbook, {}, { ...options, confirm: async () => "unit" })).exitCode).toBe(0);
    expect((await run(runbook, {}, { ...options, yes: true })).exitCode).toBe(0);
    expect(restored).toBe(2);
  });

  it("a second mutating runbook refuses (exit 3) while the first holds the stack lock", async () => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => (release = resolve));
    let started!: () => void;
    const running = new Promise<void>((resolve) => (started = resolve));
    const slow = counterRunbook([{ name: "Hold the lock", action: async () => (started(), held) }]);
    const first = run(slow, {}, options);
    await running;
    const second = run(counterRunbook([{ name: "Anything", action: async () => {} }]), {}, options);
    await expect(second).rejects.toBeInstanceOf(Refusal);
    await expect(second).rejects.toThrow(/locked by runbook 'counter' \(pid \d+/);
    expect(auditLines().filter((l) => l.result === "refused")).toEqual([
      expect.objectContaining({ runbook: "counter", exitCode: 3, error: expect.stringMatching(/^stack is locked by runbook 'counter'/) }),
    ]);
    release();
    expect((await first).exitCode).toBe(0);
    // Released: the next run gets the lock.
    expect((await run(counterRunbook([{ name: "Again", action: async () => {} }]), {}, options)).exitCode).toBe(0);
  });

  it("read-only runbooks never wait for the lock", async () => {
    writeFileSync(join(stateDir, "lock"), JSON.stringify({ runbook: "failover", pid: process.pid, host: hostname() }));
    const readOnly = counterRunbook([{ name: "Look", action: async () => {} }], false);
    expect((await run(readOnly, {}, options)).exitCode).toBe(0);
  });

  it("a lock left by a dead process is taken over", async () => {
    writeFileSync(
      join(stateDir, "lock"),
      JSON.stringify({ runbook: "failover", pid: 2 ** 22 + 17, host: hostname(), who: "x", since: "" }),
    );
    const result = await run(counterRunbook([{ name: "Go", action: async () => {} }]), {}, options);
    expect(result.exitCode).toBe(0);
  });

  it("bad arguments are a usage error naming the argument, before anything runs", async () => {
    const runbook = counterRunbook([{ name: "Go", action: async () => {} }]);
    expect(() => parseArgs(runbook, { count: "many" })).toThrow(UsageError);
    expect(() => parseArgs(runbook, { count: "many" })).toThrow(
      "counter: count: Invalid input: expected number, received string",
    );
  });
});

describe("the stack lock's own faults (#14)", () => {
  it("a lock path that is a directory refuses (exit 3) naming the path, and nothing runs", async () => {
    mkdirSync(join(stateDir, "lock"));
    let ran = false;
    const runbook = counterRunbook([{ name: "Change", action: async () => void (ran = true) }]);
    const refused = run(runbook, {}, options);
    await expect(refused).rejects.toBeInstanceOf(Refusal);
    await expect(run(runbook, {}, options)).rejects.toThrow(`the lock path ${join(stateDir, "lock")} is not a lock file`);
    expect(ran).toBe(false);
  });
});

describe("step budgets (#14)", () => {
  it("a step past its budget fails 'did not finish within N s' and its signal aborts the work under it", async () => {
    let aborted = false;
    const runbook = counterRunbook([
      {
        name: "Wait for a hung peer",
        budgetMs: 200,
        action: (ctx) =>
          new Promise<void>((resolve) => {
            ctx.signal.addEventListener("abort", () => {
              aborted = true;
              resolve();
            });
          }),
      },
      { name: "Never reached", action: async () => {} },
    ]);
    const result = await run(runbook, {}, options);
    expect(aborted).toBe(true);
    expect(result.exitCode).toBe(ExitCode.stepFailed);
    expect(result.failure).toMatchObject({ step: "Wait for a hung peer", message: "did not finish within 200 ms" });
    expect(result.steps.map((s) => s.name)).toEqual(["Wait for a hung peer"]);
  });
});

describe("lock takeover on the record (#16)", () => {
  it("a stale lock taken over leaves an audit line naming its old holder", async () => {
    writeFileSync(
      join(stateDir, "lock"),
      JSON.stringify({ runbook: "failover", runId: "r-1", pid: 2 ** 22 + 17, host: hostname(), who: "alice@laptop", since: "2026-12-03T03:00:00Z" }),
    );
    expect((await run(counterRunbook([{ name: "Go", action: async () => {} }]), {}, options)).exitCode).toBe(0);
    expect(auditLines().find((line) => line.result === "lock-taken-over")).toMatchObject({
      runbook: "counter",
      facts: { lock: join(stateDir, "lock"), previousHolder: { runbook: "failover", who: "alice@laptop", pid: 2 ** 22 + 17 } },
    });
  });
});
