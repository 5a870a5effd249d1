/**
 * Where a command's stack outputs come from: `--outputs FILE`, the active sandbox's outputs file
 * for `--stack sandbox`, or `pulumi stack output` for any other stack. Whatever the source, the
 * result is parsed with the outputs contract; a bad or missing value is a usage error naming the key.
 *
 * For the DR runbooks (`drSite`), a stack whose `dr` block names the stack that declares the DR site
 * (`dr.stack`, prod's) and has no `database` gets the rest of that block from that stack's outputs,
 * read the same way. Only for them: a dr stack that cannot be read must not stop a `failover`.
 */
import { join } from "node:path";
import { JsonFileError, readJsonFile } from "../clients/json-file.ts";
import { projectRoot } from "../contract/home.ts";
import { StackOutputs, describeIssue, type DrDns, type DrSite } from "../contract/outputs.ts";
import { UsageError, oneLine } from "./engine/errors.ts";
import type { OutputsSource } from "./engine/runbook.ts";
import { pulumiStackOutputs } from "./pulumi.ts";
import { sandboxDir } from "./state.ts";

export async function loadOutputs(source: OutputsSource, signal?: AbortSignal, options: { drSite?: boolean } = {}): Promise<StackOutputs> {
  if (source.outputsFile) return parseOutputs(readOutputsFile(source.outputsFile), source.outputsFile);
  if (source.stack === "sandbox") {
    const file = join(sandboxDir(), "outputs.json");
    return parseOutputs(readOutputsFile(file, "run `tradeops sandbox up` first"), file);
  }
  const outputs = parseOutputs(await pulumiStackOutputs(source.stack, projectRoot, signal), `stack ${source.stack}`);
  return options.drSite ? withDrSite(outputs, source.stack, signal) : outputs;
}

/**
 * Completes a `dr` block that only names its stack (prod's) from that stack's `dr` block. An outputs
 * file has no second source, so this runs for Pulumi stacks only; one level deep.
 */
export async function withDrSite(outputs: StackOutputs, stack: string, signal?: AbortSignal): Promise<StackOutputs> {
  const site = outputs.dr;
  if (!site?.stack || site.database) return outputs;
  const drStack = site.stack;
  const drOutputs = await pulumiStackOutputs(drStack, projectRoot, signal)
    .then((raw) => parseOutputs(raw, `stack ${drStack}`))
    .catch((error: unknown) => {
      if (signal?.aborted) throw error;
      throw new UsageError(`cannot read the DR site from stack ${drStack} (dr.stack of stack ${stack}): ${oneLine(error)}`);
    });
  if (!drOutputs.dr) throw new UsageError(`stack ${drStack} (dr.stack of stack ${stack}) exports no dr block: is it the stack that declares the DR site?`);
  return { ...outputs, dr: mergeDrSite(site, drOutputs.dr) };
}

/**
 * The DR stack's fields win, except the naming stack's `name`, `region` and `stack`. The DNS pair is
 * merged field by field, each from the stack that owns it: the PRIMARY half (its target, health
 * check and TTL) is the naming stack's, the SECONDARY target the DR stack's; either fills the other's gaps.
 */
export function mergeDrSite(named: DrSite, declared: DrSite): DrSite {
  const dns = mergeDns(named.dns, declared.dns);
  return { ...declared, name: named.name, region: named.region, stack: named.stack, ...(dns ? { dns } : {}) };
}

function mergeDns(primarySide: DrDns | undefined, drSide: DrDns | undefined): DrDns | undefined {
  if (!primarySide || !drSide) return primarySide ?? drSide;
  const merged: DrDns = { ...drSide, ...defined(primarySide) };
  if (drSide.drTarget) merged.drTarget = drSide.drTarget;
  return merged;
}

/** The object without its undefined values, so a spread keeps what the other side knows. */
function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
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
