/**
 * The pgBackRest stanza in the S3 store (I7, S8): stanza-create, then `check`, which switches a
 * WAL segment on the primary and waits until archive-push stored it — proof that archiving works.
 */
import { mkdirSync } from "node:fs";
import { renderPgbackrestConf } from "../../infra/config-files/pgbackrest.ts";
import type { SandboxComponent } from "../component.ts";
import { standbyOf, type PgNodeName, type SandboxLayout } from "../layout.ts";
import { S3RVER_CREDENTIALS } from "../secrets.ts";
import { asOsUser, chownToOsUser, portOpen, run, runOrThrow } from "../processes.ts";
import { writeOwned } from "./postgres.ts";

/** The fields of `pgbackrest info --output=json` the sandbox reads. */
export interface StanzaInfo {
  name: string;
  status: { code: number; message: string };
  archive: Array<{ min: string | null; max: string | null }>;
  backup: unknown[];
}

/** pgBackRest status codes that mean "the stanza exists and is sound" (2: no backup taken yet). */
const SOUND_STATUS = new Set([0, 2]);

export function pgbackrestArgv(layout: SandboxLayout, ...args: string[]): string[] {
  return asOsUser(layout, "pgbackrest", [`--config=${layout.pgbackrest.config}`, `--stanza=${layout.pgbackrest.stanza}`, ...args]);
}

/** pgbackrest.conf for the pair: pg1 = the recorded primary, pg2 = its standby. */
export function writePgbackrestConf(layout: SandboxLayout): void {
  const { pgbackrest } = layout;
  for (const dir of [pgbackrest.dir, pgbackrest.logPath, pgbackrest.lockPath, pgbackrest.spoolPath]) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    chownToOsUser(layout, dir);
  }
  const conf = renderPgbackrestConf({
    stanza: pgbackrest.stanza,
    repo: {
      endpoint: "localhost",
      port: layout.ports.s3,
      bucket: layout.s3.bucket,
      region: layout.s3.region,
      path: layout.s3.prefix,
      uriStyle: "path",
      key: S3RVER_CREDENTIALS.accessKeyId,
      keySecret: S3RVER_CREDENTIALS.secretAccessKey,
      caFile: layout.s3.cert,
    },
    // pg1 is the primary (the runbooks override its port from the outputs), pg2 its standby.
    nodes: [pgbackrestNode(layout, layout.primary), pgbackrestNode(layout, standbyOf(layout))],
    processMax: 2,
    logPath: pgbackrest.logPath,
    lockPath: pgbackrest.lockPath,
    spoolPath: pgbackrest.spoolPath,
  });
  writeOwned(layout, pgbackrest.config, conf);
}

function pgbackrestNode(layout: SandboxLayout, name: PgNodeName) {
  return { path: layout.pg[name].dataDir, port: layout.pg[name].port, socketPath: layout.pgSocketDir };
}

/** The stanza as `pgbackrest info` reports it; undefined when the store is down (pgBackRest would retry for ~30 s). */
export async function stanzaInfo(layout: SandboxLayout): Promise<StanzaInfo | undefined> {
  if (!(await portOpen(layout.host, layout.ports.s3))) return undefined;
  const result = await run(layout, pgbackrestArgv(layout, "--log-level-console=off", "info", "--output=json"), { timeoutMs: 30_000 });
  if (result.exitCode !== 0) return undefined;
  const stanzas = JSON.parse(result.stdout) as StanzaInfo[];
  return stanzas.find((stanza) => stanza.name === layout.pgbackrest.stanza);
}

function lastArchivedWal(info: StanzaInfo | undefined): string | undefined {
  return info?.archive.map((archive) => archive.max).find((max): max is string => Boolean(max));
}

export const backupStanza: SandboxComponent = {
  name: "stanza",
  startStep: (layout) => `Create the pgBackRest stanza ${layout.pgbackrest.stanza} and check WAL archiving`,
  logFile: (layout) => layout.pgbackrest.logPath,
  requires: () => [{ binary: "pgbackrest", debianPackage: "pgbackrest" }],

  async isUp(layout) {
    const info = await stanzaInfo(layout);
    return info !== undefined && SOUND_STATUS.has(info.status.code) && lastArchivedWal(info) !== undefined;
  },

  async start({ layout, log }) {
    writePgbackrestConf(layout);
    await runOrThrow(layout, pgbackrestArgv(layout, "stanza-create"), { what: "pgbackrest stanza-create", timeoutMs: 120_000 });
    log("pgbackrest check: switching a WAL segment and waiting for archive-push");
    await runOrThrow(layout, pgbackrestArgv(layout, "check"), { what: "pgbackrest check", timeoutMs: 120_000 });
  },

  async verify({ layout }) {
    const info = await stanzaInfo(layout);
    if (!info) throw new Error(`pgbackrest info does not list stanza ${layout.pgbackrest.stanza}; see ${layout.pgbackrest.logPath}`);
    if (!SOUND_STATUS.has(info.status.code)) throw new Error(`stanza ${info.name}: ${info.status.message}`);
    if (!lastArchivedWal(info)) throw new Error(`stanza ${info.name} has no archived WAL: archive_command is not reaching the store`);
  },

  async describe(layout) {
    const info = await stanzaInfo(layout);
    if (!info) return undefined;
    return `${info.status.message}; last WAL ${lastArchivedWal(info) ?? "none"}`;
  },
};
