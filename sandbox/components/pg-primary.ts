/**
 * pg-a, the PostgreSQL primary: initdb with data checksums, the ops role `tradeops` (superuser,
 * scram), the `replicator` role, the `trading` database with pg_stat_statements (S13).
 */
import type { ComponentContext, SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
import { asOsUser, runOrThrow } from "../processes.ts";
import { inRecovery, isInitialised, isUp, pgBin, pgBinaries, postmasterPid, psql, startNode, stopCluster } from "./postgres.ts";

const node = (layout: SandboxLayout) => layout.pg["pg-a"];

export const pgPrimary: SandboxComponent = {
  name: "pg-a",
  startStep: () => "Start the PostgreSQL primary pg-a",
  stopStep: () => "Stop the PostgreSQL primary pg-a (pg_ctl stop -m fast)",
  port: (layout) => node(layout).port,
  requires: (layout) => pgBinaries(layout, "initdb", "pg_ctl", "psql", "pg_isready"),
  logFile: (layout) => node(layout).log,
  pid: (layout) => postmasterPid(node(layout), layout),
  isUp: (layout) => isUp(layout, node(layout)),

  async start(sandbox) {
    const { layout } = sandbox;
    await startNode(sandbox, node(layout), {
      create: (dataDir) => initPrimary(sandbox, dataDir),
      synchronousStandby: synchronousStandbyAtStart(layout),
    });
    if ((await inRecovery(layout, node(layout))) === false) await bootstrapRoles(sandbox);
  },

  async verify({ layout }) {
    const role = await inRecovery(layout, node(layout));
    if (role === undefined) throw new Error(`pg-a does not accept connections on port ${node(layout).port}`);
    const hasDatabase = await psql(layout, node(layout), `SELECT count(*) FROM pg_database WHERE datname = '${layout.database.name}'`);
    if (hasDatabase !== "1") throw new Error(`pg-a has no database ${layout.database.name}; its bootstrap did not finish — run \`sandbox down --purge\` and \`up\` again`);
  },

  stop: (layout, log) => stopCluster(layout, node(layout), log),

  async describe(layout) {
    const role = await inRecovery(layout, node(layout));
    return role === undefined ? undefined : role ? "standby (in recovery)" : "primary";
  },
};

/**
 * Sync replication names pg-b only once pg-b exists: before that, every commit (even the roles
 * created below) would wait for a standby that is not there yet.
 */
function synchronousStandbyAtStart(layout: SandboxLayout): string | undefined {
  return layout.mode === "sync" && isInitialised(layout.pg["pg-b"]) ? "pg-b" : undefined;
}

async function initPrimary({ layout, log }: ComponentContext, dataDir: string): Promise<void> {
  log(`initdb ${node(layout).dataDir} (data checksums on)`);
  const initdb = asOsUser(layout, pgBin(layout, "initdb"), [
    "-D", dataDir, "--data-checksums", "--encoding=UTF8", "--locale=C",
    "--auth-local=peer", "--auth-host=scram-sha-256", `--username=${layout.osUser}`,
  ]);
  await runOrThrow(layout, initdb, { what: "initdb of pg-a", timeoutMs: 120_000 });
}

/**
 * Idempotent: safe at every start, and re-applies the passwords of secrets.json. Passwords go in
 * through psql variables on stdin, never on a command line; `synchronous_commit = local` because
 * pg-b may be named as synchronous standby while it is still down.
 */
async function bootstrapRoles({ layout, secrets }: ComponentContext): Promise<void> {
  const { name, user, replicationUser } = layout.database;
  const sql = `
\\set ops_password '${secrets.pgPassword}'
\\set replicator_password '${secrets.replicatorPassword}'
SET synchronous_commit = local;
SELECT 'CREATE ROLE ${user}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${user}') \\gexec
ALTER ROLE ${user} WITH LOGIN SUPERUSER PASSWORD :'ops_password';
SELECT 'CREATE ROLE ${replicationUser}' WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '${replicationUser}') \\gexec
ALTER ROLE ${replicationUser} WITH LOGIN REPLICATION PASSWORD :'replicator_password';
SELECT 'CREATE DATABASE ${name} OWNER ${user}' WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = '${name}') \\gexec
\\c ${name}
SET synchronous_commit = local;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
`;
  await psql(layout, node(layout), sql);
}
