import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { UsageError } from "../../runbooks/engine/errors.ts";
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
