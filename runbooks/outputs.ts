/**
 * Where a command's stack outputs come from: `--outputs FILE`, the active sandbox's outputs file
 * for `--stack sandbox`, or `pulumi stack output` for any other stack. Whatever the source, the
 * result is parsed with the outputs contract; a bad or missing value is a usage error naming the key.
 */
import { join } from "node:path";
import { JsonFileError, readJsonFile } from "../clients/json-file.ts";
import { projectRoot } from "../contract/home.ts";
import { StackOutputs, describeIssue } from "../contract/outputs.ts";
import { UsageError } from "./engine/errors.ts";
import type { OutputsSource } from "./engine/runbook.ts";
import { pulumiStackOutputs } from "./pulumi.ts";
import { sandboxDir } from "./state.ts";

export async function loadOutputs(source: OutputsSource, signal?: AbortSignal): Promise<StackOutputs> {
  if (source.outputsFile) return parseOutputs(readOutputsFile(source.outputsFile), source.outputsFile);
  if (source.stack === "sandbox") {
    const file = join(sandboxDir(), "outputs.json");
    return parseOutputs(readOutputsFile(file, "run `tradeops sandbox up` first"), file);
  }
  return parseOutputs(await pulumiStackOutputs(source.stack, projectRoot, signal), `stack ${source.stack}`);
}

function readOutputsFile(file: string, hint = "check the path"): unknown {
  try {
    return readJsonFile(file);
  } catch (error) {
    if (!(error instanceof JsonFileError)) throw error;
    if (error.kind === "missing") throw new UsageError(`cannot read outputs file ${file} (not found); ${hint}`);
    throw new UsageError(`outputs file ${file} ${error.reason}`);
  }
}

export function parseOutputs(raw: unknown, origin: string): StackOutputs {
  const parsed = StackOutputs.safeParse(raw);
  if (!parsed.success) throw new UsageError(`outputs of ${origin} break the contract: ${describeIssue(parsed.error)}`);
  return parsed.data;
}
