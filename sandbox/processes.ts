/**
 * Process control for the sandbox: detached daemons with a log file and a pid file, bounded
 * readiness waits whose errors carry the tail of the component's log, and a stop that never
 * leaves a process behind.
 *
 * Every process the sandbox starts carries `TRADEOPS_SANDBOX_DIR=<dir>` in its environment. That
 * marker is how we (a) refuse to signal a pid that was reused by an unrelated process and (b) find
 * strays after a crashed `up` — including PostgreSQL backends that outlive a killed postmaster.
 */
import { spawn } from "node:child_process";
import { accessSync, chownSync, closeSync, constants as fsConstants, existsSync, openSync, readdirSync, readFileSync, readlinkSync, readSync, statSync, unlinkSync, writeFileSync } from "node:fs";
import { request as httpsRequest } from "node:https";
import { connect } from "node:net";
import { delimiter, isAbsolute, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { $, type ProcessOutput } from "zx";
import type { SandboxLayout } from "./layout.ts";

export const SANDBOX_MARKER = "TRADEOPS_SANDBOX_DIR";

/** The environment every sandbox process gets: small and explicit, plus the ownership marker. */
export function sandboxEnv(layout: SandboxLayout, extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin",
    HOME: process.env.HOME ?? "/",
    LANG: "C.UTF-8",
    // zx runs commands through bash with stdio on socketpairs; Debian's bash takes a socket stdin
    // with SHLVL unset for an ssh session and sources ~/.bashrc first: +110 ms on every command.
    SHLVL: "1",
    ...(process.env.TZ ? { TZ: process.env.TZ } : {}),
    [SANDBOX_MARKER]: layout.dir,
    ...extra,
  };
}

// ---- one-shot commands --------------------------------------------------------------------------

/** Runs a command to completion through zx (arguments quoted by zx, never string-built). */
export async function run(
  layout: SandboxLayout,
  argv: string[],
  opts: { input?: string; env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {},
): Promise<ProcessOutput> {
  const [command, ...args] = argv;
  return $({
    quiet: true,
    nothrow: true,
    env: sandboxEnv(layout, opts.env),
    // "/": the dir may not exist yet (status of a fresh sandbox), and the postgres user may not enter ours.
    cwd: opts.cwd ?? "/",
    input: opts.input,
    timeout: opts.timeoutMs ? `${opts.timeoutMs}ms` : undefined,
  })`${command} ${args}`;
}

/** Same as `run`, throwing one line (the command, its exit code, its last stderr line) on failure. */
export async function runOrThrow(
  layout: SandboxLayout,
  argv: string[],
  opts: Parameters<typeof run>[2] & { what?: string } = {},
): Promise<string> {
  const result = await run(layout, argv, opts);
  if (result.exitCode !== 0) {
    const detail = lastLines(result.stderr || result.stdout, 2) || "no output";
    const what = opts.what ?? argv.filter((arg) => !arg.startsWith("-")).slice(0, 3).join(" ");
    throw new Error(`${what} failed (exit ${result.exitCode}): ${detail}`);
  }
  return result.stdout;
}

/** argv that runs a PostgreSQL/pgBackRest binary as the sandbox OS user (PostgreSQL refuses root). */
export function asOsUser(layout: SandboxLayout, command: string, args: string[]): string[] {
  return process.getuid?.() === 0 ? ["runuser", "-u", layout.osUser, "--", command, ...args] : [command, ...args];
}

/** True when `binary` (an absolute path, or a name on the PATH sandbox processes get) is executable. */
export function isExecutable(binary: string): boolean {
  const candidates = isAbsolute(binary)
    ? [binary]
    : (process.env.PATH ?? "/usr/local/bin:/usr/bin:/bin").split(delimiter).filter(Boolean).map((dir) => join(dir, binary));
  return candidates.some((file) => {
    try {
      accessSync(file, fsConstants.X_OK);
      return statSync(file).isFile();
    } catch {
      return false;
    }
  });
}

// ---- ownership ------------------------------------------------------------------------------------

export function osUserIds(user: string): { uid: number; gid: number } {
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  if (!line) throw new Error(`OS user ${user} does not exist; install PostgreSQL (it creates the postgres user)`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}

/** Hands paths to the OS user PostgreSQL runs as (no-op when we are that user). */
export function chownToOsUser(layout: SandboxLayout, ...paths: string[]): void {
  if (process.getuid?.() !== 0) return;
  const { uid, gid } = osUserIds(layout.osUser);
  for (const path of paths) chownSync(path, uid, gid);
}

// ---- daemons ------------------------------------------------------------------------------------

export interface DaemonSpec {
  name: string;
  command: string;
  args: string[];
  log: string;
  pidFile: string;
  env?: Record<string, string>;
  cwd?: string;
}

/**
 * Starts a long-running process detached from us (its own process group, stdio to its log), and
 * records its pid before anything else can fail, so `down` finds it even after a crashed `up`.
 * Plain spawn with an argv array: zx's `$` is for commands that finish.
 */
export function spawnDaemon(layout: SandboxLayout, spec: DaemonSpec): number {
  const logFd = openSync(spec.log, "a", 0o600);
  try {
    const child = spawn(spec.command, spec.args, {
      detached: true,
      stdio: ["ignore", logFd, logFd],
      env: sandboxEnv(layout, spec.env),
      cwd: spec.cwd ?? layout.dir,
    });
    child.on("error", () => {}); // ENOENT etc. surface below as a missing pid.
    if (child.pid === undefined) throw new Error(`${spec.name}: cannot start ${spec.command} (not installed or not executable)`);
    writePidFile(spec.pidFile, child.pid);
    child.unref();
    return child.pid;
  } finally {
    closeSync(logFd);
  }
}

/**
 * `<pid> <start time>`: the start time (clock ticks since boot, /proc/<pid>/stat field 22) tells
 * our process from a later one that got the same pid. Redis rewrites its process title over its
 * environment, so the environment marker alone cannot identify it.
 */
export function writePidFile(file: string, pid: number): void {
  writeFileSync(file, `${pid} ${processStartTime(pid) ?? ""}\n`, { mode: 0o644 });
}

export function readPidFile(file: string): number | undefined {
  return readPidRecord(file)?.pid;
}

function readPidRecord(file: string): { pid: number; startTime?: string } | undefined {
  try {
    const [pidText = "", startTime] = readFileSync(file, "utf8").split("\n")[0]!.trim().split(/\s+/);
    const pid = Number.parseInt(pidText, 10);
    return Number.isInteger(pid) && pid > 0 ? { pid, startTime: startTime || undefined } : undefined;
  } catch {
    return undefined;
  }
}

export function processStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[19];
  } catch {
    return undefined;
  }
}

export function removeFile(file: string): void {
  try {
    unlinkSync(file);
  } catch {
    // Already gone.
  }
}

/** Alive and not a zombie (a reaped-late child still answers kill 0). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

/** True when the process carries this sandbox's marker — so a reused pid is never signalled. */
export function belongsToSandbox(pid: number, dir: string): boolean {
  try {
    const environ = readFileSync(`/proc/${pid}/environ`, "latin1");
    return environ.split("\0").includes(`${SANDBOX_MARKER}=${dir}`);
  } catch {
    return false;
  }
}

/** The live pid recorded in `pidFile` that is really ours (same start time, or our marker), or undefined. */
export function livePid(pidFile: string, dir: string): number | undefined {
  const record = readPidRecord(pidFile);
  if (!record || !isAlive(record.pid)) return undefined;
  const ours = record.startTime ? processStartTime(record.pid) === record.startTime : belongsToSandbox(record.pid, dir);
  return ours ? record.pid : undefined;
}

/** SIGTERM, then SIGKILL after `graceMs`; resolves once the process is gone. */
export async function stopProcess(pid: number, graceMs = 10_000): Promise<void> {
  sendSignal(pid, "SIGTERM");
  if (await waitUntil(async () => !isAlive(pid), graceMs, 50)) return;
  sendSignal(pid, "SIGKILL");
  if (!(await waitUntil(async () => !isAlive(pid), 5_000, 50))) {
    throw new Error(`pid ${pid} survived SIGKILL for 5 s (uninterruptible I/O?); check \`ps -o stat,cmd -p ${pid}\``);
  }
}

export function sendSignal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch {
    // Gone in between.
  }
}

/** Every live process carrying this sandbox's marker, except us and our ancestors. */
export function markedProcesses(dir: string): number[] {
  return otherLivePids().filter((pid) => belongsToSandbox(pid, dir));
}

/**
 * Live processes of `uid` whose working directory is `cwd`. PostgreSQL backends rewrite their
 * process title over their environment (so they lose the marker) but all chdir into the data dir.
 */
export function processesWorkingIn(cwd: string, uid: number | undefined): number[] {
  return otherLivePids().filter((pid) => {
    try {
      return readlinkSync(`/proc/${pid}/cwd`) === cwd && (uid === undefined || statSync(`/proc/${pid}`).uid === uid);
    } catch {
      return false;
    }
  });
}

function otherLivePids(): number[] {
  const spared = new Set(ancestors(process.pid));
  return readdirSync("/proc")
    .filter((entry) => /^\d+$/.test(entry))
    .map(Number)
    .filter((pid) => !spared.has(pid) && isAlive(pid));
}

function ancestors(pid: number): number[] {
  const chain = [pid];
  for (let current = pid; current > 1; ) {
    try {
      const stat = readFileSync(`/proc/${current}/stat`, "utf8");
      current = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      chain.push(current);
    } catch {
      break;
    }
  }
  return chain;
}

/** SIGTERM, then SIGKILL after `graceMs`, all at once; resolves when every one is gone. */
export async function stopAll(pids: number[], graceMs = 3_000): Promise<void> {
  await Promise.all(pids.map((pid) => stopProcess(pid, graceMs)));
}

// ---- readiness ----------------------------------------------------------------------------------

/** Polls `probe` until it is true or `timeoutMs` passed; returns the last answer. */
export async function waitUntil(probe: () => Promise<boolean>, timeoutMs: number, intervalMs = 100): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await probe().catch(() => false)) return true;
    if (Date.now() >= deadline) return false;
    await sleep(intervalMs);
  }
}

/** One line for a component that did not come up: what, how long, and the last lines of its log. */
export function notReady(component: string, expected: string, timeoutMs: number, log: string): Error {
  const tail = logTail(log);
  return new Error(
    `${component} did not ${expected} within ${Math.round(timeoutMs / 1000)} s` +
      `${tail ? ` (log: ${tail})` : ""}; see ${log}`,
  );
}

/** The last non-empty lines of a log file, joined on one line. */
export function logTail(file: string, lines = 2): string {
  if (!existsSync(file)) return "";
  const size = statSync(file).size;
  const length = Math.min(size, 4096);
  const buffer = Buffer.alloc(length);
  const fd = openSync(file, "r");
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  return lastLines(buffer.toString("utf8"), lines);
}

function lastLines(text: string, count: number): string {
  const line = text
    .split("\n")
    .map((entry) => entry.trim())
    .filter(Boolean)
    .slice(-count)
    .join(" | ");
  return line.length > 300 ? `…${line.slice(-300)}` : line;
}

export function portOpen(host: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (open: boolean) => {
      socket.destroy();
      resolve(open);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once("connect", () => done(true));
    socket.once("error", () => done(false));
  });
}

/** Refuses to start on a port something else holds: the error names both. */
export async function assertPortFree(host: string, port: number, component: string): Promise<void> {
  if (await portOpen(host, port)) {
    throw new Error(`port ${port} for ${component} is already taken by another process; stop it or use another --base-port`);
  }
}

export async function httpStatus(url: string, timeoutMs = 1000): Promise<number | undefined> {
  try {
    const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    await response.arrayBuffer();
    return response.status;
  } catch {
    return undefined;
  }
}

/** Status of an HTTPS URL whose certificate is signed by `caFile` (fetch cannot take a CA). */
export function httpsStatus(url: string, caFile: string, timeoutMs = 1000): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = httpsRequest(url, { ca: readFileSync(caFile), timeout: timeoutMs }, (response) => {
      response.resume();
      response.once("end", () => resolve(response.statusCode));
    });
    request.once("timeout", () => request.destroy());
    request.once("error", () => resolve(undefined));
    request.end();
  });
}

/** Stops the daemon recorded in `pidFile` (SIGTERM, then SIGKILL) and removes the pid file. */
export async function stopDaemon(layout: SandboxLayout, files: { pidFile: string }, graceMs = 10_000): Promise<void> {
  const pid = livePid(files.pidFile, layout.dir);
  if (pid !== undefined) await stopProcess(pid, graceMs);
  removeFile(files.pidFile);
}
