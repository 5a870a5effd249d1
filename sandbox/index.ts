/**
 * The sandbox's one public interface: the whole platform as real local processes on 127.0.0.1
 * (PostgreSQL primary + streaming standby, HAProxy, Redis, an S3 store over TLS, pgBackRest, the
 * reference ops API, Prometheus), writing an outputs file of the same contract the Pulumi stacks
 * export.
 *
 * The runbooks and the CLI import this file and nothing else of the sandbox (a unit test holds
 * that line); the sandbox never imports the runbooks. Its procedures (`up`, `down`) come as
 * `SandboxTask`s in its own words, which the runbooks wrap as engine steps.
 */
import type { StackOutputs } from "../contract/outputs.ts";
import type { ComponentName, PgNodeName, ReplicationMode, SiteName } from "./layout.ts";

export { COMPONENT_NAMES, DEFAULT_BASE_PORT, DR_NODE, PORT_OFFSETS, type ComponentName, type PgNodeName, type ReplicationMode, type SiteName, type SiteNodeName } from "./layout.ts";
export type { ComponentStatus } from "./component.ts";
export { SandboxStateFileError } from "./state-file.ts";

/**
 * Opens the sandbox at `options.dir`: its layout (ports as its first `up` chose them) and secrets,
 * resolved once. Throws one line when a state file is unusable. The implementation (every
 * component, zx) loads here, not with this interface: `tradeops --help` never pays for it.
 */
export async function openSandbox(options: SandboxOptions): Promise<Sandbox> {
  const { openLocalSandbox } = await import("./sandbox.ts");
  return openLocalSandbox(options);
}

/** A sandbox lives at `dir`: its settings or secrets file, or one of its processes. */
export async function sandboxExistsAt(dir: string): Promise<boolean> {
  return (await import("./sandbox.ts")).sandboxExistsAt(dir);
}

export interface SandboxOptions {
  /** The sandbox's directory (the CLI resolves `--dir`, the active sandbox, or `$TRADEOPS_HOME/sandbox`). */
  dir: string;
  /** Ports are base+1 … base+11 (a DR site: +12 … +14). @default 15400 for a new sandbox; an existing one keeps its own */
  basePort?: number;
  /** I5: `sync` commits wait for the standby (RPO 0). @default the sandbox's current mode ("sync" for a new one) */
  mode?: ReplicationMode;
  /** Add a DR site (I5, I6): pg-dr restored from the repository, its API at pilot light, the site switch. A sandbox that has one keeps it. */
  withDr?: boolean;
}

/** One step of a sandbox procedure, in the sandbox's own words; the runbooks wrap each as an engine step. */
export interface SandboxTask {
  /** A sentence: "Start the PostgreSQL primary pg-a". */
  name: string;
  /** What it will do, for dry-run plans. */
  plan?: string;
  /** Deletes data: the runbook asks for --yes. */
  destructive?: boolean;
  /** Its effect is already there (the component runs): skip it. */
  isDone?(): Promise<boolean>;
  /** Read-only; throws one line when the task cannot work here (nothing has been changed). */
  precondition?(): Promise<void>;
  action(log: (line: string) => void): Promise<void>;
  verify?(): Promise<void>;
  undo?: { plan: string; run(log: (line: string) => void): Promise<void> };
  /** What to do when it fails. */
  onFailure?: string;
}

export interface SandboxStatus {
  components: import("./component.ts").ComponentStatus[];
  /** A problem that does not stop `status`/`down` but would stop `up` (e.g. a damaged secrets.json). */
  warning?: string;
}

/** An opened sandbox: layout and secrets resolved once; the outputs derived from them. */
export interface Sandbox {
  readonly dir: string;
  /** The stack outputs of this sandbox (what `up` writes to outputs.json). */
  readonly outputs: StackOutputs;
  readonly outputsFile: string;
  /** Every component's log file is here. */
  readonly logsDir: string;
  /** The dir holds a sandbox (its settings or secrets file, or one of its processes). */
  exists(): boolean;
  /** `up`: prepare the dir, then every component in start order. */
  upTasks(): SandboxTask[];
  /** `down`: every component in reverse order, strays, and with `purge` the data. */
  downTasks(options?: { purge?: boolean }): SandboxTask[];
  /** The tasks of `up` (then a check that every component answers) / `down`, without the runbook engine (tests, bench scripts). */
  up(log?: (line: string) => void): Promise<void>;
  down(options?: { purge?: boolean }, log?: (line: string) => void): Promise<void>;
  status(): Promise<SandboxStatus>;
  /** The PostgreSQL node that accepts writes now (it changes after a failover). */
  primary(): Promise<PgNodeName>;
  /** Starts one component (already running: nothing to do); its dependencies must be up. */
  start(component: ComponentName, log?: (line: string) => void): Promise<void>;
  /** Stops one component by PID; resolves once its processes are gone. */
  stop(component: ComponentName, log?: (line: string) => void): Promise<void>;
  /** The live pid of a component's main process. */
  pid(component: ComponentName): number | undefined;
  /** What the failover runbooks do to the PostgreSQL pair. */
  readonly postgres: SandboxPostgres;
  /** The traffic endpoint (HAProxy) applications connect to. */
  readonly traffic: SandboxTraffic;
  /** Redis's snapshot files, for `backup --redis` and `restore --redis`. */
  readonly redis: SandboxRedis;
  /** The reference API's releases, for `rollback` and `upgrade`. */
  readonly app: SandboxApp;
  /** The DR site, when the sandbox has one (`up --with-dr`). */
  readonly dr: SandboxDr | undefined;
}

/**
 * I5, I6: the DR site — pg-dr (a standby fed from the repository), its API (component
 * `dr-ops-api`, at pilot light), and the site switch users go through (component `site-traffic`).
 */
export interface SandboxDr {
  /** The site recorded as taking traffic (sandbox.json). */
  activeSite(): SiteName;
  /** Records `site` as taking traffic: sandbox.json follows, and so does every later `up` (the DR site's components while it is active). */
  recordActiveSite(site: SiteName): Promise<void>;
  /** The site switch sends users to `site` alone; the other site's sessions are cut. */
  route(site: SiteName): Promise<void>;
  /** The site the switch sends users to now. */
  routedTo(): Promise<SiteName | undefined>;
  /** The stopped or crashed `node` of the pair follows pg-dr: pg_rewind from it (else a fresh backup of pg-dr restored with --delta), its standby (own slot), started; resolves once it streams. */
  followDr(node: PgNodeName, log?: (line: string) => void): Promise<"rewound" | "no rewind required" | "restored from a fresh backup of pg-dr">;
  /** pg-dr, stopped or not, is rewound from `source` if it went past the switch point, made a standby fed from the repository, and started. */
  backToStandby(source: PgNodeName, log?: (line: string) => void): Promise<"rewound" | "no rewind required">;
}

/** I4, Z7: the reference API's releases (sandbox/ops-api/releases.json) and which one runs. */
export interface SandboxApp {
  /** Every release the sandbox can run, oldest first. */
  releases(): string[];
  /** The release running now and the one before it, as recorded. */
  release(): { current: string; previous?: string };
  /** The schema version a release's migrations reach. */
  schemaVersionOf(version: string): number;
  /** Stops the API, records `version` as current (the one before as previous; outputs.json follows), starts it; resolves once it answers /health/ready. */
  deploy(version: string, log?: (line: string) => void): Promise<void>;
}

export interface SandboxRedis {
  /** The RDB file Redis writes on BGSAVE and loads at start. */
  rdbFile(): string;
  /** A path beside it (same filesystem) to download a snapshot into before it is put in place. */
  stagingFile(name: string): string;
  /** With Redis stopped: dump.rdb and the AOF dir are renamed aside (kept: the undo) and `staged` becomes dump.rdb; returns the set-aside paths. */
  placeRdb(staged: string): Promise<string[]>;
  /** Undoes `placeRdb` (Redis stopped). */
  putBack(aside: string[]): Promise<void>;
  /** Starts Redis with `appendonly no` on top of its config, so it loads dump.rdb rather than its AOF (field notes). */
  startWithoutAof(log?: (line: string) => void): Promise<void>;
  /** Free bytes on the filesystem of Redis's data dir. */
  freeBytes(): number;
}

export interface SandboxPostgres {
  /** The node the sandbox records as primary (what `up` starts as primary). */
  recordedPrimary(): PgNodeName;
  /** Records `node` as the primary: sandbox.json, outputs.json and pgbackrest.conf follow, and so does every later `up`. */
  recordPrimary(node: PgNodeName): Promise<void>;
  /** Makes the stopped `node` a standby of `primary` for its next start (standby.signal, primary_conninfo, its slot). */
  demote(node: PgNodeName, primary: PgNodeName): Promise<void>;
  /** `node` will start as a standby (its data dir has standby.signal). */
  demoted(node: PgNodeName): boolean;
  /** pg_rewind of the stopped `node` from `source`, leaving it a standby of `source`. */
  rewind(node: PgNodeName, source: PgNodeName, log?: (line: string) => void): Promise<"rewound" | "no rewind required">;
  /** Deletes the stopped `node`'s data, so its next start clones it fresh from the primary. */
  discard(node: PgNodeName): Promise<void>;
  /**
   * Starts `node`'s postmaster as its data dir is configured, with no role logic: what a careless
   * restart does. The drill uses it to prove a fenced old primary comes back read-only.
   */
  startProcess(node: PgNodeName): Promise<void>;
  /**
   * `tradeops restore`: renames the stopped `node`'s data dir to `<dataDir>.before-restore-<UTC stamp>`
   * (kept, never deleted: the undo) and leaves an empty one for pgBackRest; returns where it went.
   */
  setAside(node: PgNodeName): Promise<string>;
  /** Undoes `setAside`: the stopped `node`'s restored data dir is deleted and `aside` renamed back. */
  putBack(node: PgNodeName, aside: string): Promise<void>;
  /** Starts a `node` pgBackRest just restored (recovery.signal): its own config, no synchronous standby; recovery may still run. */
  startRestored(node: PgNodeName, log?: (line: string) => void): Promise<void>;
  /** Free bytes on the filesystem holding `node`'s data dir (and its set-aside copy). */
  freeBytes(node: PgNodeName): number;
}

export interface SandboxTraffic {
  /** No new session reaches `node`, and its sessions through the endpoint are cut. */
  fence(node: PgNodeName): Promise<void>;
  /** The endpoint routes to `node` alone. */
  route(node: PgNodeName): Promise<void>;
  /** The node the endpoint routes to now, as HAProxy reports it. */
  routedTo(): Promise<PgNodeName | undefined>;
}
