/**
 * What the trading-control runbooks ask of the bot's ops API (contract/ops-api.ts): one call, its
 * answer parsed with the protocol schema of the status it came with. A status the caller did not
 * expect becomes a step failure quoting the API's own `error` line, so an operator reads why.
 */
import { z } from "zod";
import { ErrorBody } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { opsApiRequest, parseAnswer, type OpsApiAnswer } from "../clients/ops-api.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";

export type Expected<T> = Partial<Record<number, z.ZodType<T>>>;

/** The API did not answer (refused, hung, or a 5xx): the kill switch's fallbacks start here. */
export class ApiUnavailable extends StepFailure {
  override name = "ApiUnavailable";
}

/** The answer to `path`, parsed with the schema of its status; any other status throws (403/409 a refusal). */
export async function callOpsApi<T>(
  outputs: StackOutputs,
  path: string,
  expected: Expected<T>,
  ctx: Pick<StepContext, "signal">,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  let answer: OpsApiAnswer<unknown>;
  try {
    answer = await opsApiRequest(outputs.opsApi, path, { method: body === undefined ? "GET" : "POST", body, signal: ctx.signal });
  } catch (error) {
    if (ctx.signal.aborted) throw error;
    throw new ApiUnavailable(`the ops API at ${outputs.opsApi.url} does not answer (${oneLine(error)})`, "run `tradeops health`; start the app, or use the fallbacks of `tradeops kill-switch on`");
  }
  const schema = expected[answer.status];
  if (schema) return { status: answer.status, body: parseAnswer(path, answer, schema) };
  const why = ErrorBody.safeParse(answer.body).data?.error ?? `status ${answer.status}`;
  if (answer.status >= 500) throw new ApiUnavailable(`the ops API answered ${answer.status} to ${path}: ${why}`, "run `tradeops health`: the app or one of its dependencies is down");
  if (answer.status === 403 || answer.status === 409) throw new Refusal(`the ops API refused ${path}: ${why}`);
  throw new StepFailure(`the ops API answered ${answer.status} to ${path}: ${why}`, "check the ops API's token in the outputs and the app's log");
}

/**
 * A read-only command that is one GET on the ops API (`trading status`, `kill-switch status`…):
 * the answer, parsed with `schema`, is recorded under `fact` and rendered by `text`.
 */
export function apiReadingRunbook<T>(spec: {
  command: string[];
  summary: string;
  features: string[];
  step: string;
  path: string;
  schema: z.ZodType<T>;
  fact: string;
  /** The answer as the report shows it (`json` defaults to the answer itself). */
  report(answer: T): { text: string; json?: unknown };
}) {
  return defineRunbook({
    command: spec.command,
    name: spec.command.join("-"),
    summary: spec.summary,
    features: spec.features,
    mutates: false,
    args: z.object({}),
    steps: (_args, { outputs }) => [
      { name: spec.step, plan: `GET ${spec.path}`, readOnly: true, action: async (ctx) => ctx.record(spec.fact, (await callOpsApi(outputs, spec.path, { 200: spec.schema }, ctx)).body) },
    ],
    report: (facts) => {
      const answer = facts[spec.fact] as T | undefined;
      if (answer === undefined) return { text: `${spec.command.join(" ")}: the API did not answer`, json: null };
      const { text, json } = spec.report(answer);
      return { text, json: json ?? answer };
    },
  });
}
