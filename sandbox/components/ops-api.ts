/**
 * The reference ops API (sandbox/ops-api/main.ts): the trading bot's health, metrics,
 * kill switch and positions, connected to PostgreSQL through HAProxy and to Redis.
 */
import { existsSync, writeFileSync } from "node:fs";
import type { SandboxComponent } from "../component.ts";
import { projectRoot } from "../../contract/home.ts";
import type { SandboxLayout } from "../layout.ts";
import { releaseEnv } from "../releases.ts";
import { assertPortFree, httpStatus, livePid, notReady, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 30_000;

const baseUrl = (layout: SandboxLayout) => `http://${layout.host}:${layout.ports.opsApi}`;

export const opsApi: SandboxComponent = {
  name: "ops-api",
  startStep: () => "Start the reference ops API",
  stopStep: () => "Stop the ops API",
  port: (layout) => layout.ports.opsApi,
  logFile: (layout) => layout.opsApi.log,
  pid: (layout) => livePid(layout.opsApi.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.opsApi.pidFile, layout.dir) !== undefined && (await httpStatus(`${baseUrl(layout)}/health`)) === 200,

  async start({ layout, secrets }) {
    await assertPortFree(layout.host, layout.ports.opsApi, "the ops API");
    const { user, name } = layout.database;
    // T2: the API starts from its env file, as from a compose `.env`: written by the first start,
    // then it is what the API gets (a variable taken out of it stops the API at start, naming it).
    if (!existsSync(layout.opsApi.envFile)) {
      const env = {
        OPS_API_HOST: layout.host,
        OPS_API_PORT: String(layout.ports.opsApi),
        // The API talks to the traffic endpoint, never to a node directly.
        DATABASE_URL: `postgres://${user}:${secrets.pgPassword}@${layout.host}:${layout.ports.traffic}/${name}`,
        REDIS_URL: `redis://:${secrets.redisPassword}@${layout.host}:${layout.ports.redis}/0`,
        OPS_API_TOKEN: secrets.opsApiToken,
        KILL_SWITCH_ADMIN_KEY: secrets.killSwitchAdminKey,
      };
      writeFileSync(layout.opsApi.envFile, Object.entries(env).map(([key, value]) => `${key}=${value}\n`).join(""), { mode: 0o600 });
    }
    spawnDaemon(layout, {
      name: "ops-api",
      command: process.execPath,
      // Node strips the types itself, except under node_modules (an installed copy): tsx there.
      args: [`--env-file=${layout.opsApi.envFile}`, ...(process.features.typescript && !layout.opsApi.main.split("/").includes("node_modules") ? [] : ["--import", "tsx"]), layout.opsApi.main],
      cwd: projectRoot,
      // I4: the version, migrations, model dir (and drill fault) of the release that runs now: a
      // deploy changes them, so they come with each start (the environment wins over the env file).
      env: releaseEnv(layout),
      log: layout.opsApi.log,
      pidFile: layout.opsApi.pidFile,
    });
    const live = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/health`)) === 200, READY_TIMEOUT_MS, 200);
    if (!live) throw notReady("the ops API", `answer GET /health with 200`, READY_TIMEOUT_MS, layout.opsApi.log);
  },

  async verify({ layout }) {
    // Z1: ready means its database and Redis answer too, not just the process.
    const ready = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/health/ready`, 3_000)) === 200, 10_000, 250);
    if (!ready) throw notReady("the ops API", "answer GET /health/ready with 200", 10_000, layout.opsApi.log);
  },

  // Z4: its graceful shutdown drains for up to 30 s before it exits by itself; SIGKILL only after that.
  stop: (layout) => stopDaemon(layout, layout.opsApi, 35_000),
};
