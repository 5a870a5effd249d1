/**
 * HAProxy, the traffic endpoint applications use: routes to the live primary, keeps the other
 * node present but disabled so failover switches traffic through the admin socket.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { connect } from "node:net";
import { POSTGRES_BACKEND, renderHaproxyCfg } from "../../infra/config-files/haproxy.ts";
import type { SandboxComponent } from "../component.ts";
import { peerOf, type PgNodeName, type SandboxLayout } from "../layout.ts";
import { assertPortFree, livePid, notReady, portOpen, run, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";
import { inRecovery, pgBin, pgBinaries } from "./postgres.ts";

const READY_TIMEOUT_MS = 10_000;

/**
 * The node that accepts writes now. Usually pg-a; after a failover runbook promoted pg-b, a
 * restarted HAProxy must not send traffic back to the old primary.
 */
export async function livePrimary(layout: SandboxLayout): Promise<PgNodeName> {
  const [a, b] = await Promise.all([inRecovery(layout, layout.pg["pg-a"]), inRecovery(layout, layout.pg["pg-b"])]);
  if (a === false && b === false) {
    throw new Error("pg-a and pg-b both accept writes (split brain); fence one before starting HAProxy");
  }
  if (a === false) return "pg-a";
  if (b === false) return "pg-b";
  throw new Error("no PostgreSQL primary is up: start pg-a first");
}

export const haproxy: SandboxComponent = {
  name: "haproxy",
  startStep: () => "Start HAProxy, the traffic endpoint in front of the primary",
  stopStep: () => "Stop HAProxy",
  port: (layout) => layout.ports.traffic,
  requires: (layout) => [{ binary: "haproxy", debianPackage: "haproxy" }, ...pgBinaries(layout, "pg_isready")],
  logFile: (layout) => layout.haproxy.log,
  pid: (layout) => livePid(layout.haproxy.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.haproxy.pidFile, layout.dir) !== undefined && (await portOpen(layout.host, layout.ports.traffic)),

  async start({ layout, log }) {
    await assertPortFree(layout.host, layout.ports.traffic, "HAProxy");
    const primary = await livePrimary(layout);
    log(`traffic → ${primary}; ${primary === "pg-a" ? "pg-b" : "pg-a"} present but disabled`);
    mkdirSync(layout.haproxy.dir, { recursive: true, mode: 0o755 });
    const servers = (["pg-a", "pg-b"] as const).map((name) => ({
      name,
      host: layout.host,
      port: layout.pg[name].port,
      enabled: name === primary,
    }));
    const cfg = renderHaproxyCfg({ bind: { host: layout.host, port: layout.ports.traffic }, servers, statsSocket: layout.haproxy.socket });
    writeFileSync(layout.haproxy.config, cfg, { mode: 0o644 });
    // -db: stay in the foreground (we hold the pid) and log to the log file.
    spawnDaemon(layout, { name: "haproxy", command: "haproxy", args: ["-db", "-f", layout.haproxy.config], log: layout.haproxy.log, pidFile: layout.haproxy.pidFile });
    if (!(await waitUntil(() => portOpen(layout.host, layout.ports.traffic), READY_TIMEOUT_MS))) {
      throw notReady("HAProxy", `listen on port ${layout.ports.traffic}`, READY_TIMEOUT_MS, layout.haproxy.log);
    }
  },

  async verify({ layout }) {
    // A PostgreSQL answer through the frontend proves the backend routes to a live server.
    const reaches = await waitUntil(async () => {
      const result = await run(layout, [pgBin(layout, "pg_isready"), "-q", "-h", layout.host, "-p", String(layout.ports.traffic), "-t", "1"]);
      return result.exitCode === 0;
    }, 5_000, 200);
    if (!reaches) throw new Error(`port ${layout.ports.traffic} (HAProxy) does not reach PostgreSQL; see ${layout.haproxy.log}`);
  },

  stop: (layout) => stopDaemon(layout, layout.haproxy),
};

// ---- the traffic switch (failover, switchover) ------------------------------------------------------

/** One command on HAProxy's admin socket (`stats socket … level admin`); the answer's text. */
export async function adminCommand(socketPath: string, command: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(socketPath);
    let answer = "";
    socket.setTimeout(3_000, () => socket.destroy(new Error(`HAProxy's admin socket ${socketPath} did not answer within 3 s`)));
    socket.on("data", (chunk) => (answer += chunk));
    socket.on("end", () => resolve(answer.trim()));
    socket.on("error", (error) => reject(new Error(`HAProxy's admin socket ${socketPath}: ${error.message}`)));
    socket.end(`${command}\n`);
  });
}

/**
 * Takes `node` out of the traffic endpoint: no new session reaches it (maintenance), and the
 * sessions it has through HAProxy are cut, so an application holding a pooled connection cannot
 * write to it either.
 */
export async function fenceFromTraffic(layout: SandboxLayout, node: PgNodeName): Promise<void> {
  await adminCommand(layout.haproxy.socket, `set server ${POSTGRES_BACKEND}/${node} state maint`);
  await adminCommand(layout.haproxy.socket, `shutdown sessions server ${POSTGRES_BACKEND}/${node}`);
}

/** Routes the traffic endpoint to `node` alone (the other node fenced first). */
export async function routeTraffic(layout: SandboxLayout, node: PgNodeName): Promise<void> {
  await fenceFromTraffic(layout, peerOf(node));
  await adminCommand(layout.haproxy.socket, `set server ${POSTGRES_BACKEND}/${node} state ready`);
}

/** The node the endpoint routes to now (admin state 0: not in maintenance), as HAProxy reports it. */
export async function trafficRoute(layout: SandboxLayout): Promise<PgNodeName | undefined> {
  const ready = await readyServers(layout.haproxy.socket, POSTGRES_BACKEND);
  return ready.length === 1 && (ready[0] === "pg-a" || ready[0] === "pg-b") ? ready[0] : undefined;
}

/**
 * HAProxy's maintenance flags (SRV_ADMF_MAINT: forced, inherited, resolution). A server `disabled`
 * in the config keeps the configuration flag (0x04) after `state ready` takes it out of maintenance.
 */
const MAINTENANCE_FLAGS = 0x23;

/** The servers of `backend` not in maintenance, as HAProxy reports them. */
export async function readyServers(socketPath: string, backend: string): Promise<string[]> {
  const state = await adminCommand(socketPath, `show servers state ${backend}`);
  // Columns: be_id be_name srv_id srv_name srv_addr srv_op_state srv_admin_state …
  return state
    .split("\n")
    .filter((line) => line.trim() && !line.startsWith("#"))
    .map((line) => line.trim().split(/\s+/))
    .filter((columns) => columns.length > 6 && (Number(columns[6]) & MAINTENANCE_FLAGS) === 0)
    .map((columns) => columns[3]!);
}
