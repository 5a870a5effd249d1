/**
 * The shape of `tradeops <runbook> --json`: one document on stdout, for scripts and CI gates.
 * The engine's RunResult is this document plus the report's text; runbooks with a structured
 * report narrow `report` (see health.ts).
 */
import { z } from "zod";

export const StepOutcome = z.enum(["ok", "skipped", "refused", "failed", "interrupted"]);

export const StepRecordSchema = z.object({
  index: z.number().int().positive(),
  name: z.string(),
  outcome: z.union([StepOutcome, z.literal("planned")]),
  durationMs: z.number().nonnegative(),
  error: z.string().optional(),
});
export type StepRecord = z.infer<typeof StepRecordSchema>;

export const RunDocument = z.object({
  runId: z.uuid(),
  runbook: z.string(),
  stack: z.string(),
  dryRun: z.boolean(),
  exitCode: z.union([z.literal(0), z.literal(1), z.literal(2), z.literal(3)]),
  steps: z.array(StepRecordSchema),
  facts: z.record(z.string(), z.unknown()),
  plan: z.array(z.string()).optional(),
  report: z.unknown(),
  failure: z.object({ step: z.string().optional(), message: z.string(), next: z.string().optional() }).optional(),
  auditFile: z.string(),
});
export type RunDocument = z.infer<typeof RunDocument>;

/** A finished run: the --json document, and the report as text for the terminal. */
export type RunResult = RunDocument & { reportText?: string };
