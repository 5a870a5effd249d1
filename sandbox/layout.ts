/**
 * Where everything of one sandbox lives: every path and every port, computed from the sandbox dir
 * and a base port. Pure (no I/O), so plans, status and tests agree with `up` on every path.
 *
 * Ports are the base port plus a fixed offset (default base 15400):
 *
 *   +1 pg-a (PostgreSQL primary)      +5 s3 (s3rver, HTTPS)
 *   +2 pg-b (PostgreSQL standby)      +6 ops-api (HTTP)
 *   +3 traffic (HAProxy → primary)    +7 prometheus (HTTP)
 *   +4 redis                          +8 alertmanager (HTTP)
 *   +9 pg-exporter  +10 redis-exporter  +11 node-exporter (S4, HTTP /metrics)
 *
 * With a DR site (`up --with-dr`, I5/I6): +12 pg-dr (a standby restored from the repository and
 * fed by archive-get), +13 dr-ops-api (the DR site's API, at pilot light: not started until
 * `dr activate`), +14 site-traffic (HAProxy in front of both sites' APIs: the sandbox's stand-in
 * for the Route53 failover record users resolve).
 *
 * Files under the dir:
 *
 *   secrets.json  outputs.json  sandbox.json (settings of the first `up`: ports, mode; which node is primary)
 *   ops-api.env (the API's environment, written by its first start)
 *   logs/<component>.log          run/<component>.pid   run/haproxy.sock   run/pg/ (PG sockets)
 *   pg/pg-a  pg/pg-b  pg/pg-dr (data dirs, postgres 0700)   dr-ops-api.env   site/haproxy.cfg   run/site.sock
 *   s3/data  s3/tls/{cert,key}.pem
 *   pgbackrest/{pgbackrest.conf,log,lock,spool}
 *   haproxy/haproxy.cfg   redis/{redis.conf,data}   prometheus/{prometheus.yml,rules.yml,data}
 *   alertmanager/{alertmanager.yml,data}
 */
import { userInfo } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** This folder: the reference ops API's entry point is under it. */
const sandboxRoot = dirname(fileURLToPath(import.meta.url));

export const DEFAULT_BASE_PORT = 15400;
export const DEFAULT_PG_BIN_DIR = "/usr/lib/postgresql/15/bin";
export const SANDBOX_HOST = "127.0.0.1";

/** Offsets from the base port; documented above, fixed so two sandboxes differ only by base port. */
export const PORT_OFFSETS = {
  pgA: 1,
  pgB: 2,
  traffic: 3,
  redis: 4,
  s3: 5,
  opsApi: 6,
  prometheus: 7,
  alertmanager: 8,
  pgExporter: 9,
  redisExporter: 10,
  nodeExporter: 11,
  pgDr: 12,
  drOpsApi: 13,
  site: 14,
} as const;

export type SandboxPorts = { -readonly [K in keyof typeof PORT_OFFSETS]: number };
export type ReplicationMode = "sync" | "async";

/** The components in start order; `down` walks it backwards. */
export const COMPONENT_NAMES = [
  "s3", "pg-a", "stanza", "pg-b", "haproxy", "redis", "ops-api", "pg-dr", "dr-ops-api", "site-traffic",
  "pg-exporter", "redis-exporter", "node-exporter", "alertmanager", "prometheus",
] as const;
export type ComponentName = (typeof COMPONENT_NAMES)[number];
/** The primary site's pair. */
export type PgNodeName = "pg-a" | "pg-b";
/** The DR site's node. */
export const DR_NODE = "pg-dr";
/** Any PostgreSQL node of the sandbox: the pair, or the DR site's. */
export type SiteNodeName = PgNodeName | typeof DR_NODE;
/** Which site takes the platform's traffic: the primary site, or the DR site after `dr activate`. */
export type SiteName = "primary" | "dr";

export interface SandboxLayoutOptions {
  /** The sandbox's directory; the CLI picks it (`--dir`, else the active sandbox, else `$TRADEOPS_HOME/sandbox`). */
  dir: string;
  /** @default 15400 */
  basePort?: number;
  /** Individual overrides of the offsets above. */
  ports?: Partial<SandboxPorts>;
  /** Commits wait for pg-b (`sync`, I5 RPO 0) or not. @default "sync" */
  mode?: ReplicationMode;
  /** @default "/usr/lib/postgresql/15/bin" */
  pgBinDir?: string;
  /** The node that takes writes: pg-a until a failover promotes pg-b. @default "pg-a" */
  primary?: PgNodeName;
  /** A DR site beside the primary site (pg-dr, its API at pilot light, the site switch). @default false */
  withDr?: boolean;
  /** The site that takes traffic (`dr activate` records "dr", `dr failback` "primary"). @default "primary" */
  activeSite?: SiteName;
}

export interface PgNodeLayout {
  name: SiteNodeName;
  port: number;
  dataDir: string;
  log: string;
  pidFile: string;
}

export interface ProcessFiles {
  log: string;
  pidFile: string;
}

export interface SandboxLayout {
  dir: string;
  host: typeof SANDBOX_HOST;
  basePort: number;
  ports: SandboxPorts;
  mode: ReplicationMode;
  /** PostgreSQL refuses root: it and pgBackRest run as this OS user. */
  osUser: string;
  pgBinDir: string;
  /** The node recorded as primary (sandbox.json): `up` starts it as the primary, the other as its standby. */
  primary: PgNodeName;
  /** The DR site, when the sandbox has one: its node, its API (pilot light) and the site switch in front of both APIs. */
  dr?: {
    node: PgNodeLayout;
    opsApi: ProcessFiles & { envFile: string };
    site: ProcessFiles & { dir: string; config: string; socket: string };
    /** The site that takes traffic now (sandbox.json). */
    activeSite: SiteName;
  };
  files: { secrets: string; outputs: string; settings: string };
  logsDir: string;
  runDir: string;
  /** unix_socket_directories of both nodes (ports differ, so one dir serves both). */
  pgSocketDir: string;
  pg: Record<PgNodeName, PgNodeLayout>;
  database: { name: string; user: string; replicationUser: string };
  s3: ProcessFiles & { dataDir: string; tlsDir: string; cert: string; key: string; bucket: string; region: string; prefix: string };
  pgbackrest: { dir: string; config: string; logPath: string; lockPath: string; spoolPath: string; stanza: string };
  haproxy: ProcessFiles & { dir: string; config: string; socket: string };
  redis: ProcessFiles & { dir: string; config: string; dataDir: string };
  /** `envFile`: what the API starts with, like a compose `.env` (0600: it holds the credentials). */
  opsApi: ProcessFiles & { main: string; envFile: string };
  prometheus: ProcessFiles & { dir: string; config: string; rules: string; dataDir: string };
  alertmanager: ProcessFiles & { config: string; dataDir: string };
  exporters: Record<"pg-exporter" | "redis-exporter" | "node-exporter", ProcessFiles>;
  /** node-exporter's textfile collector: runbooks record backup successes there (the BackupTooOld alert's input). */
  metricsTextfileDir: string;
}

/** PostgreSQL refuses to run as root; as any other user the sandbox runs it as that user. */
export function sandboxOsUser(): string {
  return process.getuid?.() === 0 ? "postgres" : userInfo().username;
}

export function sandboxPorts(basePort: number, overrides: Partial<SandboxPorts> = {}): SandboxPorts {
  const ports = Object.fromEntries(
    Object.entries(PORT_OFFSETS).map(([key, offset]) => [key, basePort + offset]),
  ) as SandboxPorts;
  return { ...ports, ...overrides };
}

export function sandboxLayout(opts: SandboxLayoutOptions): SandboxLayout {
  const dir = resolve(opts.dir);
  const basePort = opts.basePort ?? DEFAULT_BASE_PORT;
  const ports = sandboxPorts(basePort, opts.ports);
  const logsDir = join(dir, "logs");
  const runDir = join(dir, "run");
  const processFiles = (name: string): ProcessFiles => ({ log: join(logsDir, `${name}.log`), pidFile: join(runDir, `${name}.pid`) });
  const pgNode = (name: PgNodeName, port: number): PgNodeLayout => ({ name, port, dataDir: join(dir, "pg", name), ...processFiles(name) });
  const pgbackrestDir = join(dir, "pgbackrest");
  return {
    dir,
    host: SANDBOX_HOST,
    basePort,
    ports,
    mode: opts.mode ?? "sync",
    osUser: sandboxOsUser(),
    pgBinDir: opts.pgBinDir ?? DEFAULT_PG_BIN_DIR,
    primary: opts.primary ?? "pg-a",
    files: { secrets: join(dir, "secrets.json"), outputs: join(dir, "outputs.json"), settings: join(dir, "sandbox.json") },
    logsDir,
    runDir,
    pgSocketDir: join(runDir, "pg"),
    pg: { "pg-a": pgNode("pg-a", ports.pgA), "pg-b": pgNode("pg-b", ports.pgB) },
    database: { name: "trading", user: "tradeops", replicationUser: "replicator" },
    s3: {
      ...processFiles("s3"),
      dataDir: join(dir, "s3", "data"),
      tlsDir: join(dir, "s3", "tls"),
      cert: join(dir, "s3", "tls", "cert.pem"),
      key: join(dir, "s3", "tls", "key.pem"),
      bucket: "tradeops-backups",
      region: "us-east-1",
      prefix: "/pgbackrest",
    },
    pgbackrest: {
      dir: pgbackrestDir,
      config: join(pgbackrestDir, "pgbackrest.conf"),
      logPath: join(pgbackrestDir, "log"),
      lockPath: join(pgbackrestDir, "lock"),
      spoolPath: join(pgbackrestDir, "spool"),
      stanza: "trading",
    },
    haproxy: { ...processFiles("haproxy"), dir: join(dir, "haproxy"), config: join(dir, "haproxy", "haproxy.cfg"), socket: join(runDir, "haproxy.sock") },
    redis: { ...processFiles("redis"), dir: join(dir, "redis"), config: join(dir, "redis", "redis.conf"), dataDir: join(dir, "redis", "data") },
    opsApi: { ...processFiles("ops-api"), main: join(sandboxRoot, "ops-api", "main.ts"), envFile: join(dir, "ops-api.env") },
    prometheus: {
      ...processFiles("prometheus"),
      dir: join(dir, "prometheus"),
      config: join(dir, "prometheus", "prometheus.yml"),
      rules: join(dir, "prometheus", "rules.yml"),
      dataDir: join(dir, "prometheus", "data"),
    },
    alertmanager: { ...processFiles("alertmanager"), config: join(dir, "alertmanager", "alertmanager.yml"), dataDir: join(dir, "alertmanager", "data") },
    exporters: { "pg-exporter": processFiles("pg-exporter"), "redis-exporter": processFiles("redis-exporter"), "node-exporter": processFiles("node-exporter") },
    metricsTextfileDir: join(dir, "node-exporter", "textfile"),
    dr: opts.withDr
      ? {
          node: { name: DR_NODE, port: ports.pgDr, dataDir: join(dir, "pg", DR_NODE), ...processFiles(DR_NODE) },
          opsApi: { ...processFiles("dr-ops-api"), envFile: join(dir, "dr-ops-api.env") },
          site: { ...processFiles("site-traffic"), dir: join(dir, "site"), config: join(dir, "site", "haproxy.cfg"), socket: join(runDir, "site.sock") },
          activeSite: opts.activeSite ?? "primary",
        }
      : undefined,
  };
}

/** Where a node of the sandbox lives: one of the pair, or the DR site's (which must exist). */
export function nodeOf(layout: SandboxLayout, name: SiteNodeName): PgNodeLayout {
  if (name !== DR_NODE) return layout.pg[name];
  if (!layout.dr) throw new Error(`the sandbox at ${layout.dir} has no DR site (\`tradeops sandbox up --with-dr\`)`);
  return layout.dr.node;
}

/** The other node of the pair. */
export function peerOf(name: PgNodeName): PgNodeName {
  return name === "pg-a" ? "pg-b" : "pg-a";
}

/** The node recorded as standby. */
export function standbyOf(layout: SandboxLayout): PgNodeName {
  return peerOf(layout.primary);
}

/** The physical replication slot a node streams from when it is the standby (slot names allow no hyphen). */
export function slotOf(name: SiteNodeName): string {
  return name.replace("-", "_");
}
