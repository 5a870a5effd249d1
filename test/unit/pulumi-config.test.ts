/**
 * Stack config (infra/config.ts): a wrong, unknown or missing key fails with one line naming it,
 * S2's deployment checks refuse weak or plain-text credentials in prod, and the committed
 * Pulumi.<stack>.yaml files parse once their secrets are set.
 */
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import * as pulumi from "@pulumi/pulumi";
import { describe, expect, test } from "vitest";
import { ConfigError, SECRET_KEYS, loadStackConfig, shannonBitsPerChar, type ConfigSource } from "../../infra/config.ts";
import { DR_CONFIG, DR_SECRETS, PROD_CONFIG, PROD_SECRETS } from "./pulumi-fixtures.ts";
import { runProgram } from "./pulumi-harness.ts";

const yaml = createRequire(import.meta.url)("js-yaml") as { load(text: string): unknown };
const repoRoot = join(import.meta.dirname, "..", "..");

const DEV_SECRETS = {
  dbPassword: "d1",
  replicationPassword: "r1",
  redisPassword: "x1",
  jwtSecret: "j1",
  opsApiToken: "o1",
  grafanaAdminPassword: "g1",
  s3AccessKey: "a1",
  s3SecretKey: "s1",
};
const DEV = { ...DEV_SECRETS, apiImage: "ghcr.io/acme/api:1", workerImage: "ghcr.io/acme/worker:1" };

/** A config source as the engine gives it: `tradeops:`-prefixed strings, objects as JSON. */
function source(stack: string, values: Record<string, string | object | undefined>, secretKeys: string[]): ConfigSource {
  const entries = Object.entries(values).filter((entry): entry is [string, string | object] => entry[1] !== undefined);
  return {
    stack,
    values: Object.fromEntries(entries.map(([key, value]) => [`tradeops:${key}`, typeof value === "string" ? value : JSON.stringify(value)])),
    secretKeys: new Set(secretKeys.map((key) => `tradeops:${key}`)),
  };
}

function errorOf(stack: string, values: Record<string, string | object | undefined>, secretKeys: string[]): string {
  try {
    loadStackConfig(source(stack, values, secretKeys));
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const message = (error as Error).message;
    expect(message).not.toContain("\n");
    return message;
  }
  throw new Error("config was accepted");
}

const dev = (overrides: Record<string, string | object | undefined>) => errorOf("dev", { ...DEV, ...overrides }, Object.keys(DEV_SECRETS));
const prod = (overrides: Record<string, string | object | undefined>, secretKeys = Object.keys(PROD_SECRETS)) => errorOf("prod", { ...PROD_CONFIG, ...overrides }, secretKeys);
const dr = (overrides: Record<string, string | object | undefined>) => errorOf("dr", { ...DR_CONFIG, ...overrides }, Object.keys(DR_SECRETS));

describe("one line naming the bad key", () => {
  test.each([
    ["S7: a Redis size that is not a size", { redisMaxMemory: "2 gigs" }, "tradeops:redisMaxMemory: expected a size like 2gb"],
    ["an eviction policy Redis does not have", { redisMaxMemoryPolicy: "lru" }, "tradeops:redisMaxMemoryPolicy: expected a Redis maxmemory-policy such as allkeys-lru"],
    ["a missing image", { apiImage: undefined }, "tradeops:apiImage: missing (pulumi config set tradeops:apiImage …)"],
    ["a missing secret names --secret", { dbPassword: undefined }, "tradeops:dbPassword: missing (pulumi config set --secret tradeops:dbPassword …)"],
    ["a typo names the key it meant", { redisMaxMemroy: "2gb" }, "tradeops:redisMaxMemroy: unknown key (did you mean redisMaxMemory?)"],
    ["a key of another stack kind", { dnsZoneId: "Z123" }, "tradeops:dnsZoneId: unknown key for a dev stack (only prod stacks take it)"],
    ["a bind address that is a name", { bindAddress: "localhost" }, "tradeops:bindAddress: expected an IPv4 address like 127.0.0.1"],
    ["a port base that is not a number", { hostPortBase: "sixteen" }, "tradeops:hostPortBase: expected a whole number"],
    ["a privileged port base", { hostPortBase: "80" }, "tradeops:hostPortBase: expected a number ≥ 1024"],
    ["Z7: a CPU limit that is not a quantity", { resources: { api: { cpu: "two" } } }, "tradeops:resources.api.cpu: expected a CPU quantity like 2 or 500m"],
    ["an unknown workload under resources", { resources: { apii: { cpu: "1" } } }, "tradeops:resources.apii: unknown key"],
    ["S7: a Redis limit without room above maxmemory", { resources: { redis: { memory: "2Gi" } } }, "tradeops:resources.redis.memory: 2Gi leaves no headroom above redisMaxMemory 2gb; allow at least 25% more"],
    ["S2: Grafana's default password, even in dev", { grafanaAdminPassword: "admin" }, "tradeops:grafanaAdminPassword: must not be Grafana's default 'admin'"],
  ])("dev: %s", (_name, overrides, expected) => {
    expect(dev(overrides)).toBe(expected);
  });

  test("a structured key given as a plain string", () => {
    expect(dev({ resources: "2 cpus" })).toBe("tradeops:resources: expected an object (pulumi config set --path 'tradeops:resources.<name>' …)");
  });

  test("structured values set with --path may hold numbers or numeric strings", () => {
    const config = loadStackConfig(source("dev", { ...DEV, resources: { api: { cpu: 1 } }, retention: { walDays: "5" } }, Object.keys(DEV_SECRETS)));
    expect(config.resources.api).toEqual({ cpu: "1", memory: "2Gi" });
    expect(config.retention).toEqual({ pgFullDays: 30, walDays: 5, redisSnapshotHours: 24, modelDays: 90 });
  });

  test("a secret that happens to look like JSON stays a string", () => {
    const config = loadStackConfig(source("dev", { ...DEV, dbPassword: '{"not": "an object"}' }, Object.keys(DEV_SECRETS)));
    expect(config.dbPassword).toBe('{"not": "an object"}');
  });

  test("I7: a retention that is not positive", () => {
    expect(dev({ retention: { walDays: 0 } })).toMatch(/^tradeops:retention\.walDays: Too small/);
  });

  test("a stack that is neither dev, prod nor dr must say which it is", () => {
    expect(errorOf("staging", DEV, Object.keys(DEV_SECRETS))).toBe("tradeops:kind: missing; stack 'staging' needs kind dev, prod or dr (pulumi config set tradeops:kind prod)");
    expect(errorOf("staging", { ...DEV, kind: "qa" }, Object.keys(DEV_SECRETS))).toBe("tradeops:kind: expected dev, prod or dr");
  });
});

describe("S2: the deployment checklist in prod", () => {
  test("accepts the strong, secret prod config", () => {
    expect(loadStackConfig(source("prod", PROD_CONFIG, Object.keys(PROD_SECRETS))).kind).toBe("prod");
  });

  test.each([
    ["a JWT secret shorter than 32 characters", { jwtSecret: "short-secret" }, "tradeops:jwtSecret: too short (12 characters); use at least 32 random characters (openssl rand -base64 48)"],
    ["a long but predictable JWT secret", { jwtSecret: "abababababababababababababababababab" }, "tradeops:jwtSecret: too predictable (low entropy); use random bytes (openssl rand -base64 48)"],
    ["Grafana's default admin password", { grafanaAdminPassword: "admin" }, "tradeops:grafanaAdminPassword: must not be a default value ('admin' is)"],
    ["a short Redis password", { redisPassword: "redis123" }, "tradeops:redisPassword: too short (8 characters); use at least 16"],
    ["no TLS secret for the API", { tlsSecretName: undefined }, "tradeops:tlsSecretName: missing (pulumi config set tradeops:tlsSecretName …)"],
    ["no backup bucket", { backupBucketName: undefined }, "tradeops:backupBucketName: missing (pulumi config set tradeops:backupBucketName …)"],
    ["a bucket name S3 refuses", { backupBucketName: "My_Backups" }, "tradeops:backupBucketName: expected an S3 bucket name (3-63 lowercase letters, digits, . and -)"],
    ["the DR bucket equal to the primary", { drBucketName: PROD_CONFIG.backupBucketName }, "tradeops:drBucketName: must differ from backupBucketName (replication needs a second bucket)"],
    ["a region that is not one", { drRegion: "europe" }, "tradeops:drRegion: expected an AWS region like eu-west-1"],
    ["a single API replica (a PodDisruptionBudget could never allow a drain)", { apiReplicas: "1" }, "tradeops:apiReplicas: expected a number ≥ 2"],
    ["a hosted zone id that is not one", { dnsZoneId: "example.com" }, "tradeops:dnsZoneId: expected a Route53 hosted zone id like Z123ABC"],
  ])("refuses %s", (_name, overrides, expected) => {
    expect(prod(overrides)).toBe(expected);
  });

  test("refuses a database password set in plain text", () => {
    const plain = Object.keys(PROD_SECRETS).filter((key) => key !== "dbPassword");
    expect(prod({}, plain)).toBe("tradeops:dbPassword: must be set as a secret (pulumi config set --secret tradeops:dbPassword …)");
  });

  test("random secrets score high on entropy, repeated words low", () => {
    expect(shannonBitsPerChar(PROD_SECRETS.jwtSecret)).toBeGreaterThan(4.5);
    expect(shannonBitsPerChar("passwordpasswordpasswordpassword")).toBeLessThan(3);
  });
});

describe("dr config", () => {
  test("refuses streaming without the primary's host, and a missing prod stack name", () => {
    expect(dr({ standbyMode: "streaming" })).toBe("tradeops:primaryHost: missing; standbyMode streaming needs the primary's host name reachable from the DR site");
    expect(dr({ prodStack: undefined })).toBe("tradeops:prodStack: missing (pulumi config set tradeops:prodStack …)");
    expect(dr({ kubeconfig: undefined })).toBe("tradeops:kubeconfig: missing (pulumi config set --secret tradeops:kubeconfig …)");
  });
});

describe("I5: the DR site's keys", () => {
  test("prod names the stack that declares the DR site; a name that is no stack name is refused", () => {
    expect(loadStackConfig(source("prod", PROD_CONFIG, Object.keys(PROD_SECRETS)))).toMatchObject({ drStack: "organization/tradeops/dr" });
    expect(loadStackConfig(source("prod", { ...PROD_CONFIG, drStack: undefined }, Object.keys(PROD_SECRETS)))).not.toHaveProperty("drStack");
    expect(prod({ drStack: "organization/tradeops dr" })).toBe("tradeops:drStack: expected a stack name like organization/tradeops/dr");
    expect(dr({ drStack: "organization/tradeops/dr" })).toBe("tradeops:drStack: unknown key for a dr stack (only prod stacks take it)");
  });

  test("dr's active replica counts default to 2 API pods and 1 worker; pilot light stays 0", () => {
    const config = loadStackConfig(source("dr", { ...DR_CONFIG, drActiveApiReplicas: undefined }, Object.keys(DR_SECRETS)));
    expect(config).toMatchObject({ drActiveApiReplicas: 2, drActiveWorkerReplicas: 1, drApiReplicas: 0, workerReplicas: 0 });
    expect(loadStackConfig(source("dr", { ...DR_CONFIG, drActiveWorkerReplicas: "4" }, Object.keys(DR_SECRETS)))).toMatchObject({ drActiveApiReplicas: 3, drActiveWorkerReplicas: 4 });
  });

  test.each([
    ["a single active API pod (a node drain would take the site down, as in prod)", { drActiveApiReplicas: "1" }, "tradeops:drActiveApiReplicas: expected a number ≥ 2"],
    ["no active worker", { drActiveWorkerReplicas: "0" }, "tradeops:drActiveWorkerReplicas: expected a number ≥ 1"],
    ["a count that is not a number", { drActiveApiReplicas: "two" }, "tradeops:drActiveApiReplicas: expected a whole number"],
  ])("dr refuses %s", (_name, overrides, expected) => {
    expect(dr(overrides)).toBe(expected);
  });

  test("the active counts are the dr stack's alone", () => {
    expect(prod({ drActiveApiReplicas: "2" })).toBe("tradeops:drActiveApiReplicas: unknown key for a prod stack (only dr stacks take it)");
  });
});

describe("#8: tradeops:primaryNode", () => {
  test("dev takes its two database nodes; unset is the home primary", () => {
    expect(loadStackConfig(source("dev", { ...DEV, primaryNode: "pg-b" }, Object.keys(DEV_SECRETS))).primaryNode).toBe("pg-b");
    expect(loadStackConfig(source("dev", DEV, Object.keys(DEV_SECRETS))).primaryNode).toBeUndefined();
    expect(dev({ primaryNode: "pg-c" })).toBe("tradeops:primaryNode: expected pg-a or pg-b (the dev stack's database nodes)");
    expect(dev({ primaryNode: "timescale-0" })).toBe("tradeops:primaryNode: expected pg-a or pg-b (the dev stack's database nodes)");
  });

  test("prod takes timescale-<i> below pgReplicas", () => {
    expect(loadStackConfig(source("prod", { ...PROD_CONFIG, primaryNode: "timescale-1" }, Object.keys(PROD_SECRETS))).primaryNode).toBe("timescale-1");
    expect(prod({ primaryNode: "timescale-2" })).toBe("tradeops:primaryNode: timescale-2 is not a database pod of this stack (pgReplicas 2: timescale-0 … timescale-1)");
    expect(loadStackConfig(source("prod", { ...PROD_CONFIG, primaryNode: "timescale-2", pgReplicas: "3" }, Object.keys(PROD_SECRETS))).primaryNode).toBe("timescale-2");
  });

  test("a name that is no pod name, and dr's single pod", () => {
    expect(prod({ primaryNode: "pg-a" })).toBe("tradeops:primaryNode: expected a database pod name like timescale-0");
    expect(dr({ primaryNode: "timescale-1" })).toBe("tradeops:primaryNode: timescale-1 is not a database pod of this stack (the DR site runs 1: timescale-0)");
  });

  test("through the program: a pod beyond the replica count stops the stack with a RunError", async () => {
    const error = await runProgram({ stack: "prod", config: { ...PROD_CONFIG, primaryNode: "timescale-5" }, secretKeys: Object.keys(PROD_SECRETS) }).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(pulumi.RunError.isInstance(error)).toBe(true);
    expect((error as Error).message).toBe("tradeops:primaryNode: timescale-5 is not a database pod of this stack (pgReplicas 2: timescale-0 … timescale-1)");
  });
});

describe("the committed stack files", () => {
  const stackFile = (stack: string) => yaml.load(readFileSync(join(repoRoot, `Pulumi.${stack}.yaml`), "utf8")) as { config: Record<string, unknown> };
  const secretsFor = { dev: DEV_SECRETS, prod: PROD_SECRETS, dr: DR_SECRETS } as const;

  test.each(["dev", "prod", "dr"] as const)("Pulumi.%s.yaml holds no secret and parses once the secrets are set", (stack) => {
    const { config } = stackFile(stack);
    for (const key of SECRET_KEYS) expect(config[`tradeops:${key}`], key).toBeUndefined();
    const values = Object.fromEntries(Object.entries(config).map(([key, value]) => [key.replace(/^tradeops:/, ""), typeof value === "object" ? value! : String(value)]));
    const parsed = loadStackConfig(source(stack, { ...values, ...secretsFor[stack] }, Object.keys(secretsFor[stack])));
    expect(parsed.kind).toBe(stack);
  });

  test("Pulumi.yaml runs the ESM TypeScript entry through tsx with Pulumi's ts-node off", () => {
    const project = yaml.load(readFileSync(join(repoRoot, "Pulumi.yaml"), "utf8")) as Record<string, any>;
    expect(project).toMatchObject({ name: "tradeops", main: "infra/index.ts", runtime: { name: "nodejs", options: { typescript: false, nodeargs: "--import tsx" } } });
  });
});

test("through the program: a bad key stops the stack with a RunError (printed by Pulumi as its message alone)", async () => {
  const error = await runProgram({ stack: "dev", config: { ...DEV, redisMaxMemory: "lots" }, secretKeys: Object.keys(DEV_SECRETS) }).then(
    () => undefined,
    (caught: unknown) => caught,
  );
  expect(pulumi.RunError.isInstance(error)).toBe(true);
  expect((error as Error).message).toBe("tradeops:redisMaxMemory: expected a size like 2gb");
});
