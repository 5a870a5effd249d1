/**
 * Calls to the trading bot's ops API (contract/ops-api.ts is its protocol): bearer token, a
 * deadline, and answers parsed with the protocol's own schemas.
 */
import type { z } from "zod";
import { describeIssue } from "../contract/outputs.ts";
import { NoAnswer, type CallOptions } from "./deadline.ts";
import { httpRequest } from "./http.ts";

export interface OpsApiTarget {
  url: string;
  token: string;
}

export const OPS_API_TIMEOUT_MS = 3_000;

export interface OpsApiAnswer<T> {
  status: number;
  body: T;
}

/** One request with the bearer token; `body` is the parsed JSON answer (or its text when it is not JSON). */
export async function opsApiRequest(
  api: OpsApiTarget,
  path: string,
  init: CallOptions & { method?: "GET" | "POST"; body?: unknown } = {},
): Promise<OpsApiAnswer<unknown>> {
  const url = new URL(path, api.url);
  try {
    return await httpRequest(url, { ...init, timeoutMs: init.timeoutMs ?? OPS_API_TIMEOUT_MS, headers: { authorization: `Bearer ${api.token}` } });
  } catch (error) {
    if (error instanceof NoAnswer || init.signal?.aborted) throw error;
    throw new Error(`ops API: ${(error as Error).message}`);
  }
}

/** The answer's body parsed with the protocol schema for `status`; anything else is one line naming the endpoint. */
export function parseAnswer<T>(path: string, answer: OpsApiAnswer<unknown>, schema: z.ZodType<T>): T {
  const parsed = schema.safeParse(answer.body);
  if (!parsed.success) throw new Error(`ops API ${path} answered ${answer.status} with an unexpected body (${describeIssue(parsed.error)})`);
  return parsed.data;
}
