/**
 * Redis 7, the queue and state store (S7, C4), on the generated redis.conf.
 */
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { Redis } from "ioredis";
import { withRedis } from "../../clients/redis.ts";
import { renderRedisConf } from "../../infra/config-files/redis.ts";
import type { ComponentContext, SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
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

  start: (sandbox) => startRedis(sandbox),

  async verify(sandbox) {
    const { layout } = sandbox;
    const appendonly = await withSandboxRedis(sandbox, async (client) => (await client.config("GET", "appendonly")) as string[]);
    if (appendonly[1] !== "yes") throw new Error(`Redis runs with appendonly ${appendonly[1]}, expected yes (S7); see ${layout.redis.config}`);
  },

  stop: (layout) => stopDaemon(layout, layout.redis),
};

/** `extraArgs` override redis.conf for this start only (a restore starts it with `--appendonly no`). */
async function startRedis(sandbox: ComponentContext, extraArgs: string[] = []): Promise<void> {
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
  spawnDaemon(layout, { name: "redis", command: "redis-server", args: [layout.redis.config, ...extraArgs], log: layout.redis.log, pidFile: layout.redis.pidFile });
  // Loading a big dataset answers PING with -LOADING: ready means a PONG.
  const ready = await waitUntil(() => withSandboxRedis(sandbox, async (client) => (await client.ping()) === "PONG"), READY_TIMEOUT_MS, 100);
  if (!ready) throw notReady("Redis", `answer PING on port ${layout.ports.redis}`, READY_TIMEOUT_MS, layout.redis.log);
}

// ---- restore (tradeops restore --redis) -----------------------------------------------------------

/** The RDB file Redis writes on BGSAVE and reads at start (dir + dbfilename of redis.conf). */
export const rdbFileOf = (layout: SandboxLayout) => join(layout.redis.dataDir, "dump.rdb");

/** Field notes: a Redis started with `appendonly yes` loads its AOF and ignores dump.rdb. The AOF is turned on again once the data is in. */
export async function startRedisWithoutAof(sandbox: ComponentContext): Promise<void> {
  if (livePid(sandbox.layout.redis.pidFile, sandbox.layout.dir) !== undefined) throw new Error("Redis is running: stop it before starting it for a restore");
  await startRedis(sandbox, ["--appendonly", "no"]);
}

/**
 * With Redis stopped: its dump.rdb and AOF dir are renamed aside (`*.before-restore-<stamp>`,
 * kept: the undo) and `staged` becomes dump.rdb. Returns the set-aside paths.
 */
export function placeRdb(layout: SandboxLayout, staged: string): string[] {
  if (livePid(layout.redis.pidFile, layout.dir) !== undefined) throw new Error("Redis is running: stop it before putting a snapshot in place");
  if (!existsSync(staged)) throw new Error(`${staged} does not exist`);
  const stamp = new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z");
  const aside: string[] = [];
  for (const name of ["dump.rdb", "appendonlydir"]) {
    const path = join(layout.redis.dataDir, name);
    if (!existsSync(path)) continue;
    renameSync(path, `${path}.before-restore-${stamp}`);
    aside.push(`${path}.before-restore-${stamp}`);
  }
  renameSync(staged, rdbFileOf(layout));
  return aside;
}

/** Undoes `placeRdb`: the restored dump.rdb and AOF dir go, the set-aside ones come back. */
export function putBackRdb(layout: SandboxLayout, aside: string[]): void {
  if (livePid(layout.redis.pidFile, layout.dir) !== undefined) throw new Error("Redis is running: stop it before putting its files back");
  for (const path of aside) {
    const original = path.replace(/\.before-restore-[0-9TZ]+$/, "");
    rmSync(original, { recursive: true, force: true });
    renameSync(path, original);
  }
}
