/**
 * What makes the reference API a release (I4, Z7): its schema migrations, run up (never down) at
 * start to the version its release needs, and the model set it trades with, read at start and on
 * `POST /api/model/reload`.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import pg from "pg";
import { migrateTo, migrationSet, schemaVersion } from "../../clients/migrations.ts";
import { MODEL_VERSION_FILE, type ModelStatus } from "../../contract/ops-api.ts";
import { errorMessage, type Logger } from "./log.ts";

/** Migrates the database up to `target` when it is below; a newer schema (the app was rolled back alone) is left as it is. */
export async function migrateUp(databaseUrl: string, migrations: { dir: string; schemaVersion: number }, log: Logger): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 3_000, statement_timeout: 60_000 });
  try {
    await client.connect();
    const set = await migrationSet(client, migrations.dir);
    const current = await schemaVersion(set);
    if (current >= migrations.schemaVersion) return log.info("schema up to date", { schema_version: current, release_needs: migrations.schemaVersion });
    const applied = await migrateTo(client, set, migrations.schemaVersion);
    log.info("schema migrated", { from: current, to: migrations.schemaVersion, files: applied.map((file) => file.filename.split("/").at(-1)) });
  } catch (error) {
    log.warn("schema migration failed; the API serves on the schema it found", { error: errorMessage(error) });
  } finally {
    await client.end().catch(() => undefined);
  }
}

/** The model set in `dir`: its VERSION file and the files beside it. */
export function loadModel(dir: string): ModelStatus {
  const version = readFileSync(join(dir, MODEL_VERSION_FILE), "utf8").trim();
  if (!version) throw new Error(`${join(dir, MODEL_VERSION_FILE)} is empty`);
  const files = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
  return { version, loaded_at: new Date().toISOString(), files };
}
