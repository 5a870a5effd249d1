/**
 * The config-file generators, checked by the programs that read the files (haproxy -c, promtool,
 * pgbackrest's option parser, redis-server itself) plus the security-relevant lines.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { afterAll, describe, expect, it } from "vitest";
import { POSTGRES_BACKEND, renderHaproxyCfg } from "../../infra/config-files/haproxy.ts";
import { renderPgbackrestConf, type PgbackrestConfOptions } from "../../infra/config-files/pgbackrest.ts";
import { renderPgHba, renderPostgresqlConf, standardHbaRules } from "../../infra/config-files/postgresql.ts";
import { alertRules, renderAlertRules, renderPrometheusYml } from "../../infra/config-files/prometheus.ts";
import { renderRedisConf } from "../../infra/config-files/redis.ts";

const workDir = mkdtempSync(join(tmpdir(), "tradeops-config-files-"));
afterAll(() => rmSync(workDir, { recursive: true, force: true }));

function writeTemp(name: string, text: string): string {
  const file = join(workDir, name);
  writeFileSync(file, text);
  return file;
}

/** Runs a checker; returns its exit code and combined output. */
function check(command: string, args: string[]): { code: number | null; output: string } {
  const result = spawnSync(command, args, { encoding: "utf8", timeout: 30_000 });
  return { code: result.status, output: `${result.stdout}${result.stderr}` };
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

const settingsOf = (conf: string) => conf.split("\n").filter((line) => line && !line.startsWith("#"));

describe("redis.conf", () => {
  const conf = renderRedisConf({ port: 6379, password: "s3cret-password-123", dir: "/data" });

  it("S7: redis.conf keeps AOF everysec and the seed's save rules", () => {
    const lines = settingsOf(conf);
    expect(lines).toEqual(expect.arrayContaining(["appendonly yes", "appendfsync everysec", "save 900 1", "save 300 10", "save 60 10000"]));
    expect(lines).toEqual(expect.arrayContaining(["maxmemory 2gb", "maxmemory-policy allkeys-lru"]));
  });

  it("S7: maxmemory and its policy are overridable", () => {
    const lines = settingsOf(renderRedisConf({ port: 1, password: "p".repeat(16), dir: "/d", maxmemory: "256mb", maxmemoryPolicy: "noeviction" }));
    expect(lines).toEqual(expect.arrayContaining(["maxmemory 256mb", "maxmemory-policy noeviction"]));
  });

  it("S2: redis.conf binds loopback, sets requirepass, and refuses to render without a password", () => {
    expect(settingsOf(conf)).toEqual(expect.arrayContaining(["bind 127.0.0.1", "protected-mode yes", 'requirepass "s3cret-password-123"']));
    expect(() => renderRedisConf({ port: 1, password: "", dir: "/d" })).toThrow(/password/);
  });

  it("S7: redis-server starts on the generated redis.conf and answers PING only with the password", async () => {
    const port = await freePort();
    const dataDir = mkdtempSync(join(workDir, "redis-"));
    const file = writeTemp("redis.conf", renderRedisConf({ port, password: "unit-test-password-1", dir: dataDir, maxmemory: "64mb" }));
    const server = spawn("redis-server", [file], { stdio: "ignore" });
    const connect = async (password?: string) => {
      const client = new Redis({ host: "127.0.0.1", port, password, lazyConnect: true, enableReadyCheck: false, maxRetriesPerRequest: 0, retryStrategy: () => null });
      client.on("error", () => {});
      await client.connect().catch((error) => {
        client.disconnect();
        throw error;
      });
      return client;
    };
    try {
      await expect.poll(() => connect("unit-test-password-1").then((c) => (c.disconnect(), true), () => false), { timeout: 10_000, interval: 100 }).toBe(true);
      const authed = await connect("unit-test-password-1");
      expect(await authed.ping()).toBe("PONG");
      expect(await authed.config("GET", "appendfsync")).toEqual(["appendfsync", "everysec"]);
      expect(await authed.config("GET", "save")).toEqual(["save", "900 1 300 10 60 10000"]);
      authed.disconnect();
      const anonymous = await connect();
      await expect(anonymous.ping()).rejects.toThrow(/NOAUTH/);
      anonymous.disconnect();
    } finally {
      server.kill("SIGKILL");
    }
  });
});

describe("postgresql.conf and pg_hba.conf", () => {
  const base = { port: 5432, archive: { pgbackrestConfig: "/etc/pgbackrest/pgbackrest.conf", stanza: "trading" } } as const;

  it('I5: synchronous mode names the standby as FIRST 1 ("pg-b"); unset means asynchronous', () => {
    expect(settingsOf(renderPostgresqlConf({ ...base, synchronousStandby: "pg-b" }))).toContain(
      `synchronous_standby_names = 'FIRST 1 ("pg-b")'`,
    );
    expect(settingsOf(renderPostgresqlConf(base))).toContain("synchronous_standby_names = ''");
  });

  it("I5: replication settings for a streaming pair and pg_rewind", () => {
    const lines = settingsOf(renderPostgresqlConf(base));
    expect(lines).toEqual(
      expect.arrayContaining(["wal_level = 'replica'", "wal_log_hints = on", "hot_standby = on", "max_wal_senders = 10", "max_replication_slots = 10"]),
    );
  });

  it("I7: WAL is archived through pgBackRest archive-push", () => {
    const lines = settingsOf(renderPostgresqlConf(base));
    expect(lines).toContain("archive_mode = on");
    expect(lines).toContain("archive_command = 'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=trading archive-push %p'");
  });

  it("S13: pg_stat_statements is preloaded and slow statements are logged from the given threshold", () => {
    const lines = settingsOf(renderPostgresqlConf({ ...base, logMinDurationStatementMs: 250 }));
    expect(lines).toEqual(expect.arrayContaining(["shared_preload_libraries = 'pg_stat_statements'", "log_min_duration_statement = 250"]));
  });

  it("S2: PostgreSQL listens on loopback by default and pg_hba has no trust rule", () => {
    expect(settingsOf(renderPostgresqlConf(base))).toContain("listen_addresses = '127.0.0.1'");
    const hba = renderPgHba(standardHbaRules({ replicationUser: "replicator" }));
    expect(hba).not.toMatch(/\btrust\b/);
    expect(hba).toMatch(/^host\treplication\treplicator\t127\.0\.0\.1\/32\tscram-sha-256$/m);
    expect(hba).not.toMatch(/0\.0\.0\.0/);
  });
});

describe("pgbackrest.conf", () => {
  const options = (overrides: Partial<PgbackrestConfOptions> = {}): PgbackrestConfOptions => ({
    stanza: "trading",
    repo: { endpoint: "localhost", port: 9000, bucket: "tradeops-backups", region: "us-east-1", path: "/pgbackrest", uriStyle: "path", key: "K", keySecret: "S", caFile: "/nonexistent/ca.pem" },
    nodes: [{ path: "/nonexistent/pg-a", port: 5432 }, { path: "/nonexistent/pg-b", port: 5433 }],
    logPath: workDir,
    lockPath: workDir,
    spoolPath: workDir,
    ...overrides,
  });

  it("I7: compress-type is zst (not zstd) and retention follows the seed (30 days full, 7 days WAL)", () => {
    const lines = settingsOf(renderPgbackrestConf(options()));
    expect(lines).toContain("compress-type=zst");
    expect(lines).toEqual(
      expect.arrayContaining(["repo1-retention-full-type=time", "repo1-retention-full=30", "repo1-retention-archive-type=full", "repo1-retention-archive=7"]),
    );
    expect(lines).toEqual(expect.arrayContaining(["repo1-type=s3", "repo1-s3-uri-style=path", "repo1-storage-verify-tls=y", "pg2-path=/nonexistent/pg-b"]));
  });

  it("I7: pgbackrest 2.45 accepts every option of the generated file (and rejects zstd, so the check bites)", () => {
    const optionError = /ERROR: \[03\d\]/;
    const good = check("pgbackrest", [`--config=${writeTemp("pgbackrest.conf", renderPgbackrestConf(options()))}`, "--stanza=trading", "--log-level-file=off", "backup"]);
    expect(good.output).toMatch(/ERROR: \[\d+\]/); // it gets past option parsing and fails on the missing repo
    expect(good.output).not.toMatch(optionError);
    const bad = renderPgbackrestConf(options()).replace("compress-type=zst", "compress-type=zstd");
    const rejected = check("pgbackrest", [`--config=${writeTemp("bad.conf", bad)}`, "--stanza=trading", "--log-level-file=off", "backup"]);
    expect(rejected.output).toMatch(optionError);
  });
});

describe("haproxy.cfg", () => {
  const cfg = renderHaproxyCfg({
    bind: { host: "127.0.0.1", port: 15403 },
    servers: [
      { name: "pg-a", host: "127.0.0.1", port: 15401, enabled: true },
      { name: "pg-b", host: "127.0.0.1", port: 15402, enabled: false },
    ],
    statsSocket: join(workDir, "haproxy.sock"),
  });

  it("I5: haproxy -c accepts the traffic endpoint with the standby present but disabled", () => {
    const result = check("haproxy", ["-c", "-f", writeTemp("haproxy.cfg", cfg)]);
    expect(result.output).toMatch(/valid/i);
    expect(result.code).toBe(0);
    expect(cfg).toMatch(new RegExp(`backend ${POSTGRES_BACKEND}`));
    expect(cfg).toMatch(/server pg-a 127\.0\.0\.1:15401 check$/m);
    expect(cfg).toMatch(/server pg-b 127\.0\.0\.1:15402 check disabled$/m);
  });

  it("I5: failover can switch servers through an admin-level socket readable only by its owner", () => {
    expect(cfg).toMatch(/stats socket \S+haproxy\.sock mode 600 level admin/);
    expect(cfg).toMatch(/bind 127\.0\.0\.1:15403/);
    expect(cfg).toMatch(/timeout client 30m/);
    expect(() => renderHaproxyCfg({ bind: { host: "127.0.0.1", port: 1 }, servers: [], statsSocket: "/s" })).toThrow(/enabled server/);
  });
});

describe("prometheus.yml and alert rules", () => {
  it("S4: promtool check config accepts the scrape config of the ops API and Prometheus itself", () => {
    const rules = writeTemp("rules.yml", renderAlertRules());
    const yml = renderPrometheusYml({ opsApiTarget: "127.0.0.1:15406", selfTarget: "127.0.0.1:15407", ruleFiles: [rules] });
    const result = check("promtool", ["check", "config", writeTemp("prometheus.yml", yml)]);
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
    expect(yml).toMatch(/job_name: "ops-api"/);
  });

  it("S5: promtool check rules accepts HighAPILatency, HighQueueSize and LowDatabaseConnections with the seed's thresholds", () => {
    const result = check("promtool", ["check", "rules", writeTemp("rules.yml", renderAlertRules())]);
    expect(result.code).toBe(0);
    const byName = Object.fromEntries(alertRules().map((rule) => [rule.alert, rule]));
    expect(byName.HighAPILatency).toMatchObject({ for: "5m", severity: "warning" });
    expect(byName.HighAPILatency!.expr).toMatch(/histogram_quantile\(0\.95,.*http_request_duration_seconds_bucket.*\) > 1$/);
    expect(byName.HighQueueSize).toMatchObject({ for: "10m", severity: "critical" });
    expect(byName.HighQueueSize!.expr).toMatch(/tradeops_queue_length\) > 1000$/);
    expect(byName.LowDatabaseConnections).toMatchObject({ for: "5m", severity: "critical" });
    expect(byName.LowDatabaseConnections!.expr).toMatch(/< 5$/);
  });

  it("S5: HighQueueSize fires after 10 minutes above 1000 waiting jobs, not before (promtool test rules)", () => {
    const rules = writeTemp("rules-under-test.yml", renderAlertRules());
    const test = writeTemp(
      "rules.test.yml",
      [
        `rule_files: [${JSON.stringify(rules)}]`,
        "evaluation_interval: 1m",
        "tests:",
        "  - interval: 1m",
        "    input_series:",
        `      - series: 'tradeops_queue_length{queue="trade-execution"}'`,
        "        values: '1500x20'",
        "    alert_rule_test:",
        "      - eval_time: 5m",
        "        alertname: HighQueueSize",
        "        exp_alerts: []",
        "      - eval_time: 12m",
        "        alertname: HighQueueSize",
        "        exp_alerts:",
        "          - exp_labels: { severity: critical, feature: S5, queue: trade-execution }",
        "            exp_annotations: { summary: 'Work queue trade-execution holds more than 1000 waiting jobs' }",
        "",
      ].join("\n"),
    );
    const result = check("promtool", ["test", "rules", test]);
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
  });
});
