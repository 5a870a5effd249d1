/**
 * Rollback and upgrade (I4, Z7) on the sandbox, whose reference API has releases (a version on
 * /health and /metrics, numbered up/down migrations, a model set with a reload endpoint): every
 * command through the real CLI, every outcome read back from the API and PostgreSQL.
 */
import { cpSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterEach, beforeAll, describe, expect, inject, it } from "vitest";
import { opsApiRequest } from "../../clients/ops-api.ts";
import { migrateTo, migrationSet, schemaVersion } from "../../clients/migrations.ts";
import { onPg } from "../../runbooks/connect.ts";
import { RunDocument } from "../../runbooks/engine/document.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { PgbackrestInfo } from "../../runbooks/backup.ts";
import { pgbackrest } from "../../runbooks/platform/db-node.ts";
import { putJson } from "../../runbooks/bucket-objects.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const sandbox = await openSandbox({ dir: sandboxDir });
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const onStack = (...args: string[]) => tradeops(["--outputs", outputsFile, ...args]);
const modelDir = outputs.app!.models!.dir;

const liveness = async () => (await opsApiRequest(outputs.opsApi, "/health")).body as { version: string; model_version?: string };
const ready = async () => (await opsApiRequest(outputs.opsApi, "/health/ready")).status === 200;
const db = <T>(sql: string) => onPg(outputs, outputs.database.traffic, async (c) => (await c.query(sql)).rows as T[]);
const schemaNow = () => onPg(outputs, outputs.database.traffic, async (c) => schemaVersion(await migrationSet(c, outputs.app!.migrations!.dir)));

/** The sandbox's initial releases: 1.1.0 running, 1.0.0 before it (the API migrates up to 2 at its start). */
async function resetRelease(): Promise<void> {
  const { current, previous } = sandbox.app.release();
  if (current === "1.1.0" && previous === "1.0.0") return;
  if (current !== "1.0.0") await sandbox.app.deploy("1.0.0");
  await sandbox.app.deploy("1.1.0");
}

/** Writes a model set into the live dir and reloads it through the API, as a model deploy would. */
async function deployModel(version: string, weights: string): Promise<void> {
  writeFileSync(join(modelDir, "weights.bin"), weights);
  writeFileSync(join(modelDir, "VERSION"), `${version}\n`);
  expect((await opsApiRequest(outputs.opsApi, "/api/model/reload", { method: "POST", body: {} })).status).toBe(200);
}

beforeAll(async () => {
  await resetRelease();
  // The seed model set, backed up: what a model rollback goes back to.
  const seed = await onStack("backup", "--models");
  expect(seed.code, seed.stderr).toBe(0);
});
afterEach(resetRelease);

describe("rollback app (I4, T4)", () => {
  it("I4: rollback app returns the API to the previous release, which it reports, and health is green", async () => {
    expect((await liveness()).version).toBe("1.1.0");
    const dry = await onStack("--dry-run", "rollback", "app");
    expect(dry.code).toBe(0);
    expect((await liveness()).version).toBe("1.1.0");

    const run = await onStack("--json", "rollback", "app");
    expect(run.code, run.stderr).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { appChange: { from: string; to: string } };
    expect(report.appChange).toMatchObject({ from: "1.1.0", to: "1.0.0" });
    expect((await liveness()).version).toBe("1.0.0");
    const metrics = (await opsApiRequest(outputs.opsApi, "/metrics")).body as string;
    expect(metrics).toMatch(/tradeops_app_info\{version="1\.0\.0",model_version="[^"]+"\} 1/);
    expect((await onStack("health")).code).toBe(0);
    // The outputs follow: the next rollback knows where it came from.
    const after = JSON.parse(readFileSync(outputsFile, "utf8"));
    expect(after.app).toMatchObject({ current: "1.0.0", previous: "1.1.0" });
  });

  it("I4: rollback app to a release the sandbox does not have is refused (exit 3); a bad flag exits 2", async () => {
    const unknown = await onStack("rollback", "app", "--to", "9.9.9");
    expect(unknown.code).toBe(3);
    expect(unknown.stderr).toMatch(/no release 9\.9\.9/);
    expect((await liveness()).version).toBe("1.1.0");
    expect((await onStack("rollback", "app", "--to", "bad tag!")).code).toBe(2);
    expect((await onStack("rollback", "migration")).code).toBe(2);
  });
});

describe("rollback migration (I4)", () => {
  it("I4: rollback migration --steps 1 backs up the touched tables, restores the previous schema version, and the rows survive", async () => {
    await db("insert into orders (symbol, side, quantity, client_order_id) values ('BTCUSDT', 'buy', 1, 'rb-1'), ('ETHUSDT', 'sell', 2, 'rb-2')");
    const orders = (await db<{ n: number }>("select count(*)::int as n from orders"))[0]!.n;
    expect(await schemaNow()).toBe(2);

    expect((await onStack("--dry-run", "rollback", "migration", "--steps", "1")).code).toBe(0);
    expect(await schemaNow()).toBe(2);

    const run = await onStack("--json", "rollback", "migration", "--steps", "1");
    expect(run.code, run.stderr).toBe(0);
    const report = RunDocument.parse(JSON.parse(run.stdout)).report as { from: number; now: number; tableBackup: { file: string; tables: string[] } };
    expect(report).toMatchObject({ from: 2, now: 1 });
    expect(report.tableBackup.tables.sort()).toEqual(["fills", "orders"]);
    expect(existsSync(report.tableBackup.file)).toBe(true);
    expect(await schemaNow()).toBe(1);
    expect((await db<{ n: number }>("select count(*)::int as n from orders"))[0]!.n).toBe(orders);
    expect(await db("select 1 from information_schema.tables where table_name = 'fills'")).toEqual([]);
    // The release that needs schema 2 migrates up again at its start.
    await sandbox.app.deploy("1.0.0");
    await sandbox.app.deploy("1.1.0");
    expect(await schemaNow()).toBe(2);
  });

  it("I4: rollback migration refuses (exit 3) when a down migration is missing, and the schema is untouched", async () => {
    const dir = mkdtempSync(join(sandboxDir, "migrations-"));
    cpSync(outputs.app!.migrations!.dir, dir, { recursive: true });
    writeFileSync(join(dir, "003.do.audit.sql"), "CREATE TABLE order_audit (id bigint PRIMARY KEY);\n");
    await onPg(outputs, outputs.database.traffic, async (c) => migrateTo(c, await migrationSet(c, dir), 3));
    const doc = JSON.parse(readFileSync(outputsFile, "utf8"));
    doc.app.migrations.dir = dir;
    const elsewhere = join(dir, "outputs.json");
    writeFileSync(elsewhere, JSON.stringify(doc), { mode: 0o600 });
    try {
      const run = await tradeops(["--outputs", elsewhere, "rollback", "migration", "--steps", "1"]);
      expect(run.code).toBe(3);
      expect(run.stderr).toMatch(/no down migration for version 3/);
      expect(await onPg(outputs, outputs.database.traffic, async (c) => schemaVersion(await migrationSet(c, dir)))).toBe(3);
    } finally {
      await db("drop table order_audit; delete from schemaversion where version = 3");
    }
  });
});

describe("rollback model (I4) and model sets (issue 7)", () => {
  it("I4: rollback model makes the API report the older model version, after the checksums are verified", async () => {
    const older = (await liveness()).model_version!;
    await deployModel("2026.12.7", "newer weights");
    expect((await onStack("backup", "--models")).code).toBe(0);
    const list = await onStack("--json", "backups", "list");
    const models = (RunDocument.parse(JSON.parse(list.stdout)).report as { models: { version: string }[] }).models.map((m) => m.version);
    expect(models).toEqual(expect.arrayContaining([older, "2026.12.7"]));

    expect((await onStack("--dry-run", "rollback", "model", "--to", older)).code).toBe(0);
    expect((await liveness()).model_version).toBe("2026.12.7");
    const run = await onStack("rollback", "model", "--to", older);
    expect(run.code, run.stderr).toBe(0);
    expect((await liveness()).model_version).toBe(older);
    expect(readFileSync(join(modelDir, "VERSION"), "utf8").trim()).toBe(older);

    const missing = await onStack("restore", "--models", "0.0.0-none");
    expect(missing.code).toBe(3);
    expect(missing.stderr).toMatch(/no model set 0\.0\.0-none in the bucket/);
  });

  it("I4: a model set whose file no longer matches its manifest is not put in place: exit 1 naming the file, the live set untouched", async () => {
    await deployModel("2026.12.11", "weights to be damaged");
    expect((await onStack("backup", "--models")).code).toBe(0);
    await deployModel("2026.12.12", "the live weights");
    await putJson(outputs, "models/2026.12.11/files/weights.bin", "bit rot");
    const run = await onStack("rollback", "model", "--to", "2026.12.11");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/weights\.bin does not match the manifest/);
    expect(run.stdout).toMatch(/NOT restored/);
    expect((await liveness()).model_version).toBe("2026.12.12");
    expect(readFileSync(join(modelDir, "weights.bin"), "utf8")).toBe("the live weights");
    expect(existsSync(`${modelDir}.incoming-2026.12.11`)).toBe(false);
  });

  it("I4: the same model version with other files is refused (exit 3): a version names one set for good", async () => {
    await deployModel("2026.12.8", "first");
    expect((await onStack("backup", "--models")).code).toBe(0);
    await deployModel("2026.12.8", "changed behind its back");
    const again = await onStack("backup", "--models");
    expect(again.code).toBe(3);
    expect(again.stderr).toMatch(/already in the bucket with other files/);
  });
});

describe("the full rollback and the upgrade (I4, Z7)", () => {
  it("I4: rollback app --with-migrations --with-model puts model, app and schema back in the safe order; health green, trading resumed, rows kept", async () => {
    const seedModel = "2026.11.0";
    await deployModel("2026.12.9", "model of release 1.1.0");
    expect((await onStack("backup", "--models")).code).toBe(0);
    await db("insert into orders (symbol, side, quantity) values ('SOLUSDT', 'buy', 3)");
    const orders = (await db<{ n: number }>("select count(*)::int as n from orders"))[0]!.n;

    const run = await onStack("--json", "rollback", "app", "--with-migrations", "--with-model", seedModel);
    expect(run.code, run.stderr).toBe(0);
    const doc = RunDocument.parse(JSON.parse(run.stdout));
    const order = doc.steps.map((s) => s.name);
    const at = (prefix: string) => order.findIndex((name) => name.startsWith(prefix));
    expect(at("Pause trading")).toBe(0);
    expect(at("Reload the model")).toBeLessThan(at("Roll the app back"));
    expect(at("Roll the app back")).toBeLessThan(at("Run the down migrations"));
    expect(at("Run the down migrations")).toBeLessThan(at("Confirm every component is healthy"));
    expect(order.at(-1)).toMatch(/^Resume trading/);

    const live = await liveness();
    expect(live).toMatchObject({ version: "1.0.0", model_version: seedModel });
    expect(await schemaNow()).toBe(1);
    expect((await db<{ n: number }>("select count(*)::int as n from orders"))[0]!.n).toBe(orders);
    expect(((await opsApiRequest(outputs.opsApi, "/api/trading/status")).body as { paused: boolean }).paused).toBe(false);
    expect(await ready()).toBe(true);
  });

  it("Z7, I4: --dry-run of upgrade, backup --models and restore --models changes nothing", async () => {
    const sets = async () => (RunDocument.parse(JSON.parse((await onStack("--json", "backups", "list")).stdout)).report as { models: unknown[] }).models.length;
    const before = await sets();
    await deployModel("2026.12.10", "dry-run weights");
    expect((await onStack("--dry-run", "backup", "--models")).code).toBe(0);
    expect(await sets()).toBe(before);
    expect((await onStack("--dry-run", "restore", "--models", "2026.11.0")).code).toBe(0);
    expect((await liveness()).model_version).toBe("2026.12.10");
    const dry = await onStack("--dry-run", "upgrade", "app", "--to", "1.2.0");
    expect(dry.code).toBe(0);
    expect(dry.stdout).toMatch(/3. Take an incremental backup\n/);
    expect((await liveness()).version).toBe("1.1.0");
    expect((await onStack("upgrade", "app", "--to", "1.2.0", "--watch", "forever")).code).toBe(2);
  });

  it("Z7: upgrade to a deliberately broken release rolls back by itself and exits 1 with the reason", async () => {
    const run = await onStack("upgrade", "app", "--to", "1.3.0-broken", "--watch", "20s", "--skip-backup");
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/release 1\.3\.0-broken failed its watch \(the canary GET \/api\/trading\/status answered 500, 3 times in a row\); rolled back to 1\.1\.0, which is healthy/);
    expect(run.stdout).toMatch(/rolled back by itself/);
    expect((await liveness()).version).toBe("1.1.0");
    expect(await ready()).toBe(true);
  });

  it("Z7: upgrade backs up first, rolls forward, and keeps a release that holds for the watch window", async () => {
    const labels = async () => PgbackrestInfo.parse(JSON.parse(await pgbackrest(outputs)("info", ["--output=json"])))[0]?.backup.length ?? 0;
    const before = await labels();
    const run = await onStack("upgrade", "app", "--to", "1.2.0", "--watch", "2s");
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^upgrade 1\.1\.0 → 1\.2\.0\nwatch: 2 s clean/);
    expect(await labels()).toBe(before + 1);
    expect((await liveness()).version).toBe("1.2.0");
  });
});
