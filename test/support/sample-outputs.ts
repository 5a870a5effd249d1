/** A complete, valid outputs document for unit tests (no process behind it). */
import type { StackOutputsInput } from "../../contract/outputs.ts";

export const SECRETS = {
  dbPassword: "pg-Secret-4f9a1c",
  opsToken: "ops-Token-77b2e0",
  s3Key: "AKIA-SAMPLE-KEY",
  s3Secret: "s3-Secret-9c01ff",
  redisPassword: "redis-Secret-1d2e",
};

export function sampleOutputs(overrides: Partial<StackOutputsInput> = {}): StackOutputsInput {
  return {
    contractVersion: 1,
    stack: "unit",
    platform: { kind: "sandbox", dir: "/tmp/tradeops-unit", osUser: "postgres", pgBinDir: "/usr/lib/postgresql/15/bin" },
    database: {
      name: "trading",
      user: "tradeops",
      password: SECRETS.dbPassword,
      primary: { name: "pg-a", host: "127.0.0.1", port: 15401, role: "primary", dataDir: "/tmp/tradeops-unit/pg-a" },
      standby: { name: "pg-b", host: "127.0.0.1", port: 15402, role: "standby", dataDir: "/tmp/tradeops-unit/pg-b" },
      replication: { mode: "sync", slot: "pg_b" },
      traffic: { host: "127.0.0.1", port: 15403 },
    },
    redis: { host: "127.0.0.1", port: 15404, password: SECRETS.redisPassword },
    opsApi: { url: "http://127.0.0.1:15406", token: SECRETS.opsToken },
    backup: {
      type: "s3",
      endpoint: "localhost",
      port: 15405,
      region: "us-east-1",
      bucket: "tradeops-backups",
      prefix: "/pgbackrest",
      uriStyle: "path",
      accessKeyId: SECRETS.s3Key,
      secretAccessKey: SECRETS.s3Secret,
      stanza: "trading",
    },
    ...overrides,
  };
}
