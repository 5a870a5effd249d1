/**
 * `tradeops restore --tables orders,positions` (Z6, S8): bring chosen tables back from a logical
 * dump of `backup --tables`, leaving every other table as it is.
 *
 * The swap is one transaction (psql --single-transaction): the live tables move into a schema of
 * their own (`tradeops_aside_<id>`: kept, the quick undo), the dump's tables are created and
 * loaded in their place, and only COMMIT makes both visible. Any error rolls all of it back, so a
 * reader sees either the old tables or the restored ones, never a half-loaded one. The moved
 * tables take their indexes, constraints and owned sequences with them; a foreign key or a view
 * of another table would follow the old table, so such dependents are refused up front.
 * TimescaleDB: timescaledb_pre_restore() / post_restore() around the load when the extension exists.
 */
import { mkdirSync, readFileSync, rmSync, statfsSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import type { StackOutputs } from "../contract/outputs.ts";
import { downloadObject } from "./bucket-objects.ts";
import { onPg } from "./connect.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import type { Step, StepContext } from "./engine/runbook.ts";
import { bytes, table } from "./format.ts";
import { pauseTradingStep, resumeTradingStep, RoleChange, tradingLine } from "./role-change.ts";
import { stateDirFor } from "./state.ts";
import { displayName, libpqEnv, listTableDumps, pgTool, qualified, runClientTool, timescaleVersion, type DumpedTable, type TableDumpManifest } from "./table-dumps.ts";

/** Long enough for a busy table's transaction to end; beyond it the swap gives up (and rolls back) instead of queueing every writer behind it. */
const LOCK_TIMEOUT = "10s";

/** The tables of `names` in the dump (`orders` matches public.orders), or a refusal naming what the dump holds. */
function pickTables(manifest: TableDumpManifest, names: string[]): DumpedTable[] {
  const picked: DumpedTable[] = [];
  for (const name of names) {
    const found = findTable(manifest, name);
    if (!found) throw new Refusal(`dump ${manifest.id} does not hold ${name} (it has ${manifest.tables.map(displayName).join(", ")})`, "name a dump that has it (`--dump ID`, `tradeops backups list`) or take one: `tradeops backup --tables …`");
    picked.push(found);
  }
  return picked;
}

export function tableSteps(names: string[], wanted: string, reason: string | undefined, outputs: StackOutputs): Step[] {
  const { primary } = outputs.database;
  const change = new RoleChange(outputs, primary, primary, reason ?? `restore tables ${names.join(", ")}`);
  const staging = join(stateDirFor(outputs), "staging");
  let manifest: TableDumpManifest | undefined;
  let tables: DumpedTable[] = [];
  const files = new Map<DumpedTable, string>();
  let aside: string | undefined;
  const session = (ctx: StepContext) => ({ signal: ctx.signal, timeoutMs: 10_000 });

  return [
    {
      name: "Check the dump, the tables and what depends on them",
      plan: `dump ${wanted} in s3://${outputs.backup.bucket}/logical/ holds ${names.join(", ")}; no view or foreign key of another table depends on them; room to download it`,
      readOnly: true,
      action: async (ctx) => {
        ctx.record("startedAt", Date.now());
        const dumps = await listTableDumps(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot read the backup bucket: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        if (!dumps.length) throw new Refusal("the backup bucket holds no table dump", `take one: \`tradeops backup --tables ${names.join(",")}\``);
        // `latest`: the newest dump holding every named table (else the newest, to name what it lacks).
        manifest = wanted === "latest" ? (dumps.filter((d) => names.every((n) => findTable(d, n))).at(-1) ?? dumps.at(-1)) : dumps.find((d) => d.id === wanted);
        if (!manifest) throw new Refusal(`table dump ${wanted} is not in the bucket (it has ${dumps.map((d) => d.id).join(", ")})`, "`tradeops backups list` shows them");
        tables = pickTables(manifest, names);
        ctx.record("tableDump", manifest.id);
        ctx.log(`dump ${manifest.id} (taken ${manifest.takenAt}, ${bytes(manifest.sizeBytes)}): ${tables.map((t) => `${displayName(t)} ${t.rows} row(s)`).join(", ")}`);
        const dependents = await onPg(outputs, primary, (client) => dependentsOutside(client, tables), session(ctx)).catch((error: unknown) => {
          throw new Refusal(`primary ${primary.name} does not answer: ${oneLine(error)}`, "run `tradeops health` and bring the primary back first");
        });
        if (dependents.length) {
          throw new Refusal(`other objects depend on ${tables.map(displayName).join(", ")}: ${dependents.join("; ")} — they would keep pointing at the old tables`, "restore those tables too (add them to --tables) or drop the dependents first");
        }
        mkdirSync(staging, { recursive: true, mode: 0o700 });
        const free = statfsSync(staging);
        const needed = tables.reduce((sum, t) => sum + t.sizeBytes, 0);
        if (free.bavail * free.bsize < needed * 3) throw new Refusal(`not enough disk in ${staging}: ${bytes(free.bavail * free.bsize)} free, the archives are ${bytes(needed)} (and their SQL)`);
      },
    },
    {
      name: "Download the tables' archives and verify their SHA-256 and size",
      plan: "GET logical/<id>/<table>.pgdump into the state dir; each SHA-256 and size must match the manifest before the database is touched",
      action: async (ctx) => {
        for (const t of tables) {
          const file = join(staging, `${manifest!.id}.${t.schema}.${t.name}.pgdump`);
          const got = await downloadObject(outputs, t.key, file, ctx.signal);
          if (got.sha256 !== t.sha256 || got.sizeBytes !== t.sizeBytes) {
            rmSync(file, { force: true });
            throw new StepFailure(`the archive of ${displayName(t)} in dump ${manifest!.id} is damaged: sha256 ${got.sha256.slice(0, 16)}… (${bytes(got.sizeBytes)}), manifest says ${t.sha256.slice(0, 16)}… (${bytes(t.sizeBytes)})`, "restore another dump (`--dump ID`); the database was not touched");
          }
          files.set(t, file);
        }
      },
    },
    pauseTradingStep(change),
    {
      name: "Swap the tables in from the dump, in one transaction",
      plan: `psql --single-transaction: move the live tables into schema tradeops_aside_<id> (kept), create and load the dump's in their place (pg_restore), COMMIT — lock_timeout ${LOCK_TIMEOUT}; any error rolls all of it back`,
      destructive: true,
      action: async (ctx) => {
        const script = await swapScript(outputs, manifest!, files, ctx);
        aside = script.aside;
        try {
          await runPsql(outputs, script.file, ctx.signal);
        } finally {
          for (const file of script.sqlFiles) rmSync(file, { force: true });
        }
        ctx.record("tablesAside", aside);
      },
      undo: {
        plan: "in one transaction: drop the restored tables and move the ones kept in tradeops_aside_<id> back",
        run: async (ctx) => {
          const statements = tables.map((t) => `drop table if exists ${qualified(t)} cascade; alter table if exists "${aside}"."${t.name}" set schema "${t.schema}";`).join("\n");
          await onPg(outputs, primary, (client) => client.query(`begin; ${statements} commit;`), session(ctx));
        },
      },
      onFailure: "nothing was committed: the live tables are as they were; read the line above, fix the cause, re-run",
    },
    {
      name: "Verify the restored tables' row counts against the dump's manifest",
      plan: "count(*) of each restored table equals the count taken in the dump's own snapshot",
      readOnly: true,
      action: async (ctx) => {
        const counts = await onPg(
          outputs,
          primary,
          async (client) => {
            const counted: Record<string, number> = {};
            for (const t of tables) counted[displayName(t)] = Number((await client.query<{ n: string }>(`select count(*)::text as n from ${qualified(t)}`)).rows[0]!.n);
            return counted;
          },
          { signal: ctx.signal, timeoutMs: 5 * 60_000 },
        );
        ctx.record("tables", counts);
        const wrong = tables.filter((t) => counts[displayName(t)] !== t.rows);
        if (wrong.length) throw new StepFailure(`row counts differ from the dump: ${wrong.map((t) => `${displayName(t)} ${counts[displayName(t)]} ≠ ${t.rows}`).join(", ")}`, `the previous tables are kept in schema ${aside}`);
        for (const file of files.values()) rmSync(file, { force: true });
      },
    },
    resumeTradingStep(change),
  ];
}

/** `orders` is public.orders, as PostgreSQL's default search_path reads it. */
function findTable(manifest: TableDumpManifest, name: string): DumpedTable | undefined {
  const [schema, table] = name.includes(".") ? name.split(".") : ["public", name];
  return manifest.tables.find((t) => t.schema === schema && t.name === table);
}

/** Views and foreign keys of objects outside `tables` that point at them (they would follow the old tables). */
async function dependentsOutside(client: import("pg").Client, tables: DumpedTable[]): Promise<string[]> {
  const names = tables.map(qualified);
  const { rows } = await client.query<{ what: string }>(
    `with t as (select to_regclass(n) as oid from unnest($1::text[]) as n where to_regclass(n) is not null)
     select format('foreign key %s on %s', c.conname, c.conrelid::regclass) as what
       from pg_constraint c where c.contype = 'f' and c.confrelid in (select oid from t) and c.conrelid not in (select oid from t)
     union
     select distinct format('view %s', v.oid::regclass)
       from pg_depend d join pg_rewrite r on r.oid = d.objid join pg_class v on v.oid = r.ev_class
      where d.refobjid in (select oid from t) and v.oid not in (select oid from t)`,
    [names],
  );
  return rows.map((r) => r.what);
}

/**
 * The one script psql runs in one transaction: the aside schema and the moves, then every table's
 * definition and data, then every table's indexes and keys, then the foreign keys (one between two
 * restored tables needs the other's key first), each part written by pg_restore; TimescaleDB hooks around.
 */
async function swapScript(outputs: StackOutputs, manifest: TableDumpManifest, files: Map<DumpedTable, string>, ctx: StepContext) {
  const aside = `tradeops_aside_${manifest.id.replace(/-/g, "_").toLowerCase()}_${Date.now().toString(36)}`;
  const tables = [...files.keys()];
  const sqlFiles: string[] = [];
  const restore = (args: string[]) => runClientTool(pgTool(outputs, "pg_restore"), args, process.env, ctx.signal);
  const sqlOf = async (archive: string, suffix: string, args: string[]) => {
    const out = `${archive}.${suffix}.sql`;
    sqlFiles.push(out);
    await restore(["--no-owner", ...args, "--file", out, archive]);
    return out;
  };
  // pg_restore's table of contents, split so every foreign key comes after every table's keys.
  const listOf = async (archive: string, suffix: string, keep: (entry: string) => boolean) => {
    const toc = `${archive}.toc`;
    sqlFiles.push(toc);
    await restore(["--list", "--file", toc, archive]);
    const out = `${archive}.${suffix}.list`;
    sqlFiles.push(out);
    writeFileSync(out, readFileSync(toc, "utf8").split("\n").filter((line) => line.startsWith(";") || keep(line)).join("\n"), { mode: 0o600 });
    return out;
  };
  const isForeignKey = (entry: string) => / FK CONSTRAINT /.test(entry);
  const phases: string[][] = [[], [], []];
  for (const archive of files.values()) {
    phases[0]!.push(await sqlOf(archive, "load", ["--section=pre-data", "--section=data"]));
    phases[1]!.push(await sqlOf(archive, "keys", ["--section=post-data", `--use-list=${await listOf(archive, "keys", (e) => !isForeignKey(e))}`]));
    phases[2]!.push(await sqlOf(archive, "fks", ["--section=post-data", `--use-list=${await listOf(archive, "fks", isForeignKey)}`]));
  }
  const { existing, timescale } = await onPg(
    outputs,
    outputs.database.primary,
    async (client) => ({
      existing: (await client.query<{ name: string }>("select n as name from unnest($1::text[]) as n where to_regclass(n) is not null", [tables.map(qualified)])).rows.map((r) => r.name),
      timescale: await timescaleVersion(client),
    }),
    { signal: ctx.signal, timeoutMs: 10_000 },
  );
  ctx.log(timescale ? `TimescaleDB ${timescale}: the load runs between timescaledb_pre_restore() and timescaledb_post_restore()` : "TimescaleDB is not installed in this database: a plain load (no pre/post restore hooks)");
  ctx.log(existing.length ? `kept aside in schema ${aside}: ${existing.join(", ")}` : "none of the tables exists now: nothing to keep aside");
  const include = (file: string) => `\\i '${file.replace(/'/g, "''")}'`;
  const lines = [
    "\\set ON_ERROR_STOP on",
    `set local lock_timeout = '${LOCK_TIMEOUT}';`,
    `create schema "${aside}";`,
    ...existing.map((name) => `alter table ${name} set schema "${aside}";`),
    ...(timescale ? ["select timescaledb_pre_restore();"] : []),
    ...phases.flat().map(include),
    ...(timescale ? ["select timescaledb_post_restore();"] : []),
  ];
  const file = join(dirname(phases[0]![0]!), `${manifest.id}.swap.sql`);
  sqlFiles.push(file);
  writeFileSync(file, `${lines.join("\n")}\n`, { mode: 0o600 });
  return { file, aside, sqlFiles };
}

function runPsql(outputs: StackOutputs, file: string, signal: AbortSignal): Promise<void> {
  return runClientTool(pgTool(outputs, "psql"), ["--no-psqlrc", "--quiet", "--single-transaction", "--file", file], libpqEnv(outputs, outputs.database.primary), signal);
}

export function tablesReport(facts: Record<string, unknown>) {
  const counts = (facts.tables ?? {}) as Record<string, number>;
  const rows = [
    ["table dump", String(facts.tableDump ?? "-")],
    ...Object.entries(counts).map(([name, n]) => [`rows in ${name}`, String(n)]),
    ["previous tables kept in schema", String(facts.tablesAside ?? "-")],
    ["trading", tradingLine(facts)],
  ];
  return {
    text: `${table(["RESTORE (TABLES)", "VALUE"], rows)}${facts.tablesAside ? `\nonce satisfied: drop schema "${String(facts.tablesAside)}" cascade;` : ""}`,
    json: { restored: Boolean(facts.tables), tableDump: facts.tableDump ?? null, tables: facts.tables ?? null, aside: facts.tablesAside ?? null, tradingPaused: facts.tradingPaused ?? null, tradingResumed: facts.tradingResumed ?? null },
  };
}
