/**
 * Every component's log, read the same way on every platform (Z2, S12, C5): the sandbox's log
 * files, `docker logs`, `kubectl logs`. `tradeops logs`, the doctor (why did the API not start?)
 * and the support bundle read through this one interface.
 */
import { existsSync, readdirSync } from "node:fs";
import { open } from "node:fs/promises";
import { basename, join } from "node:path";
import { $ } from "zx";
import type { StackOutputs } from "../../contract/outputs.ts";

export interface LogReadOptions {
  /** Only lines from the last `sinceMs` (lines without a time of their own go with the line before). */
  sinceMs?: number;
  /** At most this many bytes from the end. @default 4 MiB */
  maxBytes?: number;
  signal?: AbortSignal;
}

export interface LogSource {
  /** The components that have a log here, e.g. `ops-api`, `pg-a`, `redis`. */
  components(): Promise<string[]>;
  /** The component's log lines, oldest first. */
  read(component: string, options?: LogReadOptions): Promise<string[]>;
  /** Where the log is, for messages: a file, `docker logs NAME`. */
  where(component: string): string;
  /** Where every log comes from, for plans: the sandbox's logs dir, `docker logs`, `kubectl logs -n NS`. */
  readonly origin: string;
}

const DEFAULT_MAX_BYTES = 4 * 1024 * 1024;

export function logSource(outputs: StackOutputs): LogSource {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxLogs(join(platform.dir, "logs"));
    case "docker": {
      const containers: Record<string, string | undefined> = { ...platform.containers };
      return commandLogs("docker logs", containers, (name, since) => ["docker", "logs", "--timestamps", ...(since ? ["--since", since] : []), name], (name) => `docker logs ${name}`);
    }
    case "kubernetes": {
      const kubectl = ["kubectl", ...(platform.context ? ["--context", platform.context] : []), "-n", platform.namespace];
      const workloads: Record<string, string | undefined> = {
        api: `deployment/${platform.deployments.api}`,
        worker: platform.deployments.worker ? `deployment/${platform.deployments.worker}` : undefined,
        database: `statefulset/${platform.statefulSets.database}`,
        redis: `statefulset/${platform.statefulSets.redis}`,
      };
      return commandLogs(`kubectl logs -n ${platform.namespace}`, workloads, (name, since) => [...kubectl, "logs", "--timestamps", "--all-containers", ...(since ? [`--since-time=${since}`] : []), name], (name) => `kubectl logs ${name}`);
    }
  }
}

/** The sandbox writes one file per component under logs/. */
function sandboxLogs(dir: string): LogSource {
  const fileOf = (component: string) => join(dir, `${component}.log`);
  return {
    origin: dir,
    components: async () => (existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith(".log")).map((f) => basename(f, ".log")).sort() : []),
    where: fileOf,
    async read(component, options = {}) {
      const file = fileOf(component);
      if (!existsSync(file)) throw new Error(`no log for ${component} (${file} does not exist)`);
      const handle = await open(file, "r");
      try {
        const { size } = await handle.stat();
        const length = Math.min(size, options.maxBytes ?? DEFAULT_MAX_BYTES);
        const buffer = Buffer.alloc(length);
        await handle.read(buffer, 0, length, size - length);
        let lines = buffer.toString("utf8").split("\n");
        if (length < size) lines = lines.slice(1); // the first line was cut
        return within(lines.filter((line) => line.length > 0), options.sinceMs);
      } finally {
        await handle.close();
      }
    },
  };
}

/** Platforms whose logs come from a command (`docker logs`, `kubectl logs`), timestamps first on each line. */
function commandLogs(origin: string, targets: Record<string, string | undefined>, argv: (target: string, sinceIso?: string) => string[], where: (target: string) => string): LogSource {
  const targetOf = (component: string) => {
    const target = targets[component];
    if (!target) throw new Error(`no component ${component} here; there are ${Object.keys(targets).filter((k) => targets[k]).join(", ")}`);
    return target;
  };
  return {
    origin,
    components: async () => Object.keys(targets).filter((k) => targets[k]),
    where: (component) => where(targetOf(component)),
    async read(component, options = {}) {
      const since = options.sinceMs ? new Date(Date.now() - options.sinceMs).toISOString() : undefined;
      const [command, ...args] = argv(targetOf(component), since);
      const out = await $({ quiet: true, nothrow: true, signal: options.signal, timeout: "30s" })`${command} ${args}`;
      if (out.exitCode !== 0) throw new Error(`${where(targetOf(component))} failed (exit ${out.exitCode}): ${out.stderr.trim().split("\n").at(-1) ?? ""}`);
      const text = out.stdout + out.stderr;
      const max = options.maxBytes ?? DEFAULT_MAX_BYTES;
      return (text.length > max ? text.slice(-max) : text).split("\n").filter((line) => line.length > 0);
    },
  };
}

/** Lines at or after now − `sinceMs`; a line without a time of its own belongs with the line before it. */
function within(lines: string[], sinceMs: number | undefined): string[] {
  if (sinceMs === undefined) return lines;
  const from = Date.now() - sinceMs;
  let current: number | undefined;
  return lines.filter((line) => {
    current = lineTime(line) ?? current;
    return current !== undefined && current >= from;
  });
}

const MONTHS = "Jan Feb Mar Apr May Jun Jul Aug Sep Oct Nov Dec".split(" ");

/**
 * The time a sandbox log line carries: JSON `"time"` (ops API), an ISO-like stamp (PostgreSQL,
 * s3rver, docker/kubectl `--timestamps`), or Redis's `05 Dec 2026 18:00:00.123`.
 */
export function lineTime(line: string): number | undefined {
  const iso = /(\d{4}-\d\d-\d\d)[T ](\d\d:\d\d:\d\d(?:\.\d+)?)\s*(Z|UTC|GMT|[+-]\d\d:?\d\d)?/.exec(line);
  if (iso) {
    const zone = !iso[3] || iso[3] === "UTC" || iso[3] === "GMT" ? "Z" : iso[3];
    const time = Date.parse(`${iso[1]}T${iso[2]}${zone}`);
    if (Number.isFinite(time)) return time;
  }
  const redis = /\b(\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d:\d\d:\d\d(?:\.\d+)?)/.exec(line);
  if (redis && MONTHS.includes(redis[2]!)) {
    const month = String(MONTHS.indexOf(redis[2]!) + 1).padStart(2, "0");
    return Date.parse(`${redis[3]}-${month}-${redis[1]}T${redis[4]}Z`);
  }
  return undefined;
}
