/**
 * The log adapters of docker and kubernetes against fake `docker` / `kubectl` executables that
 * speak their CLIs (argv in, timestamped lines out), and the filters of `tradeops logs`.
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { errorShape, matches } from "../../runbooks/logs.ts";
import { lineTime, logSource } from "../../runbooks/platform/logs.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const bin = mkdtempSync(join(tmpdir(), "fake-cli-"));
const argvFile = join(bin, "argv");
const originalPath = process.env.PATH;

beforeAll(() => {
  for (const cli of ["docker", "kubectl"]) {
    // Records its argv, answers like the real CLI with --timestamps: RFC 3339 time, a space, the line.
    writeFileSync(join(bin, cli), `#!/bin/sh\nprintf '%s\\n' "$@" > ${argvFile}\necho "2026-12-05T18:00:00.000000000Z {\\"level\\":\\"error\\",\\"msg\\":\\"order rejected\\",\\"strategy\\":\\"s-42\\"}"\necho "2026-12-05T18:00:01.000000000Z GET /api/orders 429 Retry-After: 30" >&2\n`);
    chmodSync(join(bin, cli), 0o755);
  }
  process.env.PATH = `${bin}:${originalPath}`;
});
afterAll(() => {
  process.env.PATH = originalPath;
  rmSync(bin, { recursive: true, force: true });
});

const argv = () => readFileSync(argvFile, "utf8").trim().split("\n");

describe("log adapters (Z2, C5)", () => {
  it("Z2: docker logs are read with --timestamps and --since for the component's container", async () => {
    const outputs = StackOutputs.parse(sampleOutputs({ platform: { kind: "docker", containers: { primary: "tdb", redis: "tredis", api: "tapi", worker: "tworker" } } }));
    const source = logSource(outputs);
    expect(await source.components()).toEqual(["primary", "redis", "api", "worker"]);
    const lines = await source.read("worker", { sinceMs: 3_600_000 });
    expect(argv().slice(0, 3)).toEqual(["logs", "--timestamps", "--since"]);
    expect(Date.parse(argv()[3]!)).toBeGreaterThan(Date.now() - 3_700_000);
    expect(argv().at(-1)).toBe("tworker");
    expect(lines).toHaveLength(2);
    expect(source.where("api")).toBe("docker logs tapi");
  });

  it("Z2: kubernetes logs are read from the workload with the context, namespace and --since-time", async () => {
    const outputs = StackOutputs.parse(sampleOutputs({ platform: { kind: "kubernetes", namespace: "trading", context: "prod-eks", deployments: { api: "api", worker: "worker" }, statefulSets: { database: "pg", redis: "redis" } } }));
    await logSource(outputs).read("api", { sinceMs: 60_000 });
    expect(argv()).toEqual(["--context", "prod-eks", "-n", "trading", "logs", "--timestamps", "--all-containers", expect.stringMatching(/^--since-time=\d{4}-/), "deployment/api"]);
    await expect(logSource(outputs).read("nope")).rejects.toThrow(/no component nope here; there are api, worker, database, redis/);
  });
});

describe("log filters (Z2, S12)", () => {
  const error = '{"time":"2026-12-05T18:00:00.000Z","level":"error","msg":"order rejected","strategy":"s-42","error":"balance 1200 too low"}';
  const info = '{"time":"2026-12-05T18:00:00.000Z","level":"info","msg":"request","route":"/api/orders","status":429}';

  it("Z2: errors, one strategy, orders and rate-limit lines are told apart", () => {
    expect(matches(error, { errors: true })).toBe(true);
    expect(matches(info, { errors: true })).toBe(false);
    expect(matches("2026-12-05 18:00:00.000 GMT [12] ERROR:  deadlock detected", { errors: true })).toBe(true);
    expect(matches(error, { strategy: "s-42" })).toBe(true);
    expect(matches(error, { strategy: "s-4" })).toBe(false);
    expect(matches("placing order strategy=s-42 qty=3", { strategy: "s-42", orders: true })).toBe(true);
    expect(matches(info, { rateLimits: true })).toBe(true);
    expect(matches(error, { rateLimits: true })).toBe(false);
    expect(matches(error, { grep: /BALANCE/i })).toBe(true);
  });

  it("S12: error lines group by their shape (times and numbers taken out)", () => {
    expect(errorShape(error)).toBe("order rejected: balance N too low");
    expect(errorShape("2026-12-05 18:00:00.000 GMT [12] ERROR:  deadlock detected")).toBe("[N] ERROR: deadlock detected");
  });

  it("S12: the time of a line is read from JSON, PostgreSQL, Redis and RFC 3339 stamps", () => {
    expect(lineTime(error)).toBe(Date.parse("2026-12-05T18:00:00.000Z"));
    expect(lineTime("2026-12-05 18:00:00.000 GMT [12] LOG:  checkpoint")).toBe(Date.parse("2026-12-05T18:00:00.000Z"));
    expect(lineTime("4242:M 05 Dec 2026 18:00:00.123 * Ready to accept connections")).toBe(Date.parse("2026-12-05T18:00:00.123Z"));
    expect(lineTime("no time here")).toBeUndefined();
  });
});
