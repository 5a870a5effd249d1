/**
 * The Pulumi program of every tradeops stack. The stack's `tradeops:kind` (or its name: dev, prod,
 * dr) picks what to declare; each returns the outputs contract, so `pulumi stack output --json
 * --show-secrets` prints a document that `StackOutputs` parses.
 *
 * A default-exported function: Pulumi runs it and takes the object it returns as the stack's
 * outputs (one per contract key: contractVersion, stack, platform, database, …). Config is read
 * inside it, so a bad key fails `pulumi up` with one line (a RunError) before anything is declared.
 */
import { loadStackConfig } from "./config.ts";
import { devStack } from "./stacks/dev.ts";
import { drStack } from "./stacks/dr.ts";
import { prodStack } from "./stacks/prod.ts";
import type { StackExports } from "./stacks/exports.ts";

export default function tradeopsStack(): StackExports {
  const config = loadStackConfig();
  switch (config.kind) {
    case "dev":
      return devStack(config);
    case "prod":
      return prodStack(config);
    case "dr":
      return drStack(config);
  }
}
