import { describe, expect, it } from "vitest";
import { StackOutputs, describeIssue, secretValues } from "../../contract/outputs.ts";
import { SECRETS, sampleOutputs } from "../support/sample-outputs.ts";

const errorLine = (input: unknown) => {
  const parsed = StackOutputs.safeParse(input);
  expect(parsed.success).toBe(false);
  return describeIssue(parsed.error!);
};

describe("outputs contract", () => {
  it("accepts a complete sandbox document and fills the I7 retention defaults", () => {
    const parsed = StackOutputs.parse(sampleOutputs());
    expect(parsed.retention).toEqual({ pgFullDays: 30, walDays: 7, redisSnapshotHours: 24, modelDays: 90 });
    expect(parsed.database.replication.maxLagBytes).toBe(16 * 1024 * 1024);
    expect(parsed.notifications).toEqual({});
  });

  it("accepts the kubernetes platform with a DR site", () => {
    const parsed = StackOutputs.parse(
      sampleOutputs({
        stack: "prod",
        platform: { kind: "kubernetes", namespace: "trading", deployments: { api: "api" }, statefulSets: { database: "timescale", redis: "redis" } },
        dr: { name: "dr", region: "ap-northeast-2", dns: { zoneId: "Z123", recordName: "api.example.com" } },
      }),
    );
    expect(parsed.platform.kind).toBe("kubernetes");
    expect(parsed.dr?.region).toBe("ap-northeast-2");
  });

  it("#8: a kubernetes platform may name its database Service and ConfigMap (the failover runbooks patch them)", () => {
    const platform = { kind: "kubernetes" as const, namespace: "trading", deployments: { api: "api" }, statefulSets: { database: "timescale", redis: "redis" } };
    const parsed = StackOutputs.parse(sampleOutputs({ stack: "prod", platform: { ...platform, services: { database: "timescale-rw" }, configMaps: { database: "timescale-config" } } }));
    expect(parsed.platform).toMatchObject({ services: { database: "timescale-rw" }, configMaps: { database: "timescale-config" } });
    expect(StackOutputs.parse(sampleOutputs({ stack: "prod", platform })).platform).not.toHaveProperty("services");
    expect(errorLine(sampleOutputs({ stack: "prod", platform: { ...platform, services: { database: "" } } }))).toBe("platform.services.database: Too small: expected string to have >=1 characters");
  });

  it("names the bad key in one line: a port given as a string", () => {
    const input = sampleOutputs();
    (input.database.primary as { port: unknown }).port = "5432";
    expect(errorLine(input)).toBe("database.primary.port: Invalid input: expected number, received string");
  });

  it("names the bad key in one line: an empty password", () => {
    const input = sampleOutputs();
    input.database.password = "";
    expect(errorLine(input)).toBe("database.password: must not be empty");
  });

  it("names the bad key in one line: a missing ops API token", () => {
    const input = sampleOutputs({ opsApi: { url: "http://127.0.0.1:1" } as never });
    expect(errorLine(input)).toBe("opsApi.token: Invalid input: expected string, received undefined");
  });

  it("names the bad key in one line: an unknown platform", () => {
    expect(errorLine(sampleOutputs({ platform: { kind: "nomad" } as never }))).toBe(
      "platform.kind: Invalid discriminator value. Expected 'sandbox' | 'docker' | 'kubernetes'",
    );
  });

  it("names the bad key in one line: an invalid bucket name", () => {
    const input = sampleOutputs();
    input.backup.bucket = "Bad_Bucket";
    expect(errorLine(input)).toBe("backup.bucket: an S3 bucket name");
  });

  it("names the bad key in one line: a contract version from the future", () => {
    expect(errorLine(sampleOutputs({ contractVersion: 2 as never }))).toBe("contractVersion: Invalid input: expected 1");
  });

  it("refuses a stack name that could escape the state dir", () => {
    expect(errorLine(sampleOutputs({ stack: "../../tmp/elsewhere" }))).toBe(
      "stack: a stack name: letters, digits, '.', '_' and '-'",
    );
  });

  it("counts further problems after the first", () => {
    const input = sampleOutputs();
    input.redis.port = 0;
    input.database.name = "";
    expect(errorLine(input)).toMatch(/^database\.name: .* \(\+1 more\)$/);
  });

  it("finds every secret by its schema marking, not by key name", () => {
    const parsed = StackOutputs.parse(sampleOutputs({ notifications: { telegram: { botToken: "tg-Secret-55", chatId: "42" } } }));
    expect(secretValues(parsed).sort()).toEqual(
      [SECRETS.dbPassword, SECRETS.opsToken, SECRETS.s3Key, SECRETS.s3Secret, SECRETS.redisPassword, "tg-Secret-55"].sort(),
    );
  });
});
