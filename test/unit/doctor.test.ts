/**
 * The doctor's pure parts: the p95 it reads from the API's histogram, the "not available" answers on
 * platforms without a signal, and the durations every maintenance command parses.
 */
import { describe, expect, it } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { CHECKS, renderDoctor, runChecks } from "../../runbooks/doctor.ts";
import { disk } from "../../runbooks/doctor/host-checks.ts";
import { Metrics, parseExposition } from "../../runbooks/doctor/metrics.ts";
import { Duration } from "../../runbooks/durations.ts";
import { cutoffFor } from "../../runbooks/maintenance/retention.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const EXPOSITION = `# HELP http_request_duration_seconds x
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le="0.1",method="GET",route="/api/positions",status="200"} 90
http_request_duration_seconds_bucket{le="1",method="GET",route="/api/positions",status="200"} 90
http_request_duration_seconds_bucket{le="2.5",method="GET",route="/api/positions",status="200"} 100
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/api/positions",status="200"} 100
http_request_duration_seconds_count{method="GET",route="/api/positions",status="200"} 100
http_request_duration_seconds_bucket{le="0.1",method="GET",route="/health",status="200"} 5
http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/health",status="200"} 5
http_request_duration_seconds_count{method="GET",route="/health",status="401"} 7
tradeops_queue_length{queue="data-collection"} NaN
`;

describe("doctor (T1, T2)", () => {
  it("T2: p95 per route is interpolated inside its bucket, as Prometheus' histogram_quantile does", () => {
    const p95 = new Metrics(parseExposition(EXPOSITION)).quantileBy("http_request_duration_seconds", "route", 0.95);
    expect(p95.get("/api/positions")).toEqual({ seconds: 1.75, count: 100 });
    expect(p95.get("/health")!.seconds).toBeCloseTo(0.095, 5);
  });

  it("T2: samples keep their labels, and NaN stays NaN (an unreadable source is not 0)", () => {
    const samples = new Metrics(parseExposition(EXPOSITION));
    expect(samples.select("http_request_duration_seconds_count", { status: "401" })[0]?.value).toBe(7);
    expect(samples.value("tradeops_queue_length")).toBeNaN();
  });

  it("T1: on docker the disk check says not available and why, instead of passing", async () => {
    const outputs = StackOutputs.parse(sampleOutputs({ platform: { kind: "docker", containers: { primary: "db", redis: "redis", api: "api" } } }));
    const [finding] = await runChecks(outputs, [disk], new AbortController().signal);
    expect(finding).toMatchObject({ check: "disk", status: "n/a", saw: expect.stringMatching(/^not available \(on docker, the free space of a data dir is read inside the container/) });
  });

  it("T1: every check has a unique name and the table has one row per finding under its headline", () => {
    expect(new Set(CHECKS.map((c) => c.name)).size).toBe(CHECKS.length);
    const text = renderDoctor({ status: "fail", checkedAt: new Date().toISOString(), findings: [{ check: "redis", status: "fail", saw: "connect ECONNREFUSED", cause: "Redis is not running", fix: "start it", features: [], durationMs: 3 }] });
    expect(text.split("\n")).toEqual(["fail: 1 failed, 0 warnings, 0 ok, 0 not available", expect.stringMatching(/^CHECK\s+STATUS\s+SAW\s+LIKELY CAUSE\s+FIX$/), expect.stringMatching(/^redis\s+fail\s+connect ECONNREFUSED\s+Redis is not running\s+start it$/)]);
  });
});

describe("durations and cutoffs (S6)", () => {
  it("S6: durations parse as ms spells them; anything else is refused with an example", () => {
    expect(Duration.parse("5m")).toBe(300_000);
    expect(Duration.parse("30d")).toBe(30 * 86_400_000);
    expect(Duration.safeParse("5x").error?.issues[0]?.message).toBe('"5x" is not a duration (e.g. 90s, 15m, 2h, 7d)');
    expect(Duration.safeParse("-5m").success).toBe(false);
  });

  it("S6: retention cutoffs are whole UTC days, so a dry run and the run on the same day agree", () => {
    const morning = Date.parse("2026-12-05T01:00:00Z");
    const evening = Date.parse("2026-12-05T23:00:00Z");
    expect(cutoffFor(365, morning)).toBe("2025-12-05T00:00:00.000Z");
    expect(cutoffFor(365, evening)).toBe(cutoffFor(365, morning));
  });
});
