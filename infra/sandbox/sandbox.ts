/**
 * The local sandbox: real processes on 127.0.0.1, started in dependency order and stopped in
 * reverse. Entry points for the runbooks (runbooks/sandbox.ts), tests and bench scripts.
 *
 * Order matters: the S3 store comes first because pg-a's archive_command pushes WAL into it, and
 * it goes last because PostgreSQL's shutdown hangs on archive-push retries without it (field notes).
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { z } from "zod";
import type { StackOutputs } from "../../contract/outputs.ts";
import type { ComponentStatus, Sandbox, SandboxComponent } from "./component.ts";
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
import { chownToOsUser, markedProcesses, run, stopAll } from "./processes.ts";
import { loadOrMintSecrets, readSecrets } from "./secrets.ts";

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
  const file = join(dir, "sandbox.json");
  if (!existsSync(file)) return undefined;
  const parsed = SandboxSettings.safeParse(JSON.parse(readFileSync(file, "utf8")));
  if (!parsed.success) throw new Error(`${file} is damaged (${parsed.error.issues[0]?.path.join(".")}); fix it or use another --dir`);
  return parsed.data;
}

/**
 * The layout of the sandbox at `opts.dir`: ports and binaries as its first `up` chose them, the
 * replication mode as asked now (a later `up --async` switches an existing pair).
 */
export function resolveSandboxLayout(opts: SandboxOptions = {}): SandboxLayout {
  const dir = resolve(opts.dir ?? defaultSandboxDir());
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
 * The stack outputs of the sandbox at `opts.dir`, before or after `up`: what the CLI hands the
 * runbooks as context. Mints the secrets on first use, as `up` would.
 */
export function sandboxStackOutputs(opts: SandboxOptions = {}): StackOutputs {
  const { layout, secrets } = openSandbox(opts);
  return sandboxOutputs(layout, secrets);
}

/**
 * Directories and ownership the components expect, checked before anything is written: the
 * postgres OS user must be able to enter the dir, and the socket path must fit. Idempotent.
 */
export async function prepareSandboxDirs(layout: SandboxLayout): Promise<void> {
  // 0755: the postgres OS user must traverse it (the engine's lock may have created it 0700).
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  chmodSync(layout.dir, 0o755);
  for (const dir of [layout.logsDir, layout.runDir, layout.pgSocketDir]) mkdirSync(dir, { recursive: true, mode: 0o755 });
  chownToOsUser(layout, layout.pgSocketDir);
  await assertOsUserCanEnter(layout);
  assertSocketPathFits(layout);
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

async function assertOsUserCanEnter(layout: SandboxLayout): Promise<void> {
  if (process.getuid?.() !== 0) return;
  const result = await run(layout, ["runuser", "-u", layout.osUser, "--", "test", "-x", layout.pgSocketDir]);
  if (result.exitCode !== 0) {
    throw new Error(`the ${layout.osUser} OS user cannot enter ${layout.dir} (a parent directory is not traversable); use --dir under /tmp or /srv`);
  }
}

/** A unix socket path is limited to 107 bytes; a deep --dir breaks PostgreSQL's socket. */
function assertSocketPathFits(layout: SandboxLayout): void {
  const socket = join(layout.pgSocketDir, `.s.PGSQL.${layout.ports.pgA}`);
  if (Buffer.byteLength(socket) > 107) {
    throw new Error(`sandbox dir ${layout.dir} is too deep for a unix socket (${socket} is over 107 bytes); use a shorter --dir`);
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
  const sandbox = openSandbox(opts, log);
  await prepareSandbox(sandbox);
  const started: string[] = [];
  for (const component of SANDBOX_COMPONENTS.filter(({ name }) => names.includes(name))) {
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
  if (!existsSync(layout.files.settings) && readSecrets(layout) === undefined) {
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
