/**
 * HTTP requests under a deadline (the ops API, Prometheus, Alertmanager): the earlier of the
 * call's own cap and the caller's signal; a peer that does not answer is `NoAnswer`, one that
 * refuses names its address and the cause.
 */
import { NoAnswer, type CallOptions } from "./deadline.ts";

export const HTTP_TIMEOUT_MS = 3_000;

export interface HttpAnswer {
  status: number;
  /** The parsed JSON answer, or its text when it is not JSON (/metrics). */
  body: unknown;
}

export async function httpRequest(
  url: URL,
  init: CallOptions & { method?: "GET" | "POST"; headers?: Record<string, string>; body?: unknown } = {},
): Promise<HttpAnswer> {
  const timeoutMs = init.timeoutMs ?? HTTP_TIMEOUT_MS;
  const deadline = AbortSignal.timeout(timeoutMs);
  const signal = init.signal ? AbortSignal.any([init.signal, deadline]) : deadline;
  try {
    const response = await fetch(url, {
      method: init.method ?? "GET",
      headers: { ...init.headers, ...(init.body === undefined ? {} : { "content-type": "application/json" }) },
      body: init.body === undefined ? undefined : JSON.stringify(init.body),
      signal,
    });
    const text = await response.text();
    let body: unknown = text;
    try {
      body = JSON.parse(text);
    } catch {
      // Not JSON: keep the text.
    }
    return { status: response.status, body };
  } catch (error) {
    if (init.signal?.aborted) throw init.signal.reason;
    if (deadline.aborted) throw new NoAnswer(timeoutMs);
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    throw new Error(`cannot reach ${url.href}${cause ? ` (${cause})` : ""}`);
  }
}
