/**
 * Connections the runbooks open, built only from the stack outputs, each with short timeouts so a
 * dead component costs seconds, not minutes, and never hangs a 3 a.m. run.
 */
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import { S3Client } from "@aws-sdk/client-s3";
import { Redis } from "ioredis";
import pg from "pg";
import type { BackupRepository, StackOutputs } from "../contract/outputs.ts";

export const CONNECT_TIMEOUT_MS = 3000;

type Endpoint = { host: string; port: number };

/** Opens a session to one PostgreSQL endpoint, runs `use`, always closes it. */
export async function withPg<T>(
  outputs: StackOutputs,
  endpoint: Endpoint,
  use: (client: pg.Client) => Promise<T>,
  options: { database?: string; statementTimeoutMs?: number } = {},
): Promise<T> {
  const client = new pg.Client({
    host: endpoint.host,
    port: endpoint.port,
    user: outputs.database.user,
    password: outputs.database.password,
    database: options.database ?? outputs.database.name,
    application_name: "tradeops",
    connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
    statement_timeout: options.statementTimeoutMs ?? 10_000,
  });
  // A server dying mid-session emits 'error' on the client; the pending query rejects anyway.
  client.on("error", () => {});
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end().catch(() => {});
  }
}

/** Opens a Redis connection that fails fast instead of queueing or reconnecting forever. */
export async function withRedis<T>(
  outputs: StackOutputs,
  use: (redis: Redis) => Promise<T>,
  options: { connectTimeoutMs?: number; commandTimeoutMs?: number } = {},
): Promise<T> {
  const redis = new Redis({
    host: outputs.redis.host,
    port: outputs.redis.port,
    password: outputs.redis.password,
    lazyConnect: true,
    connectTimeout: options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    commandTimeout: options.commandTimeoutMs ?? CONNECT_TIMEOUT_MS,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    return await use(redis);
  } finally {
    redis.disconnect();
  }
}

export function s3Client(repo: BackupRepository): S3Client {
  const httpsAgent = new Agent({ ca: repo.caFile ? readFileSync(repo.caFile) : undefined, keepAlive: false });
  return new S3Client({
    region: repo.region,
    endpoint: `https://${repo.endpoint}:${repo.port}`,
    forcePathStyle: repo.uriStyle === "path",
    credentials: { accessKeyId: repo.accessKeyId, secretAccessKey: repo.secretAccessKey },
    requestHandler: { httpsAgent, connectionTimeout: CONNECT_TIMEOUT_MS, requestTimeout: 10_000 },
    maxAttempts: 1,
  });
}

/** Calls the trading bot's ops API with its bearer token; returns status and parsed JSON body. */
export async function opsApi(
  outputs: StackOutputs,
  path: string,
  init: { method?: "GET" | "POST"; body?: unknown; timeoutMs?: number } = {},
): Promise<{ status: number; body: unknown }> {
  const response = await fetch(new URL(path, outputs.opsApi.url), {
    method: init.method ?? "GET",
    headers: {
      authorization: `Bearer ${outputs.opsApi.token}`,
      ...(init.body === undefined ? {} : { "content-type": "application/json" }),
    },
    body: init.body === undefined ? undefined : JSON.stringify(init.body),
    signal: AbortSignal.timeout(init.timeoutMs ?? CONNECT_TIMEOUT_MS),
  });
  const text = await response.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON (e.g. /metrics): keep the text.
  }
  return { status: response.status, body };
}
