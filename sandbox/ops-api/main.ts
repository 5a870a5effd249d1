/**
 * Process entry point of the reference ops API:
 *   node --import tsx sandbox/ops-api/main.ts
 *
 * Environment: OPS_API_HOST (default 127.0.0.1), OPS_API_PORT (0 = any free port), DATABASE_URL,
 * REDIS_URL, OPS_API_TOKEN and KILL_SWITCH_ADMIN_KEY (16+ characters, different), OPS_API_VERSION
 * (default "sandbox").
 *
 * Stdout carries JSON log lines. Readiness signal: the line with `"msg":"listening"` and the `url`.
 * Exit codes: 0 after a graceful shutdown, 1 when it cannot start (e.g. port in use) or the drain
 * exceeds its cap, 2 for a bad environment (one line naming every bad variable).
 */
import { configFromEnv } from "./config.ts";
import { createLogger, errorMessage } from "./log.ts";
import { configSecrets, startOpsApi } from "./server.ts";

// Z4: the seed's graceful shutdown waits at most 30 s for in-flight work.
const DRAIN_CAP_MS = 30_000;

const env = configFromEnv(process.env);
if (!env.ok) {
  createLogger([]).error(`invalid environment: ${env.message}`, { variables: env.variables });
  process.exit(2);
}
const { config } = env;
const log = createLogger(configSecrets(config));

const api = await startOpsApi(config).catch((error: unknown) => {
  log.error("cannot start the ops API", { error: errorMessage(error) });
  process.exit(1);
});

async function shutDown(signal: NodeJS.Signals): Promise<void> {
  log.info("signal received; shutting down", { signal, drain_cap_s: DRAIN_CAP_MS / 1_000 });
  const cap = setTimeout(() => {
    log.error("drain exceeded its cap; exiting with requests still in flight", { drain_cap_s: DRAIN_CAP_MS / 1_000 });
    process.exit(1);
  }, DRAIN_CAP_MS);
  await api.close();
  clearTimeout(cap);
  process.exit(0);
}

// `once`: a second Ctrl-C falls through to Node's default and ends the process at once.
for (const signal of ["SIGTERM", "SIGINT"] as const) process.once(signal, (received) => void shutDown(received));
