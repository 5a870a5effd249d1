/**
 * Redis scenarios (S7, S9, C4, C6): unreachable, memory policy, and a worker that stopped
 * consuming while its queue grows.
 */
import { setTimeout as sleep } from "node:timers/promises";
import type { Redis } from "ioredis";
import { WORK_QUEUES } from "../../contract/ops-api.ts";
import { bytes } from "../format.ts";
import { checkRedis, parseRedisInfo } from "../probes.ts";
import { type DoctorCheck, fail, findingOfError, ok, warn } from "./check.ts";

const RESTART_REDIS = "start Redis (`tradeops sandbox up` on the sandbox; `docker compose up -d redis`), then `tradeops doctor --only redis`";

/** S9 "Redis connection lost", C6 "Redis unreachable". */
export const redisReachable: DoctorCheck = {
  name: "redis",
  features: ["S9", "C6", "S7"],
  async run(reach) {
    try {
      return ok(await checkRedis(reach.outputs, { signal: reach.signal, timeoutMs: reach.timeoutMs }));
    } catch (error) {
      return findingOfError(error, "Redis", RESTART_REDIS);
    }
  },
};

const EXPECTED_MAXMEMORY = 2 * 1024 ** 3; // S7, C4: maxmemory 2gb
const EXPECTED_POLICY = "allkeys-lru";

/** S7, C4: `maxmemory 2gb` + `allkeys-lru`, and how full it is. */
export const redisMemory: DoctorCheck = {
  name: "redis-memory",
  features: ["S7", "C4"],
  async run(reach) {
    try {
      const info = parseRedisInfo(await reach.redis((redis) => redis.info("memory")));
      const max = Number(info.maxmemory ?? 0);
      const used = Number(info.used_memory ?? 0);
      const policy = info.maxmemory_policy ?? "?";
      const saw = `used ${bytes(used)} of maxmemory ${max ? bytes(max) : "unlimited"}, policy ${policy}`;
      const fix = "`CONFIG SET maxmemory 2gb`, `CONFIG SET maxmemory-policy allkeys-lru`, `CONFIG REWRITE` (the stack's redis.conf renders both)";
      if (max && used > 0.9 * max) return fail(saw, "Redis is at its memory limit: it evicts keys (or refuses writes under noeviction)", `\`tradeops redis big-keys\`; ${fix}`);
      if (max !== EXPECTED_MAXMEMORY || policy !== EXPECTED_POLICY) return warn(saw, `not the S7 policy (maxmemory 2gb, ${EXPECTED_POLICY}): a full Redis would refuse writes or use all the node's memory`, fix);
      return ok(saw);
    } catch (error) {
      return findingOfError(error, "Redis", RESTART_REDIS);
    }
  },
};

/** Commands a worker consumes a list with: a client whose last command is one of them is a consumer. */
const CONSUMING = new Set(["brpop", "blpop", "blmove", "brpoplpush", "rpop", "lpop", "lmove", "rpoplpush", "blmpop", "lmpop"]);
const SAMPLE_GAP_MS = 300;

/** C6 "worker not consuming", S9 "data collection failing": jobs wait, nobody takes them, the failed lists. */
export const worker: DoctorCheck = {
  name: "worker",
  features: ["C6", "S9", "S7"],
  async run(reach) {
    try {
      const { before, after, consumers, failed } = await reach.redis(async (redis) => {
        const lengths = () => Promise.all(WORK_QUEUES.map((q) => redis.llen(`queue:${q}`)));
        const first = await lengths();
        await sleep(SAMPLE_GAP_MS, undefined, { signal: reach.signal });
        const second = await lengths();
        return { before: first, after: second, consumers: await consumingClients(redis), failed: await Promise.all(WORK_QUEUES.map((q) => redis.llen(`queue:${q}:failed`))) };
      });
      const stalled = WORK_QUEUES.map((queue, i) => ({ queue, length: after[i]!, rising: after[i]! > before[i]! })).filter((q) => q.length > 0 && consumers === 0);
      const failing = WORK_QUEUES.map((queue, i) => ({ queue, length: failed[i]! })).filter((q) => q.length > 0);
      const lengths = WORK_QUEUES.map((queue, i) => `${queue} ${after[i]}`).join(", ");
      const saw = `queue lengths: ${lengths}; clients consuming lists: ${consumers}${failing.length ? `; failed: ${failing.map((f) => `${f.queue} ${f.length}`).join(", ")}` : ""}`;
      if (stalled.length) {
        const rising = stalled.filter((q) => q.rising).map((q) => `queue:${q.queue}`);
        return fail(
          saw,
          `no worker is consuming: ${stalled.map((q) => `queue:${q.queue} holds ${q.length}`).join(", ")}${rising.length ? ` and ${rising.join(", ")} is still rising` : ""}; the worker is dead or cannot reach Redis`,
          "restart the worker (`docker compose restart worker`, `kubectl rollout restart deployment/<worker>`); `tradeops logs --errors --since 15m`; `tradeops redis queues`",
        );
      }
      if (failing.length) return warn(saw, "jobs failed (broker token expired? see the worker's errors)", "`tradeops logs --errors --since 1h`; retry them, or `tradeops redis clear-queue NAME --yes`");
      return ok(saw);
    } catch (error) {
      return findingOfError(error, "Redis", RESTART_REDIS);
    }
  },
};

async function consumingClients(redis: Redis): Promise<number> {
  const list = String(await redis.client("LIST"));
  return list.split("\n").filter((line) => CONSUMING.has(/\bcmd=([a-z|]+)/.exec(line)?.[1] ?? "")).length;
}
