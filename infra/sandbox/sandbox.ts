/**
 * The local sandbox: real processes on 127.0.0.1, started in dependency order and stopped in
 * reverse. Entry points for the runbooks (runbooks/sandbox.ts), tests and bench scripts.
 *
 * Order matters: the S3 store comes first because pg-a's archive_command pushes WAL into it, and
 * it goes last because PostgreSQL's shutdown hangs on archive-push retries without it (field notes).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import type { ComponentStatus, RequiredBinary, Sandbox, SandboxComponent } from "./component.ts";
import { backupStanza, writePgbackrestConf } from "./components/backup-stanza.ts";
import { clusterProcesses } from "./components/postgres.ts";
import { haproxy } from "./components/haproxy.ts";
import { opsApi } from "./components/ops-api.ts";
import { pgPrimary } from "./components/pg-primary.ts";
import { pgStandby } from "./components/pg-standby.ts";
import { prometheus } from "./components/prometheus.ts";
import { redis } from "./components/redis.ts";
import { s3Store } from "./components/s3-store.ts";
import { COMPONENT_NAMES, defaultSandboxDir, sandboxLayout, type ComponentName, type SandboxLayout, type SandboxLayoutOptions } from "./layout.ts";
import { sandboxOutputs } from "./outputs.ts";
import { chownToOsUser, isExecutable, markedProcesses, osUserIds, portOpen, run, stopAll } from "./processes.ts";
import { loadOrMintSecrets } from "./secrets.ts";
import { readStateFile } from "./state-file.ts";

/** Start order; `down` walks it backwards. */
export const SANDBOX_COMPONENTS: readonly SandboxComponent[] = [
  s3Store,
  pgPrimary,
  backupStanza,
  pgStandby,
  haproxy,
  redis,
  opsApi,
  prometheus,
];

export type SandboxOptions = SandboxLayoutOptions;

/** What the first `up` chose; later commands on the same dir reuse it. */
const SandboxSettings = z.object({
  basePort: z.number().int(),
  ports: z.record(z.string(), z.number().int()),
  mode: z.enum(["sync", "async"]),
  pgBinDir: z.string(),
});

function readSettings(dir: string): z.infer<typeof SandboxSettings> | undefined {
  const remedy =
    `it records the ports and PostgreSQL binaries of the first \`up\` ({"basePort", "ports", "mode", "pgBinDir"}): ` +
    `restore it, or delete it and pass the same --base-port to \`sandbox up\` again`;
  return readStateFile(join(dir, "sandbox.json"), SandboxSettings, remedy);
}

/** A --dir that exists but is a file (or a socket…) is never a sandbox; every command says so first. */
export function notADirectory(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : `${dir} exists and is not a directory: --dir must name the sandbox's directory`;
  } catch {
    return undefined;
  }
}

/**
 * The layout of the sandbox at `opts.dir`: ports and binaries as its first `up` chose them, the
 * replication mode as asked now (a later `up --async` switches an existing pair).
 */
export function resolveSandboxLayout(opts: SandboxOptions = {}): SandboxLayout {
  const dir = resolve(opts.dir ?? defaultSandboxDir());
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
  });
}

/** Layout + secrets (minted and saved on the first call) for `up`. */
export function openSandbox(opts: SandboxOptions = {}, log: (line: string) => void = () => {}): Sandbox {
  const layout = resolveSandboxLayout(opts);
  return { layout, secrets: loadOrMintSecrets(layout), log };
}

/**
 * Why `up` of `components` cannot work here, checked before anything is created (empty: go
 * ahead): --dir is a file, a binary is missing, the postgres OS user cannot reach the dir, the
 * socket path is too long, or another process holds the port of a component that is not running.
 * All of them at once, so one fix-and-retry round is enough.
 */
export async function upBlockers(layout: SandboxLayout, components: readonly SandboxComponent[] = SANDBOX_COMPONENTS): Promise<string[]> {
  const fileInTheWay = notADirectory(layout.dir);
  return [
    ...(fileInTheWay ? [fileInTheWay] : []),
    ...missingBinaries(layout, components),
    ...(await osUserCannotReach(layout)),
    ...socketPathTooLong(layout),
    ...(await busyPorts(layout, components)),
  ];
}

function missingBinaries(layout: SandboxLayout, components: readonly SandboxComponent[]): string[] {
  const missing = new Map<string, RequiredBinary & { neededBy: string }>();
  for (const component of components) {
    for (const required of component.requires?.(layout) ?? []) {
      if (!missing.has(required.binary) && !isExecutable(required.binary)) missing.set(required.binary, { ...required, neededBy: component.name });
    }
  }
  const packages = [...new Set([...missing.values()].map((required) => required.debianPackage))];
  if (!packages.length) return [];
  const named = [...missing.values()].map(({ binary, neededBy }) => `${binary} (${neededBy})`).join(", ");
  return [`not installed: ${named}; install with \`sudo apt-get install -y ${packages.join(" ")}\``];
}

/** As root, PostgreSQL and pgBackRest run as the postgres user: it must be able to reach the dir. */
async function osUserCannotReach(layout: SandboxLayout): Promise<string[]> {
  if (process.getuid?.() !== 0) return [];
  try {
    osUserIds(layout.osUser);
  } catch (error) {
    return [(error as Error).message];
  }
  // The dir itself is made 0755 by `up`; what it cannot fix is a parent (e.g. /root, 0700).
  const parent = nearestExisting(dirname(layout.dir));
  const result = await run(layout, ["runuser", "-u", layout.osUser, "--", "test", "-x", parent]);
  if (result.exitCode === 0) return [];
  return [
    `the ${layout.osUser} OS user (PostgreSQL runs as it under root) cannot reach ${layout.dir}: ${parent} is not traversable for it; ` +
      `use a --dir under /tmp or /srv (or export TRADEOPS_HOME=/srv/tradeops)`,
  ];
}

function nearestExisting(path: string): string {
  for (let current = path; ; current = dirname(current)) {
    if (existsSync(current) || current === dirname(current)) return current;
  }
}

/** A unix socket path is limited to 107 bytes; a deep --dir breaks PostgreSQL's socket. */
function socketPathTooLong(layout: SandboxLayout): string[] {
  const socket = join(layout.pgSocketDir, `.s.PGSQL.${layout.ports.pgA}`);
  if (Buffer.byteLength(socket) <= 107) return [];
  return [`sandbox dir ${layout.dir} is too deep for a unix socket (${socket} is over 107 bytes); use a shorter --dir`];
}

/** Ports of components that are not running (ours keep theirs) that something else listens on. */
async function busyPorts(layout: SandboxLayout, components: readonly SandboxComponent[]): Promise<string[]> {
  const checks = components.map(async (component) => {
    const port = component.port?.(layout);
    if (port === undefined || component.pid?.(layout) !== undefined) return undefined;
    return (await portOpen(layout.host, port)) ? `port ${port} for ${component.name} is taken by another process` : undefined;
  });
  const busy = (await Promise.all(checks)).filter((line): line is string => line !== undefined);
  return busy.length ? [`${busy.join(", ")}; stop the process that holds it, or give a new sandbox dir another --base-port`] : [];
}

/** Directories and ownership the components expect. Idempotent; `upBlockers` is its precondition. */
export async function prepareSandboxDirs(layout: SandboxLayout): Promise<void> {
  // 0755: the postgres OS user must traverse it (the engine's lock may have created it 0700).
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  chmodSync(layout.dir, 0o755);
  for (const dir of [layout.logsDir, layout.runDir, layout.pgSocketDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownToOsUser(layout, layout.pgSocketDir);
  await assertOsUserCanEnter(layout);
}

/** sandbox.json, outputs.json (0600) and pgbackrest.conf. Idempotent. */
export function writeSandboxFiles(sandbox: Sandbox): void {
  const { layout } = sandbox;
  const settings = { basePort: layout.basePort, ports: layout.ports, mode: layout.mode, pgBinDir: layout.pgBinDir };
  writeFileSync(layout.files.settings, `${JSON.stringify(settings, null, 2)}\n`, { mode: 0o644 });
  writeFileSync(layout.files.outputs, `${JSON.stringify(sandboxOutputs(layout, sandbox.secrets), null, 2)}\n`, { mode: 0o600 });
  chmodSync(layout.files.outputs, 0o600);
  // pg-a's archive_command names this file: it must exist before pg-a's first WAL switch.
  writePgbackrestConf(layout);
}

export async function prepareSandbox(sandbox: Sandbox): Promise<void> {
  await prepareSandboxDirs(sandbox.layout);
  writeSandboxFiles(sandbox);
}

/** Verifies what `prepareSandboxDirs` made: PostgreSQL's socket dir is reachable for its OS user. */
async function assertOsUserCanEnter(layout: SandboxLayout): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const result = await run(layout, ["runuser", "-u", layout.osUser, "--", "test", "-x", layout.pgSocketDir]);
  if (result.exitCode !== 0) {
    throw new Error(`the ${layout.osUser} OS user cannot enter ${layout.pgSocketDir} (a parent directory is not traversable); use --dir under /tmp or /srv`);
  }
}

// ---- status ---------------------------------------------------------------------------------------

export async function componentStatus(layout: SandboxLayout, component: SandboxComponent): Promise<ComponentStatus> {
  const base = { name: component.name, port: component.port?.(layout) };
  const up = await component.isUp(layout);
  const detail = up ? await component.describe?.(layout).catch(() => undefined) : undefined;
  return { ...base, state: up ? "up" : "down", pid: component.pid?.(layout), detail };
}

export async function sandboxStatus(layout: SandboxLayout): Promise<ComponentStatus[]> {
  const statuses: ComponentStatus[] = [];
  // One at a time: the stanza probe needs the S3 store, and order reads like `up`.
  for (const component of SANDBOX_COMPONENTS) statuses.push(await componentStatus(layout, component));
  return statuses;
}

// ---- up / down without the runbook engine (bench scripts) --------------------------------------------

/** Brings every component up; already running ones are left alone. Returns what it started. */
export async function upSandbox(opts: SandboxOptions = {}, log: (line: string) => void = () => {}): Promise<string[]> {
  return upComponents(COMPONENT_NAMES, opts, log);
}

/**
 * Brings the named components up, in start order whatever the order of `names`; already running
 * ones are left alone. Returns what it started. Dependencies are not added: name them (pg-a
 * archives into s3 through the stanza; without them every stop of pg-a waits out archive-push).
 */
export async function upComponents(
  names: readonly ComponentName[],
  opts: SandboxOptions = {},
  log: (line: string) => void = () => {},
): Promise<string[]> {
  const components = SANDBOX_COMPONENTS.filter(({ name }) => names.includes(name));
  const layout = resolveSandboxLayout(opts);
  const blockers = await upBlockers(layout, components);
  if (blockers.length) throw new Error(`cannot start the sandbox in ${layout.dir}: ${blockers.join("; ")}`);
  const sandbox = openSandbox(opts, log);
  await prepareSandbox(sandbox);
  const started: string[] = [];
  for (const component of components) {
    if (await (component.isDone ?? ((s: Sandbox) => component.isUp(s.layout)))(sandbox)) continue;
    await component.start(sandbox);
    await component.verify(sandbox);
    started.push(component.name);
  }
  return started;
}

/**
 * Stops every component in reverse order, then any stray process of the sandbox. A component that
 * fails to stop does not keep the others running: its error is thrown after the sweep.
 */
export async function downSandbox(layout: SandboxLayout, opts: { purge?: boolean } = {}, log: (line: string) => void = () => {}): Promise<void> {
  const failures: unknown[] = [];
  for (const component of [...SANDBOX_COMPONENTS].reverse()) {
    await component.stop?.(layout, log).catch((error: unknown) => failures.push(error));
  }
  const strays = await sweepStrays(layout);
  if (strays.length) log(`stopped ${strays.length} stray process(es): ${strays.join(", ")}`);
  if (failures.length) throw failures[0];
  if (opts.purge) purgeSandbox(layout);
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
  ]);
  return [...pids];
}

/** Stops whatever of the sandbox is still running (after a crashed `up`, a killed postmaster…). */
export async function sweepStrays(layout: SandboxLayout): Promise<number[]> {
  const strays = sandboxProcesses(layout);
  await stopAll(strays);
  return strays;
}

/**
 * Deletes the sandbox dir — only one that is recognisably a sandbox (never a mistyped --dir).
 * `keep` spares named top-level files (the runbook engine appends its last audit line after the step).
 */
export function purgeSandbox(layout: SandboxLayout, opts: { keep?: string[] } = {}): void {
  if (isPurged(layout, opts.keep)) return;
  // Presence, not validity: a sandbox with a damaged secrets.json must still be deletable.
  if (!existsSync(layout.files.settings) && !existsSync(layout.files.secrets)) {
    throw new Error(`${layout.dir} has no sandbox.json or secrets.json: not a sandbox, not deleting it`);
  }
  const keep = new Set(opts.keep ?? []);
  if (!keep.size) return rmSync(layout.dir, { recursive: true, force: true });
  for (const entry of readdirSync(layout.dir)) {
    if (!keep.has(entry)) rmSync(join(layout.dir, entry), { recursive: true, force: true });
  }
}

/** Gone, or nothing left but the kept files. */
export function isPurged(layout: SandboxLayout, keep: string[] = []): boolean {
  return !existsSync(layout.dir) || readdirSync(layout.dir).every((entry) => keep.includes(entry));
}
