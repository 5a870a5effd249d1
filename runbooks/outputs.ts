/**
 * Where a command's stack outputs come from: `--outputs FILE`, the sandbox's outputs file for
 * `--stack sandbox`, or `pulumi stack output` for any other stack. Whatever the source, the
 * result is parsed with the outputs contract; a bad or missing value is a usage error naming the key.
 */
import { readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { StackOutputs, describeIssue } from "../contract/outputs.ts";
import { UsageError } from "./engine/errors.ts";
import { pulumiStackOutputs } from "./pulumi.ts";

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Local state of tradeops on this machine: the sandbox, locks and audit logs of other stacks. */
export function tradeopsHome(): string {
  return resolve(process.env.TRADEOPS_HOME ?? join(repoRoot, ".tradeops"));
}

export interface OutputsSource {
  stack: string;
  outputsFile?: string;
  /** Sandbox dir for `--stack sandbox` (default `$TRADEOPS_HOME/sandbox`). */
  sandboxDir?: string;
}

export async function loadOutputs(source: OutputsSource): Promise<StackOutputs> {
  if (source.outputsFile) return parseOutputs(readOutputsFile(source.outputsFile), source.outputsFile);
  if (source.stack === "sandbox") {
    const file = join(source.sandboxDir ?? join(tradeopsHome(), "sandbox"), "outputs.json");
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
