/**
 * The sandbox's own JSON files (secrets.json, sandbox.json): read (clients/json-file.ts) and
 * checked with their schemas in one place, so a damaged one is reported the same way everywhere —
 * naming the file, the key or the line where it is broken, and what to do about it — and never
 * quoting its content (secrets.json holds every password of the sandbox).
 */
import type { z } from "zod";
import { JsonFileError, readJsonFile } from "../clients/json-file.ts";
import { describeIssue } from "../contract/outputs.ts";

/** A sandbox state file that exists but cannot be used. The message names the file and the remedy. */
export class SandboxStateFileError extends Error {
  override name = "SandboxStateFileError";
  readonly file: string;
  readonly reason: string;
  readonly remedy: string;
  constructor(file: string, reason: string, remedy: string) {
    super(`${file} ${reason}; ${remedy}`);
    this.file = file;
    this.reason = reason;
    this.remedy = remedy;
  }
}

/** The parsed file, or undefined when it does not exist (or its dir is not a directory). */
export function readStateFile<T>(file: string, schema: z.ZodType<T>, remedy: string): T | undefined {
  let json: unknown;
  try {
    json = readJsonFile(file);
  } catch (error) {
    if (!(error instanceof JsonFileError)) throw error;
    if (error.kind === "missing") return undefined;
    // "is not valid JSON: line 2, column 17, at pgPassword" → "is damaged (not valid JSON: …)".
    throw new SandboxStateFileError(file, error.kind === "not-json" ? `is damaged (${error.reason.replace(/^is /, "")})` : error.reason, remedy);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new SandboxStateFileError(file, `is damaged (${describeIssue(parsed.error)})`, remedy);
  return parsed.data;
}
