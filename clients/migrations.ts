/**
 * The app's schema migrations (I4) through postgrator: numbered `NNN.do.<name>.sql` and
 * `NNN.undo.<name>.sql` files and a version table. Both sides use it: the reference API migrates
 * up at start, `tradeops rollback migration` goes down.
 *
 * Every move runs on one connection inside one transaction (postgrator itself runs file after
 * file): PostgreSQL's DDL is transactional, so a failing down migration leaves the schema exactly
 * as it was, never half-way between two versions.
 */
import type pg from "pg";
import Postgrator from "postgrator";

const MIGRATION_LOCK_KEY = 7_370_010;

export interface MigrationFile {
  version: number;
  action: "do" | "undo";
  name: string;
  filename: string;
}

export interface MigrationSet {
  /** Postgrator over `client`; it must be connected to the app's database. */
  postgrator: Postgrator;
  files: MigrationFile[];
}

export async function migrationSet(client: pg.Client | pg.PoolClient, dir: string, table = "schemaversion"): Promise<MigrationSet> {
  const postgrator = new Postgrator({
    migrationPattern: `${dir}/*.sql`,
    driver: "pg",
    schemaTable: table,
    execQuery: (query) => client.query(query),
  });
  const files = (await postgrator.getMigrations()).map(({ version, action, name, filename }) => ({ version, action, name, filename }));
  return { postgrator, files };
}

/** The applied version (0: none); creates the version table when it is missing, as postgrator does. */
export async function schemaVersion(set: MigrationSet): Promise<number> {
  return set.postgrator.getDatabaseVersion();
}

/** The versions `from` → `to` needs that have no file for the direction: a down move refuses on them. */
export function missingSteps(set: MigrationSet, from: number, to: number): number[] {
  const action = to < from ? "undo" : "do";
  const [low, high] = to < from ? [to, from] : [from, to];
  const needed = [...new Set(set.files.filter((f) => f.action === "do" && f.version > low && f.version <= high).map((f) => f.version))];
  return needed.filter((version) => !set.files.some((f) => f.version === version && f.action === action));
}

/** Moves the schema to `target` in one transaction; returns the files run, in order. */
export async function migrateTo(client: pg.Client | pg.PoolClient, set: MigrationSet, target: number): Promise<MigrationFile[]> {
  await client.query("BEGIN");
  try {
    // Two app instances starting together (or a rollback during a start) take turns.
    await client.query("SELECT pg_advisory_xact_lock($1)", [MIGRATION_LOCK_KEY]);
    const applied = await set.postgrator.migrate(String(target));
    await client.query("COMMIT");
    return applied.map(({ version, action, name, filename }) => ({ version, action, name, filename }));
  } catch (error) {
    await client.query("ROLLBACK").catch(() => undefined);
    throw error;
  }
}
