/**
 * `tradeops logs` on the shared sandbox's real log files: lines planted in the ops API's log (and
 * taken out again) are found by the seeds' filters; `--summary` counts and ranks the errors.
 */
import { appendFileSync, statSync, truncateSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const log = join(inject("sandboxDir"), "logs", "ops-api.log");
const onStack = (...args: string[]) => tradeops(["--outputs", outputsFile, "logs", ...args]);
let size = 0;

beforeAll(() => {
  size = statSync(log).size;
  const now = new Date().toISOString();
  const old = new Date(Date.now() - 3 * 3600_000).toISOString();
  appendFileSync(
    log,
    [
      `{"time":"${old}","level":"error","msg":"exchange timeout","error":"after 3000 ms"}`,
      `{"time":"${now}","level":"error","msg":"order rejected","strategy":"s-42","error":"balance 1200 too low"}`,
      `{"time":"${now}","level":"error","msg":"order rejected","strategy":"s-7","error":"balance 80 too low"}`,
      `{"time":"${now}","level":"warn","msg":"exchange answered 429","retry_after_s":30}`,
      "",
    ].join("\n"),
  );
});
afterAll(() => truncateSync(log, size));

describe("logs (Z2, S12)", () => {
  it("Z2: --errors --since keeps the error lines of the window, each prefixed by its component", async () => {
    // --grep keeps to the planted lines: earlier files of the run leave errors of their own in this log.
    const run = await onStack("ops-api", "--errors", "--since", "1h", "--grep", "order rejected|exchange timeout");
    expect(run.code, run.stderr).toBe(0);
    const lines = run.stdout.trim().split("\n");
    expect(lines).toHaveLength(2);
    for (const line of lines) expect(line).toMatch(/^ops-api \| \{.*"level":"error","msg":"order rejected"/);
  });

  it("Z2: --strategy keeps one strategy's lines, --rate-limits the 429s", async () => {
    expect((await onStack("ops-api", "--strategy", "s-42", "--since", "1h")).stdout.trim().split("\n")).toEqual([expect.stringContaining('"strategy":"s-42"')]);
    expect((await onStack("ops-api", "--rate-limits", "--since", "1h")).stdout.trim().split("\n")).toEqual([expect.stringContaining("exchange answered 429")]);
  });

  it("S12: --summary counts errors per component and ranks the top errors in the window", async () => {
    // The other files of a full run leave errors of their own in every log (more than the top 10): --grep keeps to the planted ones.
    const run = await onStack("--summary", "--since", "1h", "--grep", "order rejected|exchange timeout", "--json");
    expect(run.code, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout).report;
    expect(report.errors["ops-api"]).toBe(2);
    expect(report.errors["pg-a"]).toBe(0);
    expect(report.top).toEqual([{ error: "order rejected: balance N too low", count: 2, components: ["ops-api"] }]);
  });

  it("Z2: an unknown component exits 2 naming the components there are", async () => {
    const run = await onStack("nope");
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/no component "nope" here; there are .*ops-api.*redis/);
  });
});
