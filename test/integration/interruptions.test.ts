/**
 * Interrupted runs tell the truth (issue #15): SIGINT or SIGTERM to the CLI's pid only (as a
 * supervisor or a closed terminal sends it) at several points of a backup. Whatever the moment,
 * the report and the audit line agree with what `pgbackrest info` lists afterwards, no pgBackRest
 * process is left running, and a re-run succeeds.
 */
import { execFileSync, spawn } from "node:child_process";
import { existsSync, readFileSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import { describe, expect, inject, it } from "vitest";
import { PgbackrestInfo } from "../../runbooks/backup.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { pgbackrest } from "../../runbooks/platform/db-node.ts";
import { stateDirFor } from "../../runbooks/state.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const auditFile = join(stateDirFor(outputs), "audit.jsonl");
const BIN = resolve(import.meta.dirname, "../../bin/tradeops.mjs");

interface AuditLine {
  runId: string;
  result: string;
  error?: string;
  facts: { backup?: { label: string }; interrupted?: unknown };
}

async function backupLabels(): Promise<string[]> {
  const info = PgbackrestInfo.parse(JSON.parse(await pgbackrest(outputs)("info", ["--output=json"])));
  return info[0]?.backup.map((b) => b.label) ?? [];
}

/** pgBackRest processes of this sandbox's stanza other than PostgreSQL's own archive-push. */
function pgbackrestProcesses(): string[] {
  return execFileSync("ps", ["-eo", "pid,args"], { encoding: "utf8" })
    .split("\n")
    .filter((line) => line.includes("pgbackrest") && line.includes(sandboxDir) && !/archive-(push|get)/.test(line));
}

/** Where pgBackRest logs each backup ("backup command end: completed successfully"). */
const backupLog = join(sandboxDir, "pgbackrest", "log", `${outputs.backup.stanza}-backup.log`);
const logSize = () => (existsSync(backupLog) ? statSync(backupLog).size : 0);

/** When to send the signal: when progress shows step n starting (+ a delay), or when pgBackRest logs the backup complete. */
type Moment = { atStep: 1 | 2; delayMs: number } | { afterCopy: true };

/**
 * Starts `tradeops backup` (progress on stderr: plain lines, no TTY), sends `signal` to the CLI's
 * pid only at `moment`, and collects the run.
 */
function interruptBackup(type: "full" | "incr", moment: Moment, signal: NodeJS.Signals) {
  return new Promise<{ code: number | null; stdout: string; stderr: string; signalled: boolean }>((done, fail) => {
    const logFrom = logSize();
    const child = spawn(process.execPath, [BIN, "--outputs", outputsFile, "backup", "--type", type], { stdio: ["ignore", "pipe", "pipe"] });
    let stdout = "";
    let stderr = "";
    let signalled = false;
    const send = () => {
      if (signalled) return;
      signalled = true;
      child.kill(signal);
    };
    child.stdout.on("data", (chunk) => (stdout += chunk));
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
      if ("atStep" in moment && stderr.includes(`[${moment.atStep}/2] `)) setTimeout(send, moment.delayMs);
    });
    const watch =
      "afterCopy" in moment
        ? setInterval(() => {
            if (logSize() > logFrom && readFileSync(backupLog, "utf8").slice(logFrom).includes("backup command end: completed successfully")) send();
          }, 10)
        : undefined;
    child.on("error", fail);
    child.on("close", (code) => {
      clearInterval(watch);
      done({ code, stdout, stderr, signalled });
    });
  });
}

describe("an interrupted backup reports what is true (#15)", () => {
  const cases: Array<{ signal: NodeJS.Signals; type: "full" | "incr"; when: Moment; moment: string }> = [
    { signal: "SIGINT", type: "full", when: { atStep: 1, delayMs: 300 }, moment: "before pgBackRest's copy" },
    { signal: "SIGTERM", type: "incr", when: { atStep: 1, delayMs: 300 }, moment: "before pgBackRest's copy" },
    { signal: "SIGINT", type: "full", when: { atStep: 2, delayMs: 1_500 }, moment: "during pgBackRest's copy" },
    { signal: "SIGTERM", type: "incr", when: { atStep: 2, delayMs: 500 }, moment: "early in pgBackRest's copy" },
    { signal: "SIGTERM", type: "full", when: { afterCopy: true }, moment: "right after pgBackRest's copy" },
    { signal: "SIGINT", type: "incr", when: { afterCopy: true }, moment: "right after pgBackRest's copy" },
  ];

  for (const { signal, type, when, moment } of cases) {
    it(`Z6: ${signal} ${moment} of a ${type} backup: report, audit line and pgbackrest info agree; nothing left running`, async () => {
      const before = await backupLabels();
      const run = await interruptBackup(type, when, signal);
      expect(run.signalled).toBe(true);
      const after = await backupLabels();
      const made = after.filter((label) => !before.includes(label));
      expect(made.length).toBeLessThanOrEqual(1);
      // pgBackRest had logged the backup complete: it is in the repository, and the run must say so.
      if ("afterCopy" in when) expect(made).toHaveLength(1);
      if ("atStep" in when && when.atStep === 1) expect(made).toEqual([]);

      expect(run.stderr).toContain(`tradeops: ${signal}: stopping the running step`);
      expect(pgbackrestProcesses()).toEqual([]);
      // The audit lines of this run: its step lines, and the finished line with every fact.
      const lines = readFileSync(auditFile, "utf8").trim().split("\n").map((line) => JSON.parse(line) as AuditLine);
      const runId = lines.at(-1)!.runId;
      const ofRun = lines.filter((line) => line.runId === runId);
      const finished = ofRun.find((line) => line.result === "finished")!;
      const interrupted = ofRun.find((line) => line.result === "interrupted");
      process.stderr.write(`[interruptions.test] ${signal} ${moment}: ${made.length ? `backup ${made[0]} completed` : "no backup"}${interrupted ? `; ${interrupted.error}` : "; the run had finished"}\n`);
      if (made.length) {
        // pgBackRest finished before it was stopped: the run says so, and names the backup.
        expect(finished.facts.backup?.label).toBe(made[0]);
        expect(run.stdout).toContain(`backup ${made[0]} (${type}`);
        if (interrupted) {
          expect(run.code).toBe(1);
          expect(interrupted.error).toMatch(new RegExp(`^interrupted by ${signal} during the step; it completed anyway`));
          expect(run.stdout).toMatch(/^interrupted by SIG(INT|TERM); backup .* completed anyway$/m);
        }
      } else {
        expect(run.code).toBe(1);
        expect(finished.facts.backup).toBeUndefined();
        expect(interrupted?.error).toMatch(new RegExp(`^interrupted by ${signal} (before the step started|during a step that only reads: nothing was changed|during the step; it did not complete)`));
        expect(finished.facts.interrupted).toMatchObject({ signal, completed: false });
        expect(run.stdout.trim()).toBe(`interrupted by ${signal}; no new backup in the repository`);
      }
    });
  }

  const killedMidBackup: Array<{ component: "s3" | "pg-b"; what: string; says: RegExp }> = [
    { component: "s3", what: "the S3 store", says: /the backup repository stopped answering for 15 s \(.*\): pgBackRest was stopped/ },
    { component: "pg-b", what: "the standby it copies from", says: /Take a full backup: failed .*pgbackrest exited \d+/ },
  ];
  for (const { component, what, says } of killedMidBackup) {
    // The S3 store: the run stops pgBackRest after 15 s of silence (its own retries took 8 min).
    it(`#7 Z6: ${what} killed mid-backup (SIGKILL): the run fails saying why, no backup is listed; after \`sandbox up\` the next backup succeeds`, async () => {
      const before = await backupLabels();
      const sandbox = await openSandbox({ dir: sandboxDir });
      const started = Date.now();
      const run = await new Promise<{ code: number | null; stderr: string }>((done, fail) => {
        const child = spawn(process.execPath, [BIN, "--outputs", outputsFile, "backup", "--type", "full"], { stdio: ["ignore", "ignore", "pipe"] });
        let stderr = "";
        let killed = false;
        child.stderr.on("data", (chunk) => {
          stderr += chunk;
          if (!killed && stderr.includes("[2/2] ")) {
            killed = true;
            setTimeout(() => process.kill(sandbox.pid(component)!, "SIGKILL"), 300);
          }
        });
        child.on("error", fail);
        child.on("close", (code) => done({ code, stderr }));
      });
      process.stderr.write(`[interruptions.test] ${what} killed mid-backup: the run ended after ${((Date.now() - started) / 1000).toFixed(1)} s\n`);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(says);
      expect(run.stderr).not.toMatch(/DeprecationWarning|\n\s+at /);
      expect(pgbackrestProcesses()).toEqual([]);
      const up = await tradeops(["sandbox", "up", "--dir", sandboxDir]);
      expect(up.code, up.stderr).toBe(0);
      expect(await backupLabels()).toEqual(before);
      const again = await tradeops(["--outputs", outputsFile, "backup", "--type", "full"]);
      expect(again.code, again.stderr).toBe(0);
      expect((await backupLabels()).filter((label) => !before.includes(label))).toHaveLength(1);
    });
  }

  it("Z6: after the interruptions a re-run takes its backup, and the repository lists it", async () => {
    const before = await backupLabels();
    const run = await tradeops(["--outputs", outputsFile, "backup", "--type", "incr", "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect((await backupLabels()).filter((label) => !before.includes(label))).toHaveLength(1);
  });
});
