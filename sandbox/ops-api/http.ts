/**
 * HTTP plumbing shared by the routes: errors that map to status codes, JSON bodies, bearer auth.
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { IncomingMessage } from "node:http";
import type { z } from "zod";
import { describeIssue } from "../../contract/outputs.ts";
import { errorMessage } from "./log.ts";

/** An answer other than success; `body` adds fields next to `error` (e.g. the current status on a 409). */
export class HttpError extends Error {
  readonly status: number;
  readonly body: Record<string, unknown>;
  constructor(status: number, message: string, body: Record<string, unknown> = {}) {
    super(message);
    this.status = status;
    this.body = body;
  }
}

/** PostgreSQL or Redis cannot serve the request right now: the route answers 503, naming which. */
export class DependencyUnavailable extends Error {
  readonly dependency: "database" | "redis";
  constructor(dependency: "database" | "redis", cause: unknown) {
    super(`${dependency} unavailable: ${errorMessage(cause)}`);
    this.dependency = dependency;
  }
}

// Request bodies here are a reason or a code; anything bigger is a mistake or an attack.
const MAX_BODY_BYTES = 16 * 1024;

/** Reads the body as JSON whatever the Content-Type (the seed's `curl -d` sends none), then validates it. */
export async function readBody<T extends z.ZodType>(request: IncomingMessage, schema: T): Promise<z.output<T>> {
  const text = await readText(request);
  let json: unknown = {};
  if (text.trim() !== "") {
    try {
      json = JSON.parse(text);
    } catch {
      throw new HttpError(400, "body is not valid JSON");
    }
  }
  const parsed = schema.safeParse(json);
  if (!parsed.success) throw new HttpError(400, describeIssue(parsed.error));
  return parsed.data;
}

/** Reads to the end even past the limit: stopping early would destroy the socket before the 413 is sent. */
function readText(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size <= MAX_BODY_BYTES) chunks.push(chunk);
    });
    request.on("end", () => {
      if (size > MAX_BODY_BYTES) reject(new HttpError(413, `body exceeds ${MAX_BODY_BYTES} bytes`));
      else resolve(Buffer.concat(chunks).toString("utf8"));
    });
    // After `end` this is a no-op; before it, the client went away mid-body.
    request.on("close", () => reject(new HttpError(400, "request body incomplete")));
    request.on("error", reject);
  });
}

/** Compares digests so neither the length nor the content of the token leaks through timing. */
export function secretMatches(given: string, expected: string): boolean {
  const digest = (value: string) => createHash("sha256").update(value).digest();
  return timingSafeEqual(digest(given), digest(expected));
}

export function hasBearerToken(request: IncomingMessage, token: string): boolean {
  const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? "");
  return match !== null && secretMatches(match[1], token);
}
