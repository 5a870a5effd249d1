/**
 * A throwaway PostgreSQL for `backups verify --restore-test` (C8): restored from the repository
 * into a scratch dir on a free port, started, checked, stopped and deleted — never the stack's own
 * nodes or data dirs. One implementation per platform; the sandbox's runs it on this machine as the
 * database OS user, beside the sandbox's data.
 */
import { chownSync, existsSync, mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { join, resolve } from "node:path";
import type { StackOutputs } from "../../contract/outputs.ts";
import { Refusal, StepFailure, oneLine } from "../engine/errors.ts";
import { dbNodeShell, pgbackrest } from "./db-node.ts";

export interface ScratchPostgres {
  /** Its data dir (created by `create`). */
  readonly dir: string;
  /** Where it listens, on 127.0.0.1 (free when chosen). */
  readonly host: string;
  readonly port: number;
  /** An empty dir the database OS user owns. */
  create(): Promise<void>;
  /** pgBackRest restore of backup `label` to its consistency point, promoted, with archiving off (it must never push WAL into the stack's repository). */
  restore(label: string, signal?: AbortSignal): Promise<void>;
  /** Starts it on `port`, its own socket dir, no synchronous standby; resolves once it accepts connections. */
  start(signal?: AbortSignal): Promise<void>;
  /** Its postmaster is alive. */
  running(): boolean;
  /** Stops it if it runs (fast, then immediate) and deletes its dir; safe to call at any point, and twice. */
  remove(log: (line: string) => void): Promise<void>;
}

/** A restore test may take its time on a big backup; a start that takes longer is stuck. */
const START_TIMEOUT_S = 300;
const STOP_TIMEOUT_S = 30;

export async function scratchPostgresOf(outputs: StackOutputs, stamp: string): Promise<ScratchPostgres> {
  const { platform } = outputs;
  switch (platform.kind) {
    case "sandbox":
      return sandboxScratch(outputs, platform, stamp, await freePort());
    case "docker":
    case "kubernetes":
      throw new Refusal(
        `the restore test on ${platform.kind} stacks is not automated yet`,
        "by hand, on a spare host: `pgbackrest restore --pg1-path=<empty dir> --set=<label> --type=immediate --target-action=promote --archive-mode=off`, start it on a free port, count rows per table, stop it, delete the dir",
      );
  }
}

type SandboxPlatform = Extract<StackOutputs["platform"], { kind: "sandbox" }>;

function sandboxScratch(outputs: StackOutputs, platform: SandboxPlatform, stamp: string, port: number): ScratchPostgres {
  const shell = dbNodeShell(outputs);
  const node = outputs.database.primary;
  // The sandbox dir is reachable by the OS user (its preflight checks that); the stack's data dirs are never this one.
  const dir = join(platform.dir, `restore-test-${stamp}`);
  const asDbUser = (argv: string[], signal?: AbortSignal) => shell.exec(node, argv, signal);
  const nodeDirs = [outputs.database.primary, outputs.database.standby].filter((n) => n !== undefined).map((n) => resolve(n.dataDir));
  const postmasterPid = (): number | undefined => {
    const file = join(dir, "postmaster.pid");
    if (!existsSync(file)) return undefined;
    const pid = Number(readFileSync(file, "utf8").split("\n")[0]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  };
  const alive = (pid: number | undefined) => {
    if (pid === undefined) return false;
    try {
      process.kill(pid, 0);
      return true;
    } catch (error) {
      return (error as NodeJS.ErrnoException).code === "EPERM";
    }
  };
  return {
    dir,
    host: "127.0.0.1",
    port,
    create: async () => {
      if (nodeDirs.some((nodeDir) => nodeDir === resolve(dir))) throw new Refusal(`the scratch dir ${dir} is a data dir of the stack`);
      mkdirSync(dir, { mode: 0o700 });
      if (process.getuid?.() === 0) {
        const { $ } = await import("zx");
        const [uid, gid] = await Promise.all([$({ quiet: true })`id -u ${platform.osUser}`, $({ quiet: true })`id -g ${platform.osUser}`]);
        chownSync(dir, Number(uid.stdout.trim()), Number(gid.stdout.trim()));
      }
    },
    restore: async (label, signal) => {
      await pgbackrest(outputs, shell)("restore", [`--pg1-path=${dir}`, `--set=${label}`, "--type=immediate", "--target-action=promote", "--archive-mode=off"], signal);
    },
    start: async (signal) => {
      // The restored postgresql.conf is the primary's: its port, socket dir, synchronous standby and archiving are overridden here.
      const settings = [`port=${port}`, "listen_addresses=127.0.0.1", `unix_socket_directories=${dir}`, "synchronous_standby_names=''", "archive_mode=off", "cluster_name=restore-test"];
      await asDbUser(["pg_ctl", "start", "-D", dir, "-w", "-t", String(START_TIMEOUT_S), "-l", join(dir, "restore-test.log"), "-o", settings.map((s) => `-c ${s}`).join(" ")], signal).catch(
        (error: unknown) => {
          throw new StepFailure(`the restored cluster did not start: ${oneLine(error)}`, `see ${join(dir, "restore-test.log")} (it is deleted with the scratch dir)`);
        },
      );
    },
    running: () => alive(postmasterPid()),
    remove: async (log) => {
      const pid = postmasterPid();
      if (alive(pid)) {
        log(`stopping the scratch PostgreSQL (pid ${pid})`);
        await asDbUser(["pg_ctl", "stop", "-D", dir, "-m", "fast", "-w", "-t", String(STOP_TIMEOUT_S)]).catch(() => asDbUser(["pg_ctl", "stop", "-D", dir, "-m", "immediate", "-w"]));
      }
      // The postmaster removes its pid file as it exits (kill 0 cannot tell: an exited postmaster may wait as a zombie to be reaped).
      if (postmasterPid() !== undefined && alive(pid)) throw new StepFailure(`the scratch PostgreSQL (pid ${pid}) did not stop`, `kill ${pid}, then delete ${dir}`);
      if (existsSync(dir)) log(`deleting ${dir}`);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A port nothing listens on now (the kernel's choice), for a server started right after. */
export function freePort(): Promise<number> {
  return new Promise((done, fail) => {
    const server = createServer();
    server.once("error", fail);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => done(port));
    });
  });
}
