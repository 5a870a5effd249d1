/**
 * The local sandbox (the implementation behind index.ts): real processes on 127.0.0.1, started in
 * dependency order and stopped in reverse.
 *
 * Order matters: the S3 store comes first because pg-a's archive_command pushes WAL into it, and
 * it goes last because PostgreSQL's shutdown hangs on archive-push retries without it (field notes).
 *
 * One direction: the layout and the secrets are resolved once when the sandbox is opened (secrets
 * read from secrets.json, or minted in memory for a new sandbox), `up` saves them, and the outputs
 * are derived from them.
 */
import { chmodSync, existsSync, mkdirSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { basename, join, resolve } from "node:path";
import { z } from "zod";
import type { ComponentContext, ComponentStatus, SandboxComponent } from "./component.ts";
import { backupStanza, writePgbackrestConf } from "./components/backup-stanza.ts";
import { fenceFromTraffic, haproxy, livePrimary, routeTraffic, trafficRoute } from "./components/haproxy.ts";
import { drOpsApi, opsApi, writeDrOpsApiEnv } from "./components/ops-api.ts";
import { drBackToStandby, followDrNode, pgDr } from "./components/pg-dr.ts";
import { routeSite, siteRoute, siteTraffic } from "./components/site-traffic.ts";
import { demoteNode, discardNode, freeBytesFor, pgNode, putBackNode, rewindNode, setAsideNode, startRestoredNode } from "./components/pg-node.ts";
import { clusterProcesses, isInitialised, startCluster } from "./components/postgres.ts";
import { prometheus } from "./components/prometheus.ts";
import { alertmanager } from "./components/alertmanager.ts";
import { EXPORTERS } from "./components/exporters.ts";
import { placeRdb, putBackRdb, rdbFileOf, redis, startRedisWithoutAof } from "./components/redis.ts";
import { s3Store } from "./components/s3-store.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import type { Sandbox, SandboxApp, SandboxDr, SandboxOptions, SandboxPostgres, SandboxRedis, SandboxStatus, SandboxTask, SandboxTraffic } from "./index.ts";
import { PORT_OFFSETS, sandboxLayout, standbyOf, type ComponentName, type SandboxLayout, type SandboxLayoutOptions } from "./layout.ts";
import { sandboxOutputs } from "./outputs.ts";
import { recordRelease, releaseCatalogue, releaseNamed, releaseState } from "./releases.ts";
import { busyPort, notADirectory, upBlockers } from "./preflight.ts";
import { chownToOsUser, markedProcesses, run, stopAll } from "./processes.ts";
import { mintSecrets, readSecrets, saveSecrets, secretsRemedy, type SandboxSecrets } from "./secrets.ts";
import { readStateFile, SandboxStateFileError } from "./state-file.ts";

const PG_NODES = { "pg-a": pgNode("pg-a"), "pg-b": pgNode("pg-b") };

/**
 * Start order; `down` walks it backwards. The recorded primary starts before the stanza (its
 * check archives a WAL segment) and the standby after it, whichever node is which. A DR site's
 * node comes after the stanza (it is restored from the repository) and its API stays at pilot
 * light — until `dr activate` records the DR site as active: then `up` starts the DR site (its
 * node as the primary, its API) and leaves the primary site's nodes and API to `dr failback`.
 */
export function componentsOf(layout: SandboxLayout): SandboxComponent[] {
  const monitoring = [...EXPORTERS, alertmanager, prometheus];
  if (layout.dr?.activeSite === "dr") return [s3Store, redis, pgDr, drOpsApi, siteTraffic, ...monitoring];
  const drSite = layout.dr ? [pgDr, siteTraffic] : [];
  return [s3Store, PG_NODES[layout.primary], backupStanza, PG_NODES[standbyOf(layout)], haproxy, redis, opsApi, ...drSite, ...monitoring];
}

/** `down`'s order: `up`'s backwards, with whatever `up` would not start but may run (the DR site's API, the other site's). */
function stopOrder(layout: SandboxLayout): SandboxComponent[] {
  const started = componentsOf(layout);
  const others = layout.dr ? [drOpsApi, opsApi, haproxy, PG_NODES["pg-b"], PG_NODES["pg-a"], pgDr].filter((component) => !started.includes(component)) : [];
  return [...others, ...started.reverse()];
}

const port = z.number().int().min(1).max(65_535);

/** What the first `up` chose; later commands on the same dir reuse it. Checked as strictly as a flag. */
const SandboxSettings = z.object({
  basePort: z.number().int().min(1024).max(65_528),
  // Partial: a sandbox created before a component was added has no port for it (base port + its offset, then).
  ports: z.partialRecord(z.enum(Object.keys(PORT_OFFSETS) as [keyof typeof PORT_OFFSETS]), port),
  mode: z.enum(["sync", "async"]),
  pgBinDir: z.string().min(1),
  /** Written by a failover or switchover: which node takes writes. */
  primary: z.enum(["pg-a", "pg-b"]).default("pg-a"),
  /** The sandbox has a DR site (`up --with-dr`); written by `dr activate` / `dr failback`: which site takes traffic. */
  dr: z.boolean().default(false),
  activeSite: z.enum(["primary", "dr"]).default("primary"),
});

function readSettings(dir: string): z.infer<typeof SandboxSettings> | undefined {
  const remedy =
    `it records the ports and PostgreSQL binaries of the first \`up\` ({"basePort", "ports", "mode", "pgBinDir"}): ` +
    `restore it, or delete it and pass the same --base-port to \`sandbox up\` again`;
  return readStateFile(join(dir, "sandbox.json"), SandboxSettings, remedy);
}

/**
 * The layout of the sandbox at `opts.dir`: ports and binaries as its first `up` chose them, the
 * replication mode as asked now, else as it is (a later `up --async` switches an existing pair).
 */
export function resolveSandboxLayout(opts: SandboxLayoutOptions): SandboxLayout {
  const dir = resolve(opts.dir);
  const fileInTheWay = notADirectory(dir);
  if (fileInTheWay) throw new Error(fileInTheWay);
  const settings = readSettings(dir);
  if (settings && opts.basePort !== undefined && opts.basePort !== settings.basePort) {
    throw new Error(`sandbox ${dir} was created with base port ${settings.basePort}, not ${opts.basePort}; drop --base-port or use another --dir`);
  }
  return sandboxLayout({
    dir,
    basePort: opts.basePort ?? settings?.basePort,
    ports: { ...settings?.ports, ...opts.ports },
    mode: opts.mode ?? settings?.mode,
    pgBinDir: opts.pgBinDir ?? settings?.pgBinDir,
    primary: opts.primary ?? settings?.primary,
    // Once a sandbox has a DR site it keeps it; `--with-dr` adds one to an existing sandbox.
    withDr: opts.withDr || settings?.dr,
    activeSite: opts.activeSite ?? settings?.activeSite,
  });
}

/** A sandbox lives at `dir`: its settings or secrets file, or one of its processes. */
export function sandboxExistsAt(dir: string): boolean {
  const layout = sandboxLayout({ dir });
  return existsSync(layout.files.settings) || existsSync(layout.files.secrets) || sandboxProcesses(layout).length > 0;
}

/** Opens the sandbox at `options.dir`; throws one line when its state files are unusable. */
export function openLocalSandbox(options: SandboxOptions): Sandbox {
  return new LocalSandbox(resolveSandboxLayout(options));
}

/** secrets.json as far as it is usable: its secrets, or why `up` must not run with it. */
function resolveSecrets(layout: SandboxLayout): { secrets: SandboxSecrets; saved: boolean; problem?: SandboxStateFileError } {
  try {
    const saved = readSecrets(layout);
    if (saved) return { secrets: saved, saved: true };
  } catch (error) {
    // down and status work by PID and need no credential: placeholders stand in, up refuses.
    if (error instanceof SandboxStateFileError) return { secrets: mintSecrets(), saved: false, problem: error };
    throw error;
  }
  return { secrets: mintSecrets(), saved: false };
}

class LocalSandbox implements Sandbox {
  readonly dir: string;
  outputs: StackOutputs;
  readonly outputsFile: string;
  readonly logsDir: string;
  private readonly secrets: SandboxSecrets;
  private readonly secretsSaved: boolean;
  private readonly secretsProblem?: SandboxStateFileError;

  private layout: SandboxLayout;

  constructor(layout: SandboxLayout) {
    this.layout = layout;
    this.dir = layout.dir;
    this.outputsFile = layout.files.outputs;
    this.logsDir = layout.logsDir;
    const { secrets, saved, problem } = resolveSecrets(layout);
    this.secrets = secrets;
    this.secretsSaved = saved;
    this.secretsProblem = problem;
    this.outputs = sandboxOutputs(layout, secrets);
  }

  exists(): boolean {
    return sandboxExistsAt(this.dir);
  }

  private context(log: (line: string) => void): ComponentContext {
    return { layout: this.layout, secrets: this.secrets, log };
  }

  // ---- up -----------------------------------------------------------------------------------------

  upTasks(): SandboxTask[] {
    // up starts processes with these credentials: a damaged file stops it before any task.
    if (this.secretsProblem) throw this.secretsProblem;
    return [this.prepareTask(), ...componentsOf(this.layout).map((component) => this.startTask(component))];
  }

  private prepareTask(): SandboxTask {
    const { layout } = this;
    return {
      name: `Prepare the sandbox directory ${layout.dir}`,
      plan:
        "check binaries, free ports and the postgres user's access first; create dirs (postgres-owned where PostgreSQL writes), " +
        "keep secrets.json (0600), write outputs.json and pgbackrest.conf",
      // Everything that would stop `up` half-way, before the first file is written.
      precondition: async () => {
        const missingSecrets = this.missingSecrets();
        if (missingSecrets) throw new Error(missingSecrets);
        const blockers = await upBlockers(layout, componentsOf(layout));
        if (blockers.length) throw new Error(blockers.join("; "));
      },
      action: async () => {
        await prepareSandboxDirs(layout);
        saveSecrets(layout, this.secrets);
        writeSandboxFiles(layout, this.secrets);
      },
      verify: async () => {
        if (!existsSync(layout.files.outputs)) throw new Error(`${layout.files.outputs} was not written`);
      },
      onFailure: "fix the cause above (or pick another --dir), then re-run `tradeops sandbox up`",
    };
  }

  private startTask(component: SandboxComponent): SandboxTask {
    const { layout } = this;
    const quiet = this.context(() => {});
    return {
      name: component.startStep(layout),
      isDone: () => (component.isDone ? component.isDone(quiet) : component.isUp(layout)),
      action: (log) => component.start(this.context(log)),
      verify: () => component.verify(quiet),
      undo: component.stop &&
        component.stopStep && {
          plan: component.stopStep(layout),
          run: (log) => component.stop!(layout, log),
        },
      onFailure: `read ${component.logFile(layout)}, fix the cause, then re-run \`tradeops sandbox up\` (running components are skipped) or \`tradeops sandbox down\``,
    };
  }

  // ---- down ---------------------------------------------------------------------------------------

  downTasks(options: { purge?: boolean } = {}): SandboxTask[] {
    const stops = stopOrder(this.layout).flatMap((component) => (component.stop ? [this.stopTask(component)] : []));
    return [...stops, this.sweepTask(), ...(options.purge ? [this.purgeTask()] : [])];
  }

  private stopTask(component: SandboxComponent): SandboxTask {
    const { layout } = this;
    return {
      name: component.stopStep!(layout),
      isDone: async () => component.pid?.(layout) === undefined && !(await component.isUp(layout)),
      action: (log) => component.stop!(layout, log),
      verify: async () => {
        const pid = component.pid?.(layout);
        if (pid !== undefined) throw new Error(`${component.name} (pid ${pid}) is still running`);
      },
      onFailure: `\`tradeops sandbox status --dir ${layout.dir}\` shows its pid; kill it by hand, then re-run \`tradeops sandbox down\``,
    };
  }

  private sweepTask(): SandboxTask {
    const { layout } = this;
    return {
      name: "Stop any stray sandbox process (left by a crashed up or a killed postmaster)",
      isDone: async () => sandboxProcesses(layout).length === 0,
      action: async (log) => {
        const strays = sandboxProcesses(layout);
        await stopAll(strays);
        log(`stopped pid(s) ${strays.join(", ")}`);
      },
      verify: async () => {
        const left = sandboxProcesses(layout);
        if (left.length) throw new Error(`pid(s) ${left.join(", ")} of the sandbox survived SIGKILL`);
      },
    };
  }

  private purgeTask(): SandboxTask {
    const { layout } = this;
    return {
      name: `Delete the sandbox directory ${layout.dir} and all its data`,
      plan: "delete data dirs, logs, secrets and outputs",
      destructive: true,
      isDone: async () => !existsSync(layout.dir),
      precondition: async () => {
        // Presence, not validity: a sandbox with a damaged secrets.json must still be deletable.
        if (!existsSync(layout.files.settings) && !existsSync(layout.files.secrets)) {
          throw new Error(`${layout.dir} has no sandbox.json or secrets.json: not a sandbox, not deleting it`);
        }
      },
      action: async () => rmSync(layout.dir, { recursive: true, force: true }),
    };
  }

  // ---- without the engine -------------------------------------------------------------------------

  async up(log: (line: string) => void = () => {}): Promise<void> {
    for (const task of this.upTasks()) await runTask(task, log);
    const down = (await this.status()).components.filter((c) => c.state === "down").map((c) => c.name);
    if (down.length) throw new Error(`${down.join(", ")} ${down.length === 1 ? "is" : "are"} down after up; see their logs in ${this.layout.logsDir}`);
  }

  /** Every task is tried: a component that fails to stop does not keep the others running. */
  async down(options: { purge?: boolean } = {}, log: (line: string) => void = () => {}): Promise<void> {
    const failures: unknown[] = [];
    for (const task of this.downTasks(options)) await runTask(task, log).catch((error: unknown) => failures.push(error));
    if (failures.length) throw failures[0];
  }

  // ---- what the runbooks ask ----------------------------------------------------------------------

  async status(): Promise<SandboxStatus> {
    const components: ComponentStatus[] = [];
    // One at a time: the stanza probe needs the S3 store, and order reads like `up`.
    for (const component of componentsOf(this.layout)) components.push(await componentStatus(this.layout, component));
    return { components, warning: this.secretsProblem?.message ?? this.missingSecrets() };
  }

  /** #15: data initialised with secrets that are gone; `up` must not mint new ones over it. */
  private missingSecrets(): string | undefined {
    // Read live: `up` saves the file in the same run that reports the status.
    if (this.secretsSaved || existsSync(this.layout.files.secrets) || !isInitialised(this.layout.pg["pg-a"])) return undefined;
    return `${this.layout.files.secrets} is missing but the sandbox has data (${this.layout.pg["pg-a"].dataDir}); ${secretsRemedy(this.layout)}`;
  }

  primary() {
    return livePrimary(this.layout);
  }

  async start(name: ComponentName, log: (line: string) => void = () => {}): Promise<void> {
    const component = componentNamed(name);
    // A prepared sandbox (a failover restarting one node) needs only its port free; a new one the full check.
    const prepared = existsSync(this.layout.files.settings) && existsSync(this.layout.files.secrets);
    const blockers = prepared ? await busyPort(this.layout, component) : await upBlockers(this.layout, [component]);
    if (blockers.length) throw new Error(`cannot start ${name} in ${this.layout.dir}: ${blockers.join("; ")}`);
    if (!prepared) {
      await prepareSandboxDirs(this.layout);
      saveSecrets(this.layout, this.secrets);
      writeSandboxFiles(this.layout, this.secrets);
    }
    await runTask(this.startTask(component), log);
  }

  async stop(name: ComponentName, log: (line: string) => void = () => {}): Promise<void> {
    await componentNamed(name).stop?.(this.layout, log);
  }

  pid(name: ComponentName): number | undefined {
    return componentNamed(name).pid?.(this.layout);
  }

  readonly postgres: SandboxPostgres = {
    recordedPrimary: () => this.layout.primary,
    recordPrimary: async (node) => {
      this.layout = { ...this.layout, primary: node };
      this.outputs = sandboxOutputs(this.layout, this.secrets);
      writeSandboxFiles(this.layout, this.secrets);
    },
    demote: (node, primary) => demoteNode(this.context(() => {}), node, primary),
    demoted: (node) => existsSync(join(this.layout.pg[node].dataDir, "standby.signal")),
    rewind: (node, source, log = () => {}) => rewindNode(this.context(log), node, source),
    discard: (node) => discardNode(this.context(() => {}), node),
    startProcess: (node) => startCluster(this.layout, this.layout.pg[node]),
    setAside: (node) => setAsideNode(this.context(() => {}), node),
    putBack: (node, aside) => putBackNode(this.context(() => {}), node, aside),
    startRestored: (node, log = () => {}) => startRestoredNode(this.context(log), node),
    freeBytes: (node) => freeBytesFor(this.context(() => {}), node),
  };

  readonly redis: SandboxRedis = {
    rdbFile: () => rdbFileOf(this.layout),
    stagingFile: (name) => join(this.layout.redis.dataDir, `${basename(name)}.restoring`),
    placeRdb: async (staged) => placeRdb(this.layout, staged),
    putBack: async (aside) => putBackRdb(this.layout, aside),
    startWithoutAof: (log = () => {}) => startRedisWithoutAof(this.context(log)),
    freeBytes: () => {
      const fs = statfsSync(this.layout.redis.dataDir);
      return Number(fs.bavail) * Number(fs.bsize);
    },
  };

  readonly app: SandboxApp = {
    releases: () => releaseCatalogue().releases.map((release) => release.version),
    release: () => releaseState(this.layout),
    schemaVersionOf: (version) => releaseNamed(version).schemaVersion,
    deploy: async (version, log = () => {}) => {
      releaseNamed(version);
      await opsApi.stop?.(this.layout, log);
      recordRelease(this.layout, version);
      // The outputs name the current and previous release: every later command reads the new ones.
      this.outputs = sandboxOutputs(this.layout, this.secrets);
      writeSandboxFiles(this.layout, this.secrets);
      await runTask(this.startTask(opsApi), log);
    },
  };

  get dr(): SandboxDr | undefined {
    if (!this.layout.dr) return undefined;
    return {
      activeSite: () => this.layout.dr!.activeSite,
      recordActiveSite: async (site) => {
        this.layout = { ...this.layout, dr: { ...this.layout.dr!, activeSite: site } };
        writeSandboxFiles(this.layout, this.secrets);
      },
      route: (site) => routeSite(this.layout, site),
      routedTo: () => siteRoute(this.layout),
      followDr: (node, log = () => {}) => followDrNode(this.context(log), node),
      backToStandby: (source, log = () => {}) => drBackToStandby(this.context(log), source),
    };
  }

  readonly traffic: SandboxTraffic = {
    fence: (node) => fenceFromTraffic(this.layout, node),
    route: (node) => routeTraffic(this.layout, node),
    routedTo: () => trafficRoute(this.layout),
  };
}

function componentNamed(name: ComponentName): SandboxComponent {
  return [...Object.values(PG_NODES), s3Store, backupStanza, haproxy, redis, opsApi, pgDr, drOpsApi, siteTraffic, ...EXPORTERS, alertmanager, prometheus].find((component) => component.name === name)!;
}

async function runTask(task: SandboxTask, log: (line: string) => void): Promise<void> {
  if (await task.isDone?.()) return;
  await task.precondition?.();
  await task.action(log);
  await task.verify?.();
}

/** Directories and ownership the components expect. Idempotent; `upBlockers` is its precondition. */
async function prepareSandboxDirs(layout: SandboxLayout): Promise<void> {
  // 0755: the postgres OS user must traverse it.
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  chmodSync(layout.dir, 0o755);
  for (const dir of [layout.logsDir, layout.runDir, layout.pgSocketDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownToOsUser(layout, layout.pgSocketDir);
  await assertOsUserCanEnter(layout);
}

/** sandbox.json, outputs.json (0600) and pgbackrest.conf. Idempotent. */
function writeSandboxFiles(layout: SandboxLayout, secrets: SandboxSecrets): void {
  const settings = {
    basePort: layout.basePort,
    ports: layout.ports,
    mode: layout.mode,
    pgBinDir: layout.pgBinDir,
    primary: layout.primary,
    dr: layout.dr !== undefined,
    activeSite: layout.dr?.activeSite ?? "primary",
  };
  writeFileSync(layout.files.settings, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o644 });
  writeFileSync(layout.files.outputs, `${JSON.stringify(sandboxOutputs(layout, secrets), null, 2)}\n`, { mode: 0o600 });
  chmodSync(layout.files.outputs, 0o600);
  // pg-a's archive_command names this file: it must exist before pg-a's first WAL switch.
  writePgbackrestConf(layout);
  // The DR site's API is configured with the site (pilot light): activation only starts it.
  if (layout.dr) writeDrOpsApiEnv(layout, secrets);
}

/** Verifies what `prepareSandboxDirs` made: PostgreSQL's socket dir is reachable for its OS user. */
async function assertOsUserCanEnter(layout: SandboxLayout): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const result = await run(layout, ["runuser", "-u", layout.osUser, "--", "test", "-x", layout.pgSocketDir]);
  if (result.exitCode !== 0) {
    throw new Error(`the ${layout.osUser} OS user cannot enter ${layout.pgSocketDir} (a parent directory is not traversable); use --dir under /tmp or /srv`);
  }
}

async function componentStatus(layout: SandboxLayout, component: SandboxComponent): Promise<ComponentStatus> {
  const base = { name: component.name, port: component.port?.(layout) };
  const up = await component.isUp(layout);
  const detail = up ? await component.describe?.(layout).catch(() => undefined) : undefined;
  return { ...base, state: up ? "up" : "down", pid: component.pid?.(layout), detail };
}

/**
 * Every process of this sandbox still alive: those carrying its marker, and PostgreSQL processes
 * working in its data dirs (backends lose the marker when they set their process title).
 */
export function sandboxProcesses(layout: SandboxLayout): number[] {
  const pids = new Set([
    ...markedProcesses(layout.dir),
    ...clusterProcesses(layout, layout.pg["pg-a"]),
    ...clusterProcesses(layout, layout.pg["pg-b"]),
    ...(layout.dr ? clusterProcesses(layout, layout.dr.node) : []),
  ]);
  return [...pids];
}
