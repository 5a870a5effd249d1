/**
 * The sandbox's own JSON files (secrets.json, sandbox.json): read and checked in one place, so a
 * damaged one is reported the same way everywhere — naming the file, why it is unusable, and what
 * to do about it — instead of a bare `JSON.parse` message that names nothing.
 */
import { readFileSync } from "node:fs";
import type { z } from "zod";
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
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return undefined;
    throw new SandboxStateFileError(file, `cannot be read (${code ?? (error as Error).message})`, remedy);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new SandboxStateFileError(file, `is damaged (not valid JSON: ${(error as Error).message})`, remedy);
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new SandboxStateFileError(file, `is damaged (${describeIssue(parsed.error)})`, remedy);
  return parsed.data;
}
