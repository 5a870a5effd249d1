/**
 * What the Redis snapshot runbooks (`backup --redis`, `restore --redis`) do to the platform: read
 * the RDB file Redis wrote, stop Redis, put a snapshot in its place, start it with AOF off, stop
 * and start the app. One interface, one implementation per platform; the sandbox's goes through
 * its one interface (sandbox/index.ts).
 */
import type { StackOutputs } from "../../contract/outputs.ts";
import { openSandbox, type Sandbox } from "../../sandbox/index.ts";
import { Refusal } from "../engine/errors.ts";
import { stopIfRunning } from "./sandbox-nodes.ts";

export interface RedisPlatform {
  /** A local path to the RDB file Redis writes on BGSAVE. */
  rdbFile(): string;
  /** Where a downloaded snapshot waits (same filesystem as the RDB file, so putting it in place is a rename). */
  stagingFile(name: string): string;
  freeBytes(): Promise<number>;
  stop(log: (line: string) => void): Promise<"stopped" | "was not running">;
  /** Starts Redis with its usual config (AOF on). */
  start(log: (line: string) => void): Promise<void>;
  /** Starts Redis with AOF off so it loads dump.rdb, never an old AOF. */
  startWithoutAof(log: (line: string) => void): Promise<void>;
  /** Redis stopped: dump.rdb and the AOF are kept aside, `staged` becomes dump.rdb; returns the kept paths. */
  placeRdb(staged: string): Promise<string[]>;
  putBack(aside: string[]): Promise<void>;
  stopApp(log: (line: string) => void): Promise<"stopped" | "was not running">;
  startApp(log: (line: string) => void): Promise<void>;
}

export async function redisPlatformOf(outputs: StackOutputs): Promise<RedisPlatform> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxRedisPlatform(await openSandbox({ dir: platform.dir }));
    case "docker":
    case "kubernetes":
      throw new Refusal(
        `Redis snapshots on ${platform.kind} stacks are not automated yet`,
        "by hand: BGSAVE and copy dump.rdb out of the Redis container/pod; to restore, CONFIG SET appendonly no, stop, copy dump.rdb in, start, CONFIG SET appendonly yes",
      );
  }
}

function sandboxRedisPlatform(sandbox: Sandbox): RedisPlatform {
  return {
    rdbFile: () => sandbox.redis.rdbFile(),
    stagingFile: (name) => sandbox.redis.stagingFile(name),
    freeBytes: async () => sandbox.redis.freeBytes(),
    stop: (log) => stopIfRunning(sandbox, "redis", log),
    start: (log) => sandbox.start("redis", log),
    startWithoutAof: (log) => sandbox.redis.startWithoutAof(log),
    placeRdb: (staged) => sandbox.redis.placeRdb(staged),
    putBack: (aside) => sandbox.redis.putBack(aside),
    stopApp: (log) => stopIfRunning(sandbox, "ops-api", log),
    startApp: (log) => sandbox.start("ops-api", log),
  };
}
