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
