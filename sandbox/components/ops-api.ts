/**
 * The reference ops API (sandbox/ops-api/main.ts): the trading bot's health, metrics,
 * kill switch and positions, connected to PostgreSQL through HAProxy and to Redis.
 */
import { existsSync, writeFileSync } from "node:fs";
import type { SandboxComponent } from "../component.ts";
import { projectRoot } from "../../contract/home.ts";
import type { ProcessFiles, SandboxLayout } from "../layout.ts";
import type { SandboxSecrets } from "../secrets.ts";
import { releaseEnv } from "../releases.ts";
import { assertPortFree, httpStatus, livePid, notReady, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";

const READY_TIMEOUT_MS = 30_000;

/** Where one site's API runs, and the database endpoint it talks to. */
interface ApiSite {
  port: number;
  files: ProcessFiles & { envFile: string };
  /** The site's database endpoint: the traffic endpoint (HAProxy) at the primary site, pg-dr at the DR site. */
  databasePort: number;
}

const primarySite = (layout: SandboxLayout): ApiSite => ({ port: layout.ports.opsApi, files: layout.opsApi, databasePort: layout.ports.traffic });

const drSite = (layout: SandboxLayout): ApiSite => {
  if (!layout.dr) throw new Error(`the sandbox at ${layout.dir} has no DR site (\`tradeops sandbox up --with-dr\`)`);
  return { port: layout.ports.drOpsApi, files: layout.dr.opsApi, databasePort: layout.dr.node.port };
};

/** The primary site's API. */
export const opsApi = opsApiOf("ops-api", "the reference ops API", primarySite);

/**
 * The DR site's API (I5 pilot light): configured (its env file is written by `up --with-dr`) but
 * started only by `dr activate`, and stopped again by `dr failback`.
 */
export const drOpsApi = opsApiOf("dr-ops-api", "the DR site's ops API", drSite);

function opsApiOf(name: "ops-api" | "dr-ops-api", what: string, siteOf: (layout: SandboxLayout) => ApiSite): SandboxComponent {
  const baseUrl = (layout: SandboxLayout) => `http://${layout.host}:${siteOf(layout).port}`;
  return {
    name,
    startStep: () => `Start ${what}`,
    stopStep: () => `Stop ${what}`,
    port: (layout) => siteOf(layout).port,
    logFile: (layout) => siteOf(layout).files.log,
    pid: (layout) => livePid(siteOf(layout).files.pidFile, layout.dir),
    isUp: async (layout) => livePid(siteOf(layout).files.pidFile, layout.dir) !== undefined && (await httpStatus(`${baseUrl(layout)}/health`)) === 200,

    async start({ layout, secrets }) {
      const site = siteOf(layout);
      await assertPortFree(layout.host, site.port, what);
      writeEnvFile(layout, secrets, site);
      spawnDaemon(layout, {
        name,
        command: process.execPath,
        // Node strips the types itself, except under node_modules (an installed copy): tsx there.
        args: [`--env-file=${site.files.envFile}`, ...(process.features.typescript && !layout.opsApi.main.split("/").includes("node_modules") ? [] : ["--import", "tsx"]), layout.opsApi.main],
        cwd: projectRoot,
        // I4: the version, migrations, model dir (and drill fault) of the release that runs now: a
        // deploy changes them, so they come with each start (the environment wins over the env file).
        env: releaseEnv(layout),
        log: site.files.log,
        pidFile: site.files.pidFile,
      });
      const live = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/health`)) === 200, READY_TIMEOUT_MS, 200);
      if (!live) throw notReady(what, `answer GET /health with 200`, READY_TIMEOUT_MS, site.files.log);
    },

    async verify({ layout }) {
      // Z1: ready means its database and Redis answer too, not just the process.
      const ready = await waitUntil(async () => (await httpStatus(`${baseUrl(layout)}/health/ready`, 3_000)) === 200, 10_000, 250);
      if (!ready) throw notReady(what, "answer GET /health/ready with 200", 10_000, siteOf(layout).files.log);
    },

    // Z4: its graceful shutdown drains for up to 30 s before it exits by itself; SIGKILL only after that.
    stop: (layout) => stopDaemon(layout, siteOf(layout).files, 35_000),
  };
}

/**
 * T2: the API starts from its env file, as from a compose `.env`: written by the first start (or,
 * at the DR site, by `up --with-dr`), then it is what the API gets (a variable taken out of it
 * stops the API at start, naming it). 0600: it holds the credentials.
 */
function writeEnvFile(layout: SandboxLayout, secrets: SandboxSecrets, site: ApiSite): void {
  if (existsSync(site.files.envFile)) return;
  const { user, name } = layout.database;
  const env = {
    OPS_API_HOST: layout.host,
    OPS_API_PORT: String(site.port),
    // The API talks to its site's database endpoint, never to a node of the pair directly.
    DATABASE_URL: `postgres://${user}:${secrets.pgPassword}@${layout.host}:${site.databasePort}/${name}`,
    REDIS_URL: `redis://:${secrets.redisPassword}@${layout.host}:${layout.ports.redis}/0`,
    OPS_API_TOKEN: secrets.opsApiToken,
    KILL_SWITCH_ADMIN_KEY: secrets.killSwitchAdminKey,
  };
  writeFileSync(site.files.envFile, Object.entries(env).map(([key, value]) => `${key}=${value}\n`).join(""), { mode: 0o600 });
}

/** The DR site's API env file, written when the site is set up so that activation only starts it. */
export function writeDrOpsApiEnv(layout: SandboxLayout, secrets: SandboxSecrets): void {
  writeEnvFile(layout, secrets, drSite(layout));
}
