/**
 * The stack's components as client targets: the shared clients (clients/) know hosts and
 * passwords; the outputs contract says which ones a stack has.
 */
import type { StackOutputs } from "../contract/outputs.ts";
import type { PgCallOptions } from "../clients/pg.ts";
import { withPg } from "../clients/pg.ts";
import { withRedis, type RedisCallOptions } from "../clients/redis.ts";
import type { Redis } from "ioredis";
import type pg from "pg";

type Endpoint = { host: string; port: number };

/** A session as the ops role on one PostgreSQL endpoint of the stack (a node or the traffic endpoint). */
export function onPg<T>(outputs: StackOutputs, endpoint: Endpoint, use: (client: pg.Client) => Promise<T>, options?: PgCallOptions): Promise<T> {
  const { user, password, name } = outputs.database;
  return withPg({ host: endpoint.host, port: endpoint.port, user, password, database: name }, use, options);
}

export function onRedis<T>(outputs: StackOutputs, use: (redis: Redis) => Promise<T>, options?: RedisCallOptions): Promise<T> {
  return withRedis(outputs.redis, use, options);
}
