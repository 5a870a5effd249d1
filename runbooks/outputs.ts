/**
 * Where a command's stack outputs come from: `--outputs FILE`, the sandbox's outputs file for
 * `--stack sandbox`, or `pulumi stack output` for any other stack. Whatever the source, the
 * result is parsed with the outputs contract; a bad or missing value is a usage error naming the key.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { StackOutputs, describeIssue } from "../contract/outputs.ts";
// The sandbox is the embedded default stack: its location is the one thing read from infra.
import { defaultSandboxDir, repoRoot, tradeopsHome } from "../infra/sandbox/layout.ts";
import { UsageError } from "./engine/errors.ts";
import { pulumiStackOutputs } from "./pulumi.ts";

export interface OutputsSource {
  stack: string;
  outputsFile?: string;
}

export async function loadOutputs(source: OutputsSource): Promise<StackOutputs> {
  if (source.outputsFile) return parseOutputs(readOutputsFile(source.outputsFile), source.outputsFile);
  if (source.stack === "sandbox") {
    const file = join(defaultSandboxDir(), "outputs.json");
    return parseOutputs(readOutputsFile(file, "run `tradeops sandbox up` first"), file);
  }
  return parseOutputs(await pulumiStackOutputs(source.stack, repoRoot), `stack ${source.stack}`);
}

/** Lock and audit log: inside the sandbox's own dir, else per stack under $TRADEOPS_HOME. */
export function stateDirFor(outputs: StackOutputs): string {
  return outputs.platform.kind === "sandbox" ? outputs.platform.dir : join(tradeopsHome(), "stacks", outputs.stack);
}

function readOutputsFile(file: string, hint = "check the path"): unknown {
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UsageError(`cannot read outputs file ${file} (${code === "ENOENT" ? "not found" : code}); ${hint}`);
  }
  try {
    return JSON.parse(text);
  } catch {
    throw new UsageError(`outputs file ${file} is not valid JSON`);
  }
}

export function parseOutputs(raw: unknown, origin: string): StackOutputs {
  const parsed = StackOutputs.safeParse(raw);
  if (!parsed.success) throw new UsageError(`outputs of ${origin} break the contract: ${describeIssue(parsed.error)}`);
  return parsed.data;
}
