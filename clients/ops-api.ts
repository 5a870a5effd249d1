/**
 * Calls to the trading bot's ops API (contract/ops-api.ts is its protocol): bearer token, a
 * deadline, and answers parsed with the protocol's own schemas.
 */
import type { z } from "zod";
import { describeIssue } from "../contract/outputs.ts";
import { NoAnswer, type CallOptions } from "./deadline.ts";

export interface OpsApiTarget {
  url: string;
  token: string;
}

export const OPS_API_TIMEOUT_MS = 3_000;

export interface OpsApiAnswer<T> {
  status: number;
  body: T;
}

/** One request; `body` is the parsed JSON answer (or its text when it is not JSON). */
export async function opsApiRequest(
  api: OpsApiTarget,
  path: string,
  init: CallOptions & { method?: "GET" | "POST"; body?: unknown } = {},
): Promise<OpsApiAnswer<unknown>> {
  const timeoutMs = init.timeoutMs ?? OPS_API_TIMEOUT_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  try {
    const response = await fetch(new URL(path, api.url), {
      method: init.method ?? "GET",
      headers: {
        authorization: `Bearer ${api.token}`,
        ...(init.body === undefined ? {} : { "content-type": "application/json" }),
      },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal,
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON (e.g. /metrics): keep the text.
    }
    return { status: response.status, body };
  } catch (error) {
    if (deadline.aborted && !init.signal?.aborted) throw new NoAnswer(timeoutMs);
    if (init.signal?.aborted) throw init.signal.reason;
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new Error(`ops API does not answer at ${new URL(path, api.url).href}${cause ? ` (${cause})` : ""}`);
  }
}

/** The answer's body parsed with the protocol schema for `status`; anything else is one line naming the endpoint. */
export function parseAnswer<T>(path: string, answer: OpsApiAnswer<unknown>, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(answer.body);
  if (!parsed.success) throw new Error(`ops API ${path} answered ${answer.status} with an unexpected body (${describeIssue(parsed.error)})`);
  return parsed.data;
}
