/**
 * `tradeops redis queues|clear-queue|big-keys|ttl-check` — the seeds' Redis care (S7, S13, C4, C7):
 * queue lengths, clearing one queue (destructive: `--yes`), the biggest keys, keys without a TTL.
 * Every command that changes something prints the exact Redis command in its dry-run plan.
 */
import type { Redis } from "ioredis";
import { z } from "zod";
import { WORK_QUEUES } from "../../contract/ops-api.ts";
import type { StackOutputs } from "../../contract/outputs.ts";
import { onRedis } from "../connect.ts";
import { defineRunbook } from "../engine/runbook.ts";
import { flag } from "../flags.ts";
import { bytes, table } from "../format.ts";

/** Each S7 work queue and its failed list (the seed's `bull:<queue>:failed`). */
const QUEUE_NAMES = WORK_QUEUES.flatMap((q) => [q, `${q}:failed`]) as [string, ...string[]];
const keyOf = (queue: string) => `queue:${queue}`;

type View = { title: string; header: string[]; rows: (string | number)[][] };
const render = (facts: Record<string, unknown>) => {
  const view = facts.view as View | undefined;
  return { text: view ? `== ${view.title}\n${view.rows.length ? table(view.header, view.rows) : "(none)"}` : "", json: view ?? null };
};

export const redisQueues = defineRunbook({
  command: ["redis", "queues"],
  name: "redis-queues",
  summary: "length of every work queue and its failed list (S7)",
  features: ["S7", "S9", "C6"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Read the queue lengths",
      readOnly: true,
      action: async (ctx) => {
        const lengths = await onRedis(outputs, (redis) => Promise.all(QUEUE_NAMES.map((q) => redis.llen(keyOf(q)))), { signal: ctx.signal });
        ctx.record("view", { title: "work queues", header: ["QUEUE", "KEY", "LENGTH"], rows: QUEUE_NAMES.map((q, i) => [q, keyOf(q), lengths[i]!]) } satisfies View);
      },
    },
  ],
  report: render,
});

export const redisClearQueue = defineRunbook({
  command: ["redis", "clear-queue"],
  name: "redis-clear-queue",
  summary: "delete every job of one queue (the queue reset); needs --yes",
  features: ["S7", "C7"],
  mutates: true,
  args: z.object({
    queue: flag(z.enum(QUEUE_NAMES, { error: () => `a queue: ${QUEUE_NAMES.join(", ")}` }), { description: `the queue (${QUEUE_NAMES.join(", ")})`, placeholder: "name", positional: true }),
  }),
  steps: ({ queue }, { outputs }) => [
    {
      name: `Delete every job of queue ${queue}`,
      plan: `DEL ${keyOf(queue)}`,
      destructive: true,
      action: async (ctx) => {
        const [length, deleted] = await onRedis(outputs, async (redis) => [await redis.llen(keyOf(queue)), await redis.del(keyOf(queue))], { signal: ctx.signal });
        ctx.log(`DEL ${keyOf(queue)} → ${deleted} (${length} jobs)`);
        ctx.record("executed", [{ command: `DEL ${keyOf(queue)}`, jobs: length }]);
      },
      verify: async () => {
        const left = await onRedis(outputs, (redis) => redis.llen(keyOf(queue)));
        if (left !== 0) throw new Error(`${keyOf(queue)} still holds ${left} jobs (a producer is still pushing)`);
      },
    },
  ],
});

/** SCAN, never KEYS: a big keyspace must not block Redis (the seed's `--bigkeys` also scans). */
async function scanKeys(redis: Redis, limit: number): Promise<string[]> {
  const keys: string[] = [];
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "COUNT", 1000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== "0" && keys.length < limit);
  return keys;
}

const MAX_SCANNED = 100_000;

/** `use` on the keys SCAN finds (at most MAX_SCANNED), on one connection; a big keyspace gets 2 minutes. */
function onEveryKey<T>(outputs: StackOutputs, signal: AbortSignal, use: (redis: Redis, keys: string[]) => Promise<T>): Promise<T> {
  return onRedis(outputs, async (redis) => use(redis, await scanKeys(redis, MAX_SCANNED)), { signal, timeoutMs: 120_000 });
}

export const redisBigKeys = defineRunbook({
  command: ["redis", "big-keys"],
  name: "redis-big-keys",
  summary: "the biggest keys by MEMORY USAGE, scanned with SCAN (S13, S7)",
  features: ["S13", "S7"],
  mutates: false,
  args: z.object({ limit: flag(z.number().int().min(1).max(1000).default(10), { description: "keys to show", placeholder: "rows" }) }),
  steps: ({ limit }, { outputs }) => [
    {
      name: "Scan the keys and measure each",
      readOnly: true,
      action: async (ctx) => {
        const rows = await onEveryKey(outputs, ctx.signal, async (redis, keys) => {
          const sized = await Promise.all(keys.map(async (key) => ({ key, type: await redis.type(key), size: Number((await redis.memory("USAGE", key)) ?? 0) })));
          return sized.sort((a, b) => b.size - a.size).slice(0, limit);
        });
        ctx.record("view", { title: "biggest keys", header: ["KEY", "TYPE", "MEMORY"], rows: rows.map((r) => [r.key, r.type, bytes(r.size)]) } satisfies View);
      },
    },
  ],
  report: render,
});

export const redisTtlCheck = defineRunbook({
  command: ["redis", "ttl-check"],
  name: "redis-ttl-check",
  summary: "keys without a TTL by prefix, except the queues (C4: task results expire after 500 s)",
  features: ["C4", "S13"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => [
    {
      name: "Scan the keys and read their TTL",
      readOnly: true,
      action: async (ctx) => {
        const rows = await onEveryKey(outputs, ctx.signal, async (redis, keys) => {
          const ttls = await Promise.all(keys.map((key) => redis.ttl(key)));
          const byPrefix = new Map<string, { keys: number; noTtl: number }>();
          keys.forEach((key, i) => {
            const prefix = key.includes(":") ? `${key.slice(0, key.lastIndexOf(":"))}:*` : key;
            const entry = byPrefix.get(prefix) ?? { keys: 0, noTtl: 0 };
            entry.keys++;
            if (ttls[i] === -1) entry.noTtl++;
            byPrefix.set(prefix, entry);
          });
          return [...byPrefix].filter(([prefix, e]) => e.noTtl > 0 && !prefix.startsWith("queue:")).sort((a, b) => b[1].noTtl - a[1].noTtl);
        });
        ctx.record("view", { title: "keys without a TTL (queues excepted)", header: ["PREFIX", "KEYS", "WITHOUT TTL"], rows: rows.map(([p, e]) => [p, e.keys, e.noTtl]) } satisfies View);
      },
    },
  ],
  report: render,
});
