/**
 * What would stop `up` half-way, checked before anything is created: the dir is a file, a binary
 * is missing, the postgres OS user cannot reach the dir, the socket path is too long, or another
 * process holds a port. All of them at once, so one fix-and-retry round is enough.
 */
import { existsSync, statSync } from "node:fs";
import { dirname, join } from "node:path";
import type { RequiredBinary, SandboxComponent } from "./component.ts";
import type { SandboxLayout } from "./layout.ts";
import { isExecutable, osUserIds, portOpen, run } from "./processes.ts";

/** A --dir that exists but is a file (or a socket…) is never a sandbox; every command says so first. */
export function notADirectory(dir: string): string | undefined {
  try {
    return statSync(dir).isDirectory() ? undefined : `${dir} exists and is not a directory: --dir must name the sandbox's directory`;
  } catch {
    return undefined;
  }
}

/** As root, PostgreSQL and pgBackRest run as the OS user through runuser (util-linux, in /usr/sbin). */
const RUNUSER: RequiredBinary = { binary: "runuser", debianPackage: "util-linux" };

/**
 * Why `up` of `components` cannot work here, checked before anything is created (empty: go
 * ahead): --dir is a file, a binary is missing, the postgres OS user cannot reach the dir, the
 * socket path is too long, or another process holds the port of a component that is not running.
 * All of them at once, so one fix-and-retry round is enough.
 */
export async function upBlockers(layout: SandboxLayout, components: readonly SandboxComponent[]): Promise<string[]> {
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
  const need = (required: RequiredBinary, neededBy: string) => {
    if (!missing.has(required.binary) && !isExecutable(required.binary)) missing.set(required.binary, { ...required, neededBy });
  };
  if (process.getuid?.() === 0) need(RUNUSER, "PostgreSQL as the postgres OS user");
  for (const component of components) {
    for (const required of component.requires?.(layout) ?? []) need(required, component.name);
  }
  const packages = [...new Set([...missing.values()].map((required) => required.debianPackage))];
  if (!packages.length) return [];
  const named = [...missing.values()].map(({ binary, neededBy }) => `${binary} (${neededBy})`).join(", ");
  // runuser is in /usr/sbin, which some shells (su without -l, cron) leave off PATH.
  return [`not installed or not on PATH: ${named}; install with \`sudo apt-get install -y ${packages.join(" ")}\`, and check PATH`];
}

/** As root, PostgreSQL and pgBackRest run as the postgres user: it must be able to reach the dir. */
async function osUserCannotReach(layout: SandboxLayout): Promise<string[]> {
  // Without runuser the check cannot run; missingBinaries names runuser instead of blaming the dir.
  if (process.getuid?.() !== 0 || !isExecutable(RUNUSER.binary)) return [];
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

/** The one check a prepared sandbox needs before restarting `component`: its port is free. */
export function busyPort(layout: SandboxLayout, component: SandboxComponent): Promise<string[]> {
  return busyPorts(layout, [component]);
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

