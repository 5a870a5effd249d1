/**
 * Running a command on a database node (pgBackRest, pg_ctl, pg_rewind): the one platform concern
 * the runbooks need for PostgreSQL. One implementation per platform; runbooks never branch on it.
 */
import type { ProcessPromise } from "zx";
import type { PgNode, StackOutputs } from "../../contract/outputs.ts";
import { StepFailure, oneLine } from "../engine/errors.ts";

export interface DbNodeShell {
  /** Runs argv on the node as the database OS user; rejects with the command's last error line; stops it when `signal` aborts. */
  exec(node: PgNode, argv: string[], signal?: AbortSignal): Promise<string>;
  /** The port PostgreSQL listens on as seen from the node itself (outputs carry the client-side one). */
  pgPort(node: PgNode): number;
}

/** PostgreSQL's port inside a container or pod. */
const PG_CONTAINER_PORT = 5432;

export function dbNodeShell(outputs: StackOutputs): DbNodeShell {
  const platform = outputs.platform;
  switch (platform.kind) {
    case "sandbox":
      return {
        // PostgreSQL refuses root; its tools run as the sandbox's OS user, with the sandbox's binaries first on PATH.
        exec: (_node, argv, signal) => {
          const asUser = process.getuid?.() === 0 ? ["runuser", "-u", platform.osUser, "--"] : [];
          // SHLVL: without it Debian's bash, on zx's socketpair stdin, sources ~/.bashrc (+110 ms a command).
          const env = { ...process.env, PATH: `${platform.pgBinDir}:${process.env.PATH}`, SHLVL: process.env.SHLVL ?? "1" };
          return run(argv[0]!, [...asUser, ...argv], { env, signal });
        },
        pgPort: (node) => node.port,
      };
    case "docker":
      return {
        exec: (node, argv, signal) => run(argv[0]!, ["docker", "exec", "-u", "postgres", containerFor(platform.containers, node), ...argv], { signal }),
        pgPort: () => PG_CONTAINER_PORT,
      };
    case "kubernetes":
      return {
        exec: (node, argv, signal) =>
          run(
            argv[0]!,
            [
            "kubectl",
            ...(platform.context ? ["--context", platform.context] : []),
            "-n",
            platform.namespace,
            "exec",
            node.host.split(".")[0]!,
            "--",
            ...argv,
            ],
            { signal },
          ),
        pgPort: () => PG_CONTAINER_PORT,
      };
  }
}

function containerFor(containers: { primary: string; standby?: string }, node: PgNode): string {
  return node.role === "standby" && containers.standby ? containers.standby : containers.primary;
}

/** `tool` names the command in errors ("pgbackrest exited 56: …"), not the wrapper that ran it. */
async function run(tool: string, argv: string[], options: { env?: NodeJS.ProcessEnv; signal?: AbortSignal } = {}): Promise<string> {
  const { $ } = await import("zx");
  const { signal } = options;
  if (signal?.aborted) throw signal.reason;
  // A process group of its own: an interruption stops the tool and every worker it started
  // (pgBackRest's process-max workers), not just the runuser in front of them.
  const child = $({ quiet: true, nothrow: true, env: options.env, detached: true })`${argv}`;
  const stop = () => void stopGroup(child);
  signal?.addEventListener("abort", stop, { once: true });
  const result = await child.finally(() => signal?.removeEventListener("abort", stop));
  if (signal?.aborted) throw signal.reason;
  if (result.exitCode !== 0) {
    const lastLine = (result.stderr || result.stdout).trim().split("\n").pop() ?? "";
    throw new StepFailure(`${tool} exited ${result.exitCode}: ${oneLine(lastLine)}`);
  }
  return result.stdout;
}

/** SIGTERM to the group (pgBackRest stops cleanly, its partial backup is not listed), SIGKILL after STOP_GRACE_MS. */
const STOP_GRACE_MS = 8_000;

async function stopGroup(child: ProcessPromise): Promise<void> {
  // The group by its leader's pid (zx's own kill walks the tree through a shell: Node's DEP0190 warning on the operator's terminal).
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      if (child.pid) process.kill(-child.pid, signal);
    } catch {
      // Already gone.
    }
  };
  signalGroup("SIGTERM");
  let timer: NodeJS.Timeout | undefined;
  const exited = await Promise.race([
    child.then(() => true, () => true),
    new Promise<boolean>((done) => (timer = setTimeout(() => done(false), STOP_GRACE_MS))),
  ]);
  clearTimeout(timer);
  if (!exited) signalGroup("SIGKILL");
}

/** pgBackRest commands that connect to PostgreSQL; the others (info, expire…) refuse pg options. */
const TALKS_TO_POSTGRES = new Set(["backup", "check", "stanza-create", "stanza-upgrade"]);

/**
 * pgBackRest's own deadlines for the quick commands (its defaults are 60 s per S3 I/O and 30 min
 * per query): `check` and `info` that take longer are stuck, not busy. A backup keeps the defaults:
 * its queries (a checkpoint, the stop of the backup) legitimately take long on a big cluster.
 */
const QUICK_COMMAND_TIMEOUTS: Record<string, string[]> = {
  check: ["--io-timeout=10", "--db-timeout=30"],
  info: ["--io-timeout=10"],
};

/**
 * pgBackRest on the primary's node, with the stack's config file and stanza. Where the primary and
 * the repository are is taken from the outputs, not trusted to the config file: a config that
 * points elsewhere can then never back up (or restore) another cluster in this stack's name.
 */
export function pgbackrest(outputs: StackOutputs, shell: DbNodeShell = dbNodeShell(outputs)) {
  const { backup, database } = outputs;
  const base = [
    ...(backup.configFile ? [`--config=${backup.configFile}`] : []),
    `--stanza=${backup.stanza}`,
    `--repo1-s3-endpoint=${backup.endpoint}`,
    `--repo1-storage-port=${backup.port}`,
    `--repo1-s3-bucket=${backup.bucket}`,
    `--repo1-s3-region=${backup.region}`,
    `--repo1-path=${backup.prefix}`,
  ];
  const primary = [`--pg1-port=${shell.pgPort(database.primary)}`];
  return (command: string, options: string[] = [], signal?: AbortSignal) =>
    shell.exec(
      database.primary,
      ["pgbackrest", ...base, ...(TALKS_TO_POSTGRES.has(command) ? primary : []), ...(QUICK_COMMAND_TIMEOUTS[command] ?? []), ...options, command],
      signal,
    );
}
