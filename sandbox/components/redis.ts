/**
 * Redis 7, the queue and state store (S7, C4), on the generated redis.conf.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import type { Redis } from "ioredis";
import { withRedis } from "../../clients/redis.ts";
import { renderRedisConf } from "../../infra/config-files/redis.ts";
import type { ComponentContext, SandboxComponent } from "../component.ts";
import { assertPortFree, livePid, notReady, portOpen, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 20_000;

/**
 * Through the shared client the runbooks use, so what `up` verifies is what `health` will reach.
 * Shorter deadlines than theirs: the readiness wait retries, and one stuck attempt must not eat 3 s of it.
 */
function withSandboxRedis<T>({ layout, secrets }: ComponentContext, use: (redis: Redis) => Promise<T>): Promise<T> {
  const target = { host: layout.host, port: layout.ports.redis, password: secrets.redisPassword };
  return withRedis(target, use, { connectTimeoutMs: 1_000, timeoutMs: 2_000 });
}

export const redis: SandboxComponent = {
  name: "redis",
  startStep: () => "Start Redis 7 (AOF everysec, S7 save rules)",
  stopStep: () => "Stop Redis",
  port: (layout) => layout.ports.redis,
  requires: () => [{ binary: "redis-server", debianPackage: "redis-server" }],
  logFile: (layout) => layout.redis.log,
  pid: (layout) => livePid(layout.redis.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.redis.pidFile, layout.dir) !== undefined && (await portOpen(layout.host, layout.ports.redis)),

  async start(sandbox) {
    const { layout, secrets } = sandbox;
    await assertPortFree(layout.host, layout.ports.redis, "Redis");
    mkdirSync(layout.redis.dataDir, { recursive: true, mode: 0o700 });
    const conf = renderRedisConf({
      bind: layout.host,
      port: layout.ports.redis,
      password: secrets.redisPassword,
      dir: layout.redis.dataDir,
      // Keeps the sandbox marker in its environment, so a stray Redis is found by `down`.
      setProcTitle: false,
    });
    // 0600: the file carries requirepass.
    writeFileSync(layout.redis.config, conf, { mode: 0o600 });
    spawnDaemon(layout, { name: "redis", command: "redis-server", args: [layout.redis.config], log: layout.redis.log, pidFile: layout.redis.pidFile });
    const ready = await waitUntil(() => withSandboxRedis(sandbox, async (client) => (await client.ping()) === "PONG"), READY_TIMEOUT_MS, 100);
    if (!ready) throw notReady("Redis", `answer PING on port ${layout.ports.redis}`, READY_TIMEOUT_MS, layout.redis.log);
  },

  async verify(sandbox) {
    const { layout } = sandbox;
    const appendonly = await withSandboxRedis(sandbox, async (client) => (await client.config("GET", "appendonly")) as string[]);
    if (appendonly[1] !== "yes") throw new Error(`Redis runs with appendonly ${appendonly[1]}, expected yes (S7); see ${layout.redis.config}`);
  },

  stop: (layout) => stopDaemon(layout, layout.redis),
};
