/**
 * Redis connections for runbooks and the sandbox: fail fast instead of queueing or reconnecting
 * forever, under a deadline (clients/deadline.ts), always closed.
 */
import type { Redis } from "ioredis";
import { withDeadline, type CallOptions } from "./deadline.ts";

export interface RedisTarget {
  host: string;
  port: number;
  password?: string;
}

export const REDIS_CONNECT_TIMEOUT_MS = 3_000;
/** The whole use (connect and every command) unless the caller says otherwise. */
export const REDIS_SESSION_TIMEOUT_MS = 10_000;

export interface RedisCallOptions extends CallOptions {
  /** @default 3 s, never more than the deadline */
  connectTimeoutMs?: number;
}

/** Connects to `target`, runs `use`, always disconnects, all within the deadline. */
export async function withRedis<T>(target: RedisTarget, use: (redis: Redis) => Promise<T>, options: RedisCallOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? REDIS_SESSION_TIMEOUT_MS;
  // Loaded on first use: `tradeops --help` and plans never pay for the client.
  const { Redis: Client } = await import("ioredis");
  // A hung server accepts the TCP connection and never answers AUTH: connecting gets its own deadline.
  const connectTimeoutMs = Math.min(options.connectTimeoutMs ?? REDIS_CONNECT_TIMEOUT_MS, timeoutMs);
  const redis = new Client({
    host: target.host,
    port: target.port,
    password: target.password,
    lazyConnect: true,
    connectTimeout: connectTimeoutMs,
    commandTimeout: timeoutMs,
    maxRetriesPerRequest: 0,
    enableOfflineQueue: false,
    retryStrategy: () => null,
    // disconnect() half-closes the socket; a hung server never answers that, so destroy it soon.
    disconnectTimeout: 200,
  });
  redis.on("error", () => {});
  const destroy = () => (redis as unknown as { stream?: { destroy(): void } }).stream?.destroy();
  try {
    return await withDeadline(
      { ...options, timeoutMs },
      async (signal) => {
        const connect = () =>
          redis.connect().catch((error: unknown) => {
            throw new Error(`Redis does not answer on ${target.host}:${target.port} (${describe(error)})`);
          });
        await withDeadline({ signal, timeoutMs: connectTimeoutMs }, connect, destroy);
        return use(redis);
      },
      destroy,
    );
  } finally {
    redis.disconnect();
    destroy();
  }
}

/** ioredis says "Connection is closed." for a refused connection: name the cause instead. */
function describe(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code) return code;
  const message = error instanceof Error ? error.message : String(error);
  return message === "Connection is closed." ? "connection refused or closed" : message;
}
