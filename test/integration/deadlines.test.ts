/**
 * Nothing hangs (issue #14): with each component of the shared sandbox hung in turn (SIGSTOP),
 * every runbook answers within its deadline, names the hung component ("no answer within N s"),
 * and exits by itself with nothing left running. The component is resumed (SIGCONT) after each case.
 */
import { execFileSync, spawn } from "node:child_process";
import { chmodSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { HealthDocument } from "../../runbooks/health.ts";
import { openSandbox, type ComponentName } from "../../sandbox/index.ts";
import { timed, whileHung } from "../support/hang.ts";
import { tradeops } from "../support/tradeops.ts";
import { INTEGRATION_BASE_PORT } from "./global-setup.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const sandbox = await openSandbox({ dir: sandboxDir });
const onStack = (...args: string[]) => timed(() => tradeops(["--outputs", outputsFile, ...args]));

/** The component of `health` (and the view of `diagnose`) that stands for each sandbox process. */
const CASES: Array<{ component: ComponentName; health: string; diagnoseView?: string }> = [
  { component: "pg-a", health: "primary", diagnoseView: "activeQueries" },
  { component: "pg-b", health: "standby" },
  { component: "haproxy", health: "traffic" },
  { component: "redis", health: "redis", diagnoseView: "redis" },
  { component: "s3", health: "backup-repository" },
  { component: "ops-api", health: "ops-api" },
  { component: "prometheus", health: "prometheus" },
  { component: "alertmanager", health: "alertmanager" },
];

/** pgBackRest processes of this sandbox still alive (a refused backup must not leave one behind). */
function pgbackrestProcesses(): string[] {
  const listing = execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" });
  return listing.split("\n").filter((line) => line.includes("pgbackrest") && line.includes(sandboxDir) && !line.includes("archive-push"));
}

describe("a hung component is named, and nothing waits for it (#14)", () => {
  for (const { component, health, diagnoseView } of CASES) {
    it(`Z1: with ${component} hung, health exits 1 within 7 s naming ${health} as not answering`, async () => {
      const run = await whileHung(sandbox, component, () => onStack("health", "--json"));
      expect(run.code).toBe(1);
      const unhealthy = HealthDocument.parse(JSON.parse(run.stdout)).report!.components.filter((c) => c.status === "unhealthy");
      expect(unhealthy.find((c) => c.component === health)?.detail).toMatch(/no answer within \d+(\.\d)? s/);
      expect(run.seconds).toBeLessThan(7);
    });

    it(`Z5: with ${component} hung, diagnose finishes within 10 s${diagnoseView ? ` and says its view is unavailable` : ""}${component.startsWith("pg-") ? `, its disk row too` : ""}`, async () => {
      const run = await whileHung(sandbox, component, () => onStack("diagnose", "--json"));
      expect(run.code, run.stderr).toBe(0);
      const facts = RunDocument.parse(JSON.parse(run.stdout)).facts as Record<string, { note?: string; rows?: string[][] }>;
      if (diagnoseView) expect(facts[diagnoseView]?.note).toMatch(/^unavailable: no answer within \d+(\.\d)? s/);
      // A hung node's row of the disk view says so; the other node's row is filled in.
      if (component === "pg-a" || component === "pg-b") {
        const rows = facts.disk!.rows!;
        expect(rows.find((row) => row[0] === component)?.at(-1)).toMatch(/^unavailable: no answer within \d+(\.\d)? s/);
        expect(rows.find((row) => row[0] !== component)?.at(-1)).not.toMatch(/unavailable/);
      }
      expect(run.seconds).toBeLessThan(10);
    });
  }

  for (const [component, named] of [["pg-a", /primary pg-a .*no answer within/], ["s3", /backup repository does not answer: no answer within/]] as const) {
    it(`Z6: with ${component} hung, backup refuses (exit 3) within 15 s naming it, and leaves no pgBackRest process`, async () => {
      const run = await whileHung(sandbox, component, () => onStack("backup"));
      expect(run.code, run.stderr).toBe(3);
      expect(run.stderr).toMatch(named);
      expect(run.seconds).toBeLessThan(15);
      expect(pgbackrestProcesses()).toEqual([]);
    });
  }
});

describe("signals while a dependency hangs (#17)", () => {
  /** health against the outputs, with `signals` sent to its pid from `afterMs` after start, 200 ms apart (a pending signal is not queued twice). */
  function healthSignalled(signals: NodeJS.Signals[], afterMs: number) {
    return new Promise<{ code: number | null; stderr: string; secondsAfterSignal: number }>((done) => {
      const child = spawn(process.execPath, [resolve(import.meta.dirname, "../../bin/tradeops.mjs"), "--outputs", outputsFile, "health"], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      let signalledAt = 0;
      child.stderr.on("data", (chunk) => (stderr += chunk));
      signals.forEach((signal, i) =>
        setTimeout(() => {
          signalledAt = performance.now();
          child.kill(signal);
        }, afterMs + i * 200),
      );
      child.on("close", (code) => done({ code, stderr, secondsAfterSignal: (performance.now() - signalledAt) / 1000 }));
    });
  }

  it("the first SIGTERM stops a run stuck on a hung Redis within seconds, reporting what it found", async () => {
    const run = await whileHung(sandbox, "redis", () => healthSignalled(["SIGTERM"], 1_500));
    expect(run.code).toBe(1);
    expect(run.stderr).toContain("tradeops: SIGTERM: stopping the running step");
    expect(run.stderr).toMatch(/interrupted by SIGTERM/);
    expect(run.secondsAfterSignal).toBeLessThan(3);
  });

  it("a second signal exits at once, while the first waits for a step that cannot stop at once (initdb of a new sandbox)", async () => {
    const parent = mkdtempSync(join(tmpdir(), "tradeops-it-signal-"));
    chmodSync(parent, 0o755); // the postgres OS user must reach the sandbox
    const dir = join(parent, "sandbox");
    const basePort = INTEGRATION_BASE_PORT + 300;
    const run = await new Promise<{ code: number | null; stderr: string; secondsAfterSignal: number }>((done) => {
      const child = spawn(process.execPath, [resolve(import.meta.dirname, "../../bin/tradeops.mjs"), "sandbox", "up", "--dir", dir, "--base-port", String(basePort)], { stdio: ["ignore", "pipe", "pipe"] });
      let stderr = "";
      let signalledAt = 0;
      child.stderr.on("data", (chunk) => {
        stderr += chunk;
        if (!signalledAt && stderr.includes("Start the PostgreSQL primary pg-a ...")) {
          signalledAt = performance.now();
          child.kill("SIGINT");
          setTimeout(() => {
            signalledAt = performance.now();
            child.kill("SIGINT");
          }, 300);
        }
      });
      child.on("close", (code) => done({ code, stderr, secondsAfterSignal: (performance.now() - signalledAt) / 1000 }));
    });
    try {
      expect(run.code).toBe(1);
      expect(run.stderr).toContain("tradeops: SIGINT: stopping the running step");
      expect(run.stderr).toContain("tradeops: SIGINT again: exiting now");
      expect(run.secondsAfterSignal).toBeLessThan(1);
    } finally {
      const down = await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", dir]);
      rmSync(parent, { recursive: true, force: true });
      expect(down.code, down.stderr).toBe(0);
    }
  });
});
