/**
 * The config-file generators, checked by the programs that read the files (haproxy -c, promtool,
 * amtool, pgbackrest's option parser, redis-server itself) plus the security-relevant lines.
 * Grafana's datasource file has no offline checker here: it is parsed as YAML and its fields checked.
 */
import { spawn, spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Redis } from "ioredis";
import { load as parseYaml } from "js-yaml";
import { afterAll, describe, expect, it } from "vitest";
import { alertRules, renderAlertRules } from "../../infra/config-files/alert-rules.ts";
import { renderAlertmanagerYml, type AlertmanagerYmlOptions } from "../../infra/config-files/alertmanager.ts";
import { renderGrafanaDatasourceYml } from "../../infra/config-files/grafana.ts";
import { POSTGRES_BACKEND, renderHaproxyCfg, type HaproxyCfgOptions } from "../../infra/config-files/haproxy.ts";
import { renderPgbackrestConf, type PgbackrestConfOptions } from "../../infra/config-files/pgbackrest.ts";
import { renderPgHba, renderPostgresqlConf, standardHbaRules } from "../../infra/config-files/postgresql.ts";
import { renderPrometheusYml } from "../../infra/config-files/prometheus.ts";
import { renderRedisConf } from "../../infra/config-files/redis.ts";
import { freePort } from "../../runbooks/platform/scratch-postgres.ts";

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
    expect(lines).toContain(`restore_command = 'pgbackrest --config=/etc/pgbackrest/pgbackrest.conf --stanza=trading archive-get %f "%p"'`);
  });

  it("I5: restore_command can be left out (every promotion would pay a repository lookup), archiving stays on", () => {
    const lines = settingsOf(renderPostgresqlConf({ ...base, archive: { ...base.archive, restoreCommand: false } }));
    expect(lines).toContain("archive_mode = on");
    expect(lines.filter((line) => line.startsWith("restore_command"))).toEqual([]);
  });

  it("S13: pg_stat_statements is preloaded and slow statements are logged from the given threshold", () => {
    const lines = settingsOf(renderPostgresqlConf({ ...base, logMinDurationStatementMs: 250 }));
    expect(lines).toEqual(expect.arrayContaining(["shared_preload_libraries = 'pg_stat_statements'", "log_min_duration_statement = 250"]));
  });

  it("S13: shared_preload_libraries is rendered once, from sharedPreloadLibraries (a TimescaleDB node preloads both)", () => {
    const preloads = (conf: string) => settingsOf(conf).filter((line) => line.startsWith("shared_preload_libraries "));
    expect(preloads(renderPostgresqlConf(base))).toEqual(["shared_preload_libraries = 'pg_stat_statements'"]);
    expect(preloads(renderPostgresqlConf({ ...base, sharedPreloadLibraries: ["timescaledb", "pg_stat_statements"] }))).toEqual([
      "shared_preload_libraries = 'timescaledb,pg_stat_statements'",
    ]);
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

  /** The value pgbackrest itself reads for an option from the file (`help` prints `current: …` when one is set). */
  const currentValue = (file: string, command: string, option: string): string | undefined => {
    const result = check("pgbackrest", [`--config=${file}`, "--stanza=trading", "--log-level-file=off", "--log-level-console=off", "help", command, option]);
    expect(result.code, result.output).toBe(0);
    return /^current: (.*)$/m.exec(result.output)?.[1];
  };

  it("I7: archiveCopy makes pgbackrest copy each backup's WAL into it (archive-copy); unset leaves pgBackRest's default", () => {
    const withCopy = renderPgbackrestConf(options({ archiveCopy: true }));
    expect(settingsOf(withCopy)).toContain("archive-copy=y");
    expect(currentValue(writeTemp("archive-copy.conf", withCopy), "backup", "archive-copy")).toBe("true");
    expect(currentValue(writeTemp("archive-copy-off.conf", renderPgbackrestConf(options({ archiveCopy: false }))), "backup", "archive-copy")).toBe("false");
    const unset = renderPgbackrestConf(options());
    expect(unset).not.toMatch(/archive-copy/);
    expect(currentValue(writeTemp("archive-copy-unset.conf", unset), "backup", "archive-copy")).toBeUndefined();
  });

  it("I7: retention.walDays is pgBackRest's repo1-retention-archive, counted in full backups, as pgbackrest reads it", () => {
    const file = writeTemp("retention.conf", renderPgbackrestConf(options({ retention: { pgFullDays: 14, walDays: 5 } })));
    expect(currentValue(file, "expire", "repo1-retention-archive")).toBe("5");
    expect(currentValue(file, "expire", "repo1-retention-archive-type")).toBe("full");
    expect(currentValue(file, "expire", "repo1-retention-full")).toBe("14");
    expect(currentValue(file, "expire", "repo1-retention-full-type")).toBe("time");
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

  // Servers named like containers that are not there (yet): `.invalid` never resolves (RFC 2606).
  const byName: HaproxyCfgOptions = {
    bind: { host: "127.0.0.1", port: 15403 },
    servers: [
      { name: "pg-a", host: "pg-a.tradeops.invalid", port: 5432, enabled: true },
      { name: "pg-b", host: "pg-b.tradeops.invalid", port: 5432, enabled: false },
    ],
    statsSocket: join(workDir, "haproxy.sock"),
  };

  it("I5: with dnsResolution haproxy -c accepts servers whose names do not resolve yet; without it the same file is refused", () => {
    const resolving = renderHaproxyCfg({ ...byName, dnsResolution: { name: "docker", nameservers: ["127.0.0.11:53"] } });
    const accepted = check("haproxy", ["-c", "-f", writeTemp("haproxy-dns.cfg", resolving)]);
    expect(accepted.output).toMatch(/valid/i);
    expect(accepted.code).toBe(0);
    const refused = check("haproxy", ["-c", "-f", writeTemp("haproxy-no-dns.cfg", renderHaproxyCfg(byName))]);
    expect(refused.output).toMatch(/could not resolve address 'pg-a\.tradeops\.invalid'/);
    expect(refused.code).not.toBe(0);
  });

  it("I5: dnsResolution renders a resolvers section and one default-server line naming it, with init-addr ending in none", () => {
    const resolving = renderHaproxyCfg({ ...byName, dnsResolution: { nameservers: ["10.0.0.2:53", "10.0.0.3:53"], holdValid: "10s" } });
    expect(resolving).toMatch(/^resolvers dns\n {4}nameserver dns1 10\.0\.0\.2:53\n {4}nameserver dns2 10\.0\.0\.3:53\n {4}hold valid 10s\n/m);
    const defaultServers = resolving.split("\n").filter((line) => line.trimStart().startsWith("default-server "));
    expect(defaultServers).toEqual(["    default-server inter 2s fall 3 rise 2 on-marked-down shutdown-sessions init-addr last,libc,none resolvers dns"]);
    expect(check("haproxy", ["-c", "-f", writeTemp("haproxy-dns2.cfg", resolving)]).code).toBe(0);
    expect(cfg).not.toMatch(/resolvers|init-addr/); // unset: addresses resolved once, as the sandbox wants
    expect(() => renderHaproxyCfg({ ...byName, dnsResolution: { nameservers: [] } })).toThrow(/nameserver/);
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
});

describe("alertmanager.yml", () => {
  const telegram = { botToken: "123456:unit-Test-token", chatId: "-1001234567890" };
  const slack = { webhookUrl: "https://hooks.slack.example/services/T0/B0/unit" };
  const discord = { webhookUrl: "https://discord.example/api/webhooks/1/unit" };

  function amtoolCheck(name: string, yml: string) {
    return check("amtool", ["check-config", writeTemp(name, yml)]);
  }

  type ParsedAlertmanager = {
    route: { receiver: string; group_by: string[]; group_wait: string; repeat_interval: string };
    receivers: Array<{ name: string; telegram_configs?: Array<Record<string, unknown>>; slack_configs?: Array<Record<string, unknown>>; discord_configs?: Array<Record<string, unknown>> }>;
  };
  const parsed = (opts: AlertmanagerYmlOptions) => parseYaml(renderAlertmanagerYml(opts)) as ParsedAlertmanager;

  it("I8: amtool check-config accepts alertmanager.yml with the Telegram and Slack receivers", () => {
    const result = amtoolCheck("alertmanager.yml", renderAlertmanagerYml({ receivers: { telegram, slack } }));
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.output).toMatch(/4 receivers/);
    expect(result.code).toBe(0);
    const [receiver] = parsed({ receivers: { telegram, slack } }).receivers;
    expect(receiver!.telegram_configs).toEqual([{ bot_token: telegram.botToken, chat_id: -1001234567890, send_resolved: true }]);
    expect(receiver!.slack_configs).toEqual([{ api_url: slack.webhookUrl, send_resolved: true }]);
    expect(receiver!.discord_configs).toBeUndefined();
  });

  it("Z3: amtool check-config accepts the Discord receiver alongside I8's channels", () => {
    const result = amtoolCheck("alertmanager-discord.yml", renderAlertmanagerYml({ receivers: { telegram, slack, discord } }));
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
    expect(parsed({ receivers: { discord } }).receivers[0]!.discord_configs).toEqual([{ webhook_url: discord.webhookUrl, send_resolved: true }]);
  });

  it("I8: a Telegram chat id that is not numeric is refused at render time, since amtool refuses it too", () => {
    expect(() => renderAlertmanagerYml({ receivers: { telegram: { ...telegram, chatId: "@tradeops_alerts" } } })).toThrow(/Telegram chat id "@tradeops_alerts" is not numeric/);
    expect(() => renderAlertmanagerYml({ receivers: { telegram: { ...telegram, chatId: "" } } })).toThrow(/not numeric/);
    const quoted = renderAlertmanagerYml({ receivers: { telegram } }).replace("chat_id: -1001234567890", 'chat_id: "@tradeops_alerts"');
    expect(amtoolCheck("alertmanager-bad-chat.yml", quoted).code).not.toBe(0);
    expect(parsed({ receivers: { telegram: { ...telegram, chatId: -42 } } }).receivers[0]!.telegram_configs![0]!.chat_id).toBe(-42);
  });

  function routedTo(yml: string, ...labels: string[]): string[] {
    const file = writeTemp("alertmanager-routes.yml", yml);
    return check("amtool", ["config", "routes", "test", `--config.file=${file}`, ...labels]).output.split("\n").filter((line) => line && !line.startsWith("Warning")).join(",").split(",");
  }

  it("I8, Z3: alerts are routed by severity: critical and warning to Telegram, Slack and Discord, info to the chats only (amtool routes test)", () => {
    const yml = renderAlertmanagerYml({ receivers: { telegram, slack, discord } });
    expect(routedTo(yml, "alertname=DrawdownCritical", "severity=critical")).toEqual(["critical"]);
    expect(routedTo(yml, "alertname=DrawdownHigh", "severity=warning")).toEqual(["warning"]);
    expect(routedTo(yml, "alertname=APILatencyAboveTarget", "severity=info")).toEqual(["info"]);
    expect(routedTo(yml, "alertname=Unlabelled")).toEqual(["tradeops"]);
    const byName = Object.fromEntries(parsed({ receivers: { telegram, slack, discord } }).receivers.map((receiver) => [receiver.name, Object.keys(receiver).sort()]));
    expect(byName.critical).toEqual(["discord_configs", "name", "slack_configs", "telegram_configs"]);
    expect(byName.warning).toEqual(["discord_configs", "name", "slack_configs", "telegram_configs"]);
    expect(byName.info).toEqual(["discord_configs", "name", "slack_configs"]);
  });

  it("I8: the daily-loss-critical alert also goes to the kill-switch webhook with the ops API's bearer token; nothing else does", () => {
    const killSwitch = { url: "http://127.0.0.1:15406/api/alerts/kill-switch", bearerToken: "unit-ops-api-token-0123456789" };
    const yml = renderAlertmanagerYml({ receivers: { telegram, killSwitch } });
    expect(amtoolCheck("alertmanager-kill-switch.yml", yml).code).toBe(0);
    expect(routedTo(yml, "alertname=DailyLossCritical", "severity=critical", "family=daily-loss")).toEqual(["kill-switch", "critical"]);
    expect(routedTo(yml, "alertname=DailyLossWarning", "severity=warning", "family=daily-loss")).toEqual(["warning"]);
    const webhook = (parseYaml(yml) as { receivers: Array<{ name: string; webhook_configs?: unknown[] }> }).receivers.find((receiver) => receiver.name === "kill-switch");
    expect(webhook!.webhook_configs).toEqual([{ url: killSwitch.url, send_resolved: false, http_config: { authorization: { type: "Bearer", credentials: killSwitch.bearerToken } } }]);
    expect(renderAlertmanagerYml({ receivers: { telegram } })).not.toMatch(/kill-switch/);
  });

  it("I8: a critical alert inhibits the warning of its own family (and only that family)", () => {
    const rules = (parseYaml(renderAlertmanagerYml({ receivers: {} })) as { inhibit_rules: Array<Record<string, string[]>> }).inhibit_rules;
    expect(rules[0]).toMatchObject({ source_matchers: ['severity="critical"'], target_matchers: ['severity=~"warning|info"'] });
    expect(rules.every((rule) => rule.equal!.includes("family"))).toBe(true);
    const families = new Map<string, Set<string>>();
    for (const rule of alertRules()) families.set(rule.family, (families.get(rule.family) ?? new Set()).add(rule.severity));
    // Every warning/critical pair the seeds give (I8) shares a family, so the inhibition reaches it.
    for (const family of ["drawdown", "api-errors", "decision-latency", "daily-loss", "api-latency", "db-connections"]) {
      expect(families.get(family)!.size, family).toBe(2);
    }
  });

  it("I8: grouping, intervals and send_resolved are options; with no channel set the file is still valid", () => {
    const opts: AlertmanagerYmlOptions = { receivers: {}, receiverName: "ops", groupBy: ["alertname"], groupWait: "10s", repeatInterval: "1h", sendResolved: false };
    const result = amtoolCheck("alertmanager-options.yml", renderAlertmanagerYml(opts));
    expect(result.output).toMatch(/SUCCESS/);
    expect(result.code).toBe(0);
    expect(parsed(opts).route).toMatchObject({ receiver: "ops", group_by: ["alertname"], group_wait: "10s", repeat_interval: "1h" });
    expect(parsed({ ...opts, receivers: { slack } }).receivers[0]!.slack_configs![0]!.send_resolved).toBe(false);
    expect(parsed({ receivers: {} }).route).toMatchObject({ receiver: "tradeops", group_by: ["alertname", "severity"], group_wait: "30s", repeat_interval: "4h" });
  });
});

describe("Grafana datasource provisioning", () => {
  it("S4: Prometheus is provisioned as Grafana's default datasource, proxied through Grafana's server", () => {
    const provisioned = parseYaml(renderGrafanaDatasourceYml({ prometheusUrl: "http://prometheus:9090" })) as { apiVersion: number; datasources: unknown[] };
    expect(provisioned.apiVersion).toBe(1);
    expect(provisioned.datasources).toEqual([{ name: "Prometheus", type: "prometheus", access: "proxy", url: "http://prometheus:9090", isDefault: true }]);
  });

  it("S4: a stable uid and another name are options, for dashboards that reference the datasource", () => {
    const provisioned = parseYaml(renderGrafanaDatasourceYml({ prometheusUrl: "http://127.0.0.1:15407", name: "Prometheus (sandbox)", uid: "prometheus" })) as { datasources: unknown[] };
    expect(provisioned.datasources).toEqual([
      { name: "Prometheus (sandbox)", uid: "prometheus", type: "prometheus", access: "proxy", url: "http://127.0.0.1:15407", isDefault: true },
    ]);
  });
});
