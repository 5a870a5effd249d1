/**
 * What the doctor reads from the machine a component runs on, rather than from the component:
 * who holds a port, free space under a path, the kernel's OOM kills, a process's environment. One
 * implementation per platform; where a platform has no such signal the call throws `NotAvailable`
 * saying why, and the check reports "not available" instead of passing.
 */
import { readFileSync, statfsSync } from "node:fs";
import { $ } from "zx";
import type { StackOutputs } from "../../contract/outputs.ts";

/** The signal does not exist here; the message says why ("on docker: …"). */
export class NotAvailable extends Error {
  override name = "NotAvailable";
}

export interface Listener {
  pid: number;
  /** The holder's command line, e.g. `node server.js`. */
  command: string;
}

export interface HostSignals {
  /** The process listening on TCP `port` of the host, or undefined when none does. */
  listenerOn(port: number): Promise<Listener | undefined>;
  /** Free and total bytes of the filesystem holding `path`. */
  freeSpace(path: string): { freeBytes: number; totalBytes: number };
  /** How many times the kernel OOM-killed a process in the cgroup of `pid`. */
  oomKills(pid: number): number;
}

export function hostSignals(outputs: StackOutputs): HostSignals {
  const { platform } = outputs;
  if (platform.kind === "sandbox") return localHost;
  const why = (signal: string) =>
    new NotAvailable(
      platform.kind === "docker"
        ? `on docker, ${signal} is read inside the container (\`docker exec\`), which tradeops does not do for a read-only check`
        : `on kubernetes, ${signal} belongs to the node; read it from the node exporter or \`kubectl describe pod\``,
    );
  return {
    listenerOn: async () => {
      throw why("who holds a port");
    },
    freeSpace: () => {
      throw why("the free space of a data dir");
    },
    oomKills: () => {
      throw why("the OOM-kill count");
    },
  };
}

/** The sandbox: everything runs on this machine. */
const localHost: HostSignals = {
  async listenerOn(port) {
    // ss names the holder with its pid (as root, for any user's socket).
    const out = await $({ quiet: true, nothrow: true, timeout: "2s" })`ss -ltnpH ${`sport = :${port}`}`;
    const holder = /\("([^"]+)",pid=(\d+)/.exec(out.stdout);
    if (!holder) return out.stdout.trim() ? { pid: 0, command: "(a process ss cannot name)" } : undefined;
    const pid = Number(holder[2]);
    return { pid, command: commandLine(pid) ?? holder[1]! };
  },
  freeSpace(path) {
    const fs = statfsSync(path);
    return { freeBytes: fs.bavail * fs.bsize, totalBytes: fs.blocks * fs.bsize };
  },
  oomKills(pid) {
    // cgroup v2: "0::/path"; memory.events counts oom_kill for the whole group.
    const group = readFileSync(`/proc/${pid}/cgroup`, "utf8").split("\n").find((line) => line.startsWith("0::"));
    if (!group) throw new NotAvailable("no cgroup v2 on this machine: the kernel's OOM kills are only in `dmesg`");
    try {
      const events = readFileSync(`/sys/fs/cgroup${group.slice(3)}/memory.events`, "utf8");
      return Number(/^oom_kill (\d+)$/m.exec(events)?.[1] ?? 0);
    } catch {
      throw new NotAvailable("the memory controller is not enabled for this cgroup: OOM kills are only in `dmesg`");
    }
  },
};

function commandLine(pid: number): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").filter(Boolean);
    const line = argv.join(" ");
    return line.length > 120 ? `${line.slice(0, 119)}…` : line;
  } catch {
    return undefined;
  }
}
