/**
 * Redis: the connection, the S7 work-queue lengths and the circuit breaker (I2, T2).
 *
 * The breaker is the hash `cb:state` with fields `state` (CLOSED | OPEN), `failures`, `opened_at`
 * (ISO time) and `reason`. HALF_OPEN is never stored: an OPEN breaker older than 30 s reads as
 * HALF_OPEN (T2's reset timeout), so every reader agrees without a timer. A missing hash is CLOSED.
 * Drills may write the hash directly (`HSET cb:state opened_at ...`) to skip the wait.
 */
import { Redis } from "ioredis";
import { DependencyUnavailable } from "./http.ts";
import { errorMessage, type Logger } from "./log.ts";
import {
  CIRCUIT_BREAKER_RESET_TIMEOUT_S,
  CircuitBreakerState,
  type CircuitBreakerStatus,
  WORK_QUEUES,
} from "../../contract/ops-api.ts";

const CIRCUIT_BREAKER_KEY = "cb:state";

/** Redis that fails fast while down and reconnects for ever, so the API recovers when Redis returns. */
export function connectRedis(redisUrl: string, log: Logger): Redis {
  const redis = new Redis(redisUrl, {
    connectTimeout: 1_000,
    commandTimeout: 1_000,
    // Z1: while disconnected, commands fail at once instead of queueing behind a reconnect.
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    retryStrategy: (attempt) => Math.min(attempt * 100, 1_000),
  });
  // Every reconnect attempt emits `error`; log each distinct message once, not every 100 ms.
  let lastError = "";
  redis.on("error", (error: Error) => {
    const message = errorMessage(error);
    if (message !== lastError) log.warn("redis error", { error: message });
    lastError = message;
  });
  redis.on("ready", () => {
    if (lastError) log.info("redis connection restored");
    lastError = "";
  });
  return redis;
}

/** Settles when the first connection attempt has succeeded or failed (bounded by connectTimeout). */
export function firstConnectAttempt(redis: Redis): Promise<void> {
  if (redis.status === "ready") return Promise.resolve();
  return new Promise((resolve) => {
    const settle = () => {
      redis.off("ready", settle).off("error", settle).off("end", settle);
      resolve();
    };
    redis.once("ready", settle).once("error", settle).once("end", settle);
  });
}

/** Z1 redis probe: connected and answering PING. */
export async function pingRedis(redis: Redis): Promise<void> {
  if (redis.status !== "ready") throw new Error(`not connected (${redis.status})`);
  await redis.ping();
}

/** S7: LLEN of `queue:<name>` per work queue. */
export async function queueLengths(redis: Redis): Promise<Map<string, number>> {
  return inRedis(async () => {
    const lengths = await Promise.all(WORK_QUEUES.map((queue) => redis.llen(`queue:${queue}`)));
    return new Map(WORK_QUEUES.map((queue, index) => [queue, lengths[index]]));
  });
}

export class CircuitBreaker {
  private readonly redis: Redis;
  private readonly now: () => number;

  constructor(redis: Redis, now: () => number = Date.now) {
    this.redis = redis;
    this.now = now;
  }

  status(): Promise<CircuitBreakerStatus> {
    return inRedis(async () => this.fromHash(await this.redis.hgetall(CIRCUIT_BREAKER_KEY)));
  }

  /** Opens the breaker (drills); a breaker that is already OPEN stays as it is and the caller answers 409. */
  async trip(reason: string): Promise<{ tripped: CircuitBreakerStatus } | { alreadyOpen: CircuitBreakerStatus }> {
    const current = await this.status();
    if (current.state === "OPEN") return { alreadyOpen: current };
    const openedAt = new Date(this.now()).toISOString();
    const failures = current.failures + 1;
    await inRedis(() => this.redis.hset(CIRCUIT_BREAKER_KEY, { state: "OPEN", opened_at: openedAt, reason, failures }));
    return { tripped: await this.status() };
  }

  /** I2 manual reset: CLOSED with no failures (a missing hash). */
  async reset(): Promise<CircuitBreakerStatus> {
    await inRedis(() => this.redis.del(CIRCUIT_BREAKER_KEY));
    return this.status();
  }

  private fromHash(hash: Record<string, string>): CircuitBreakerStatus {
    const openedAt = hash.opened_at ? new Date(hash.opened_at) : undefined;
    return {
      state: this.effectiveState(hash.state, openedAt),
      failures: Number(hash.failures) || 0,
      opened_at: openedAt && !Number.isNaN(openedAt.getTime()) ? openedAt.toISOString() : undefined,
      reason: hash.state === "CLOSED" ? undefined : hash.reason,
      reset_timeout_s: CIRCUIT_BREAKER_RESET_TIMEOUT_S,
    };
  }

  private effectiveState(stored: string | undefined, openedAt: Date | undefined): CircuitBreakerState {
    if (stored === undefined) return "CLOSED";
    // An unreadable state fails safe: an open breaker stops trading, a closed one would not.
    const state = CircuitBreakerState.catch("OPEN").parse(stored);
    const openForMs = openedAt ? this.now() - openedAt.getTime() : 0;
    if (state === "OPEN" && openForMs >= CIRCUIT_BREAKER_RESET_TIMEOUT_S * 1_000) return "HALF_OPEN";
    return state;
  }
}

/** Redis failures become DependencyUnavailable, which the routes answer with 503. */
async function inRedis<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    throw new DependencyUnavailable("redis", error);
  }
}
