/**
 * The pure parts of `backups check` and `backups expire` (#7): the I6 freshness rule, which bucket
 * sets I7 expires, pgBackRest's expire log, and the engine's dry run that reads before it plans.
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { z } from "zod";
import { StackOutputs } from "../../contract/outputs.ts";
import { parseExpireLog } from "../../runbooks/backups-expire.ts";
import { expiredSets, newestWithin, type BucketSet } from "../../runbooks/bucket-sets.ts";
import { runRunbook } from "../../runbooks/engine/run.ts";
import { defineRunbook } from "../../runbooks/engine/runbook.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const now = new Date("2026-12-05T12:00:00Z");
const hoursAgo = (h: number) => new Date(now.getTime() - h * 3_600_000);
const set = (id: string, at: Date, complete = true): BucketSet => ({ kind: "redis", id, at, complete, keys: [`redis/${id}/dump.rdb`], sizeBytes: 1 });

describe("I7: which bucket sets expire", () => {
  it("I7: sets older than the retention go, the newest complete one stays, and an interrupted upload goes once it is as old", () => {
    const sets = [set("a", hoursAgo(30)), set("partial-old", hoursAgo(26), false), set("b", hoursAgo(25)), set("partial-new", hoursAgo(0.1), false), set("c", hoursAgo(2))];
    expect(expiredSets(sets, 24 * 3_600_000, now).map((s) => s.id)).toEqual(["a", "partial-old", "b"]);
  });

  it("I7: a kind whose backups stopped keeps its last set, however old", () => {
    expect(expiredSets([set("a", hoursAgo(100)), set("b", hoursAgo(50))], 24 * 3_600_000, now).map((s) => s.id)).toEqual(["a"]);
  });
});

describe("I6: freshness", () => {
  it("I6: the newest complete set within the limit is fresh; beyond it, or none at all, is stale with what to run", () => {
    expect(newestWithin("Redis snapshot", [{ at: hoursAgo(0.5) }], 3600, now, "run `x`")).toMatchObject({ ok: true, ageSeconds: 1800, detail: "" });
    expect(newestWithin("Redis snapshot", [{ at: hoursAgo(2) }, { at: hoursAgo(0.1), complete: false }], 3600, now, "run `x`")).toMatchObject({
      ok: false,
      detail: "7200 s old, the policy allows 3600 s; run `x`",
    });
    expect(newestWithin("Redis snapshot", [], 3600, now, "run `x`")).toMatchObject({ ok: false, newest: null, detail: "none in the repository; run `x`" });
  });

  it("I6: the outputs' freshness policy defaults to the seed's (26 h full, 5 min WAL, 1 h Redis)", () => {
    expect(StackOutputs.parse(sampleOutputs()).freshness).toEqual({ pgFullMaxAgeSeconds: 93_600, walMaxAgeSeconds: 300, redisSnapshotMaxAgeSeconds: 3600 });
  });
});

describe("I7: pgBackRest's expire log", () => {
  it("I7: backups and WAL ranges are read from the info lines, dry run or not", () => {
    const log = [
      "2026-12-05 18:42:55.425 P00   INFO: [DRY-RUN] repo1: expire full backup set 20261205-184150F, 20261205-184150F_20261205-184228I",
      "2026-12-05 18:42:55.426 P00   INFO: [DRY-RUN] repo1: remove expired backup 20261205-184150F_20261205-184228I",
      "2026-12-05 18:42:55.426 P00   INFO: [DRY-RUN] repo1: remove expired backup 20261205-184150F",
      "2026-12-05 18:43:55.223 P00   INFO: repo1: 15-1 remove archive, start = 000000010000000000000001, stop = 000000010000000000000004",
    ].join("\n");
    expect(parseExpireLog(log)).toEqual({
      backups: ["20261205-184150F_20261205-184228I", "20261205-184150F"],
      archive: [{ archiveId: "15-1", start: "000000010000000000000001", stop: "000000010000000000000004" }],
    });
    expect(parseExpireLog("P00   INFO: expire command end: completed successfully")).toEqual({ backups: [], archive: [] });
  });
});

describe("engine: a dry run that reads before it plans", () => {
  let stateDir: string;
  beforeEach(() => void (stateDir = mkdtempSync(join(tmpdir(), "tradeops-policy-"))));
  afterEach(() => rmSync(stateDir, { recursive: true, force: true }));

  it("#7: with dryRunReads the read-only steps run, the others only plan, and the plan names what the reads found", async () => {
    const ran: string[] = [];
    let found: string[] = [];
    const runbook = defineRunbook({
      command: ["sweep"],
      name: "sweep",
      summary: "test",
      features: [],
      mutates: true,
      dryRunReads: true,
      args: z.object({}),
      steps: () => [
        { name: "Find what goes", readOnly: true, action: async (ctx) => void (ran.push("find"), (found = ["a", "b"]), ctx.record("found", found)) },
        {
          name: "Delete it",
          destructive: true,
          get plan() {
            return `delete ${found.join(", ")}`;
          },
          action: async () => void ran.push("delete"),
        },
      ],
      report: (facts) => ({ text: "", json: { found: facts.found } }),
    });
    const result = await runRunbook(runbook, {}, { target: { outputs: StackOutputs.parse(sampleOutputs()) }, stateDir, dryRun: true, quiet: true });
    expect(ran).toEqual(["find"]);
    expect(result.exitCode).toBe(0);
    expect(result.plan).toEqual(["1. Find what goes", "2. Delete it [destructive]", "   does: delete a, b"]);
    expect(result.steps.map((s) => [s.index, s.outcome])).toEqual([
      [1, "ok"],
      [2, "planned"],
    ]);
    expect(result.report).toEqual({ found: ["a", "b"] });
  });
});
