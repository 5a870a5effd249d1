import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { StepFailure, UsageError } from "../../runbooks/engine/errors.ts";
import { pulumiConfigGet, pulumiConfigSet } from "../../runbooks/pulumi.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

// Pulumi cannot be installed here: a stand-in prints what `pulumi stack output --json --show-secrets` prints.
const dir = mkdtempSync(join(tmpdir(), "tradeops-pulumi-"));
function standIn(script: string): string {
  const bin = join(dir, `pulumi-${Math.random().toString(36).slice(2)}`);
  writeFileSync(bin, `#!/bin/sh\n${script}\n`);
  chmodSync(bin, 0o755);
  return bin;
}
afterEach(() => delete process.env.PULUMI_BIN);
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("pulumi adapter", () => {
  it("reads a stack's outputs with `pulumi stack output --json --show-secrets --stack NAME`", async () => {
    const argsFile = join(dir, "args");
    const doc = join(dir, "prod.json");
    writeFileSync(doc, JSON.stringify(sampleOutputs({ stack: "prod" })));
    process.env.PULUMI_BIN = standIn(`echo "$@" > ${argsFile}; cat ${doc}`);
    const outputs = await loadOutputs({ stack: "prod" });
    expect(outputs.stack).toBe("prod");
    expect(readFileSync(argsFile, "utf8").trim()).toBe("stack output --json --show-secrets --stack prod");
  });

  it("a missing pulumi CLI is a usage error that points to --outputs", async () => {
    process.env.PULUMI_BIN = join(dir, "no-such-pulumi");
    await expect(loadOutputs({ stack: "prod" })).rejects.toThrow(
      new UsageError("the pulumi CLI is not installed here (needed to read stack 'prod'); install it, or pass --outputs FILE"),
    );
  });

  it("a failing pulumi command is reported with its first error line", async () => {
    process.env.PULUMI_BIN = standIn(`echo "error: no stack named 'prdo' found" >&2; exit 255`);
    await expect(loadOutputs({ stack: "prdo" })).rejects.toThrow("pulumi stack output --stack prdo failed: error: no stack named 'prdo' found");
  });

  it("outputs that break the contract name the key", async () => {
    process.env.PULUMI_BIN = standIn(`echo '{"contractVersion": 1}'`);
    await expect(loadOutputs({ stack: "dev" })).rejects.toThrow(/^outputs of stack dev break the contract: stack: .*\(\+\d+ more\)$/);
  });
});

describe("I5: a stack that names the stack declaring its DR site", () => {
  const DR_STACK = "organization/tradeops/dr";
  const PROD_LB = "prod-lb.elb.eu-west-1.amazonaws.com";
  const DR_LB = "dr-lb.elb.eu-central-1.amazonaws.com";
  const drNode = { name: "timescale-0", host: "timescale-0.timescale-headless.tradeops-dr.svc.cluster.local", port: 5432, role: "standby" as const, dataDir: "/home/postgres/pgdata/data" };
  // As the prod and dr stacks export them (infra/stacks/prod.ts, dr.ts); dr's copy of prod's half is older.
  const prodDoc = sampleOutputs({
    stack: "prod",
    dr: { name: "dr", region: "eu-central-1", stack: DR_STACK, dns: { zoneId: "Z0123456789ABC", recordName: "api.trading.example.com", healthCheckId: "hc-prod-now", primaryTarget: PROD_LB, ttl: 60 } },
  });
  const drDoc = sampleOutputs({
    stack: "dr",
    dr: {
      name: "dr-as-dr-sees-it",
      region: "eu-central-1",
      opsApi: { url: "https://dr-api.trading.example.com", token: "dr-ops-Token-1234" },
      database: drNode,
      traffic: { host: "timescale-rw.tradeops-dr.svc.cluster.local", port: 5432 },
      app: { kind: "kubernetes", namespace: "tradeops-dr", context: "dr-cluster", deployments: [{ name: "api", replicas: 2 }, { name: "worker", replicas: 1 }] },
      maxLagSeconds: 120,
      dns: { zoneId: "Z0123456789ABC", recordName: "api.trading.example.com", healthCheckId: "hc-prod-old", drTarget: DR_LB, ttl: 60 },
    },
  });

  /** A pulumi that prints prod's and dr's outputs by `--stack` ($6), and logs every stack it was asked for. */
  function twoStacks(dr: string): { calls: () => string[] } {
    const log = join(dir, `calls-${Math.random().toString(36).slice(2)}`);
    const prodFile = join(dir, "prod-named.json");
    writeFileSync(prodFile, JSON.stringify(prodDoc));
    writeFileSync(log, "");
    process.env.PULUMI_BIN = standIn(`echo "$6" >> ${log}
case "$6" in prod) cat ${prodFile} ;; ${DR_STACK}) ${dr} ;; *) echo "error: no stack named '$6' found" >&2; exit 255 ;; esac`);
    return { calls: () => readFileSync(log, "utf8").trim().split("\n") };
  }

  it("I5: loads the dr stack through the same adapter and completes the dr block from it: its database, endpoint, app and lag limit, prod's name and region", async () => {
    const drFile = join(dir, "dr-declared.json");
    writeFileSync(drFile, JSON.stringify(drDoc));
    const { calls } = twoStacks(`cat ${drFile}`);
    const outputs = await loadOutputs({ stack: "prod" }, undefined, { drSite: true });
    expect(calls()).toEqual(["prod", DR_STACK]);
    expect(outputs.stack).toBe("prod");
    expect(outputs.database.primary.name).toBe("pg-a");
    expect(outputs.dr).toEqual({
      name: "dr",
      region: "eu-central-1",
      stack: DR_STACK,
      opsApi: { url: "https://dr-api.trading.example.com", token: "dr-ops-Token-1234" },
      database: drNode,
      traffic: { host: "timescale-rw.tradeops-dr.svc.cluster.local", port: 5432 },
      app: { kind: "kubernetes", namespace: "tradeops-dr", context: "dr-cluster", deployments: [{ name: "api", replicas: 2 }, { name: "worker", replicas: 1 }] },
      maxLagSeconds: 120,
      // Field by field: prod's PRIMARY half (target, current health check, TTL), dr's SECONDARY target.
      dns: { zoneId: "Z0123456789ABC", recordName: "api.trading.example.com", healthCheckId: "hc-prod-now", primaryTarget: PROD_LB, drTarget: DR_LB, ttl: 60 },
    });
  });

  it("I5: a dr stack that cannot be read is a usage error naming it and the cause", async () => {
    twoStacks(`echo "error: could not reach the backend" >&2; exit 255`);
    const error = await loadOutputs({ stack: "prod" }, undefined, { drSite: true }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(UsageError);
    expect((error as Error).message).toBe(
      `cannot read the DR site from stack ${DR_STACK} (dr.stack of stack prod): pulumi stack output --stack ${DR_STACK} failed: error: could not reach the backend`,
    );
  });

  it("I5: other runbooks read prod alone: a dr stack that cannot be read does not stop them (a failover must not depend on the DR stack)", async () => {
    const { calls } = twoStacks(`echo "error: could not reach the backend" >&2; exit 255`);
    const outputs = await loadOutputs({ stack: "prod" });
    expect(calls()).toEqual(["prod"]);
    expect(outputs.dr?.database).toBeUndefined();
  });

  it("I5: a dr stack whose outputs break the contract, or that declares no DR site, is a usage error naming it", async () => {
    twoStacks(`echo '{"contractVersion": 1}'`);
    await expect(loadOutputs({ stack: "prod" }, undefined, { drSite: true })).rejects.toThrow(new RegExp(`^cannot read the DR site from stack ${DR_STACK} \\(dr\\.stack of stack prod\\): outputs of stack ${DR_STACK} break the contract: `));
    const noSite = join(dir, "dr-no-site.json");
    writeFileSync(noSite, JSON.stringify({ ...drDoc, dr: undefined }));
    twoStacks(`cat ${noSite}`);
    await expect(loadOutputs({ stack: "prod" }, undefined, { drSite: true })).rejects.toThrow(new UsageError(`stack ${DR_STACK} (dr.stack of stack prod) exports no dr block: is it the stack that declares the DR site?`));
  });

  it("I5: a dr block that already has its database (the dr stack's own, the sandbox's) is taken as it is, with no second call", async () => {
    const drFile = join(dir, "dr-self.json");
    writeFileSync(drFile, JSON.stringify({ ...drDoc, stack: "dr", dr: { ...drDoc.dr, stack: DR_STACK } }));
    const log = join(dir, "calls-self");
    process.env.PULUMI_BIN = standIn(`echo "$6" >> ${log}; cat ${drFile}`);
    const outputs = await loadOutputs({ stack: "dr" }, undefined, { drSite: true });
    expect(readFileSync(log, "utf8").trim()).toBe("dr");
    expect(outputs.dr?.name).toBe("dr-as-dr-sees-it");
  });

  it("I5: an outputs file has no second source: its dr block is left as it is, and pulumi is never run", async () => {
    const file = join(dir, "prod-outputs-file.json");
    writeFileSync(file, JSON.stringify(prodDoc));
    process.env.PULUMI_BIN = standIn(`echo "pulumi must not run" >&2; exit 99`);
    const outputs = await loadOutputs({ stack: "prod", outputsFile: file });
    expect(outputs.dr).toEqual({ ...prodDoc.dr, maxLagSeconds: 300 });
    expect(outputs.dr?.database).toBeUndefined();
  });
});

describe("#8: pulumi config through the adapter", () => {
  it("sets a key with `pulumi config set KEY VALUE --stack NAME` and says it did", async () => {
    const argsFile = join(dir, "set-args");
    process.env.PULUMI_BIN = standIn(`echo "$@" > ${argsFile}`);
    expect(await pulumiConfigSet("prod", "tradeops:primaryNode", "timescale-1", dir)).toEqual({ set: true, command: "pulumi config set tradeops:primaryNode timescale-1 --stack prod" });
    expect(readFileSync(argsFile, "utf8").trim()).toBe("config set tradeops:primaryNode timescale-1 --stack prod");
  });

  it("without the CLI it changes nothing and returns the exact command for the operator, quoted", async () => {
    process.env.PULUMI_BIN = join(dir, "no-such-pulumi");
    expect(await pulumiConfigSet("prod", "tradeops:note", "it's moved", dir)).toEqual({ set: false, command: "pulumi config set tradeops:note 'it'\\''s moved' --stack prod" });
  });

  it("a CLI that refuses is a step failure naming the command to run by hand", async () => {
    process.env.PULUMI_BIN = standIn(`echo "error: could not reach the backend" >&2; exit 255`);
    const error = await pulumiConfigSet("prod", "tradeops:primaryNode", "timescale-1", dir).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as StepFailure).message).toBe("pulumi config set tradeops:primaryNode timescale-1 --stack prod failed: error: could not reach the backend");
    expect((error as StepFailure).next).toContain("pulumi config set tradeops:primaryNode timescale-1 --stack prod");
  });

  it("reads a key with `pulumi config get`, undefined when the stack does not set it", async () => {
    process.env.PULUMI_BIN = standIn(`if [ "$3" = tradeops:primaryNode ]; then echo timescale-1; else echo "error: configuration key '$3' not found for stack 'prod'" >&2; exit 255; fi`);
    expect(await pulumiConfigGet("prod", "tradeops:primaryNode", dir)).toBe("timescale-1");
    expect(await pulumiConfigGet("prod", "tradeops:other", dir)).toBeUndefined();
  });

  it("keys, values and stack names are checked before anything runs", async () => {
    process.env.PULUMI_BIN = standIn(`exit 99`);
    await expect(pulumiConfigSet("prod", "primaryNode", "x", dir)).rejects.toThrow(new UsageError("pulumi config: key: a Pulumi config key like tradeops:primaryNode"));
    await expect(pulumiConfigSet("../prod", "tradeops:primaryNode", "x", dir)).rejects.toThrow(UsageError);
    await expect(pulumiConfigSet("prod", "tradeops:primaryNode", "a\nb", dir)).rejects.toThrow("pulumi config: value: one line");
  });
});
