/**
 * Stack `dev` (Docker) under Pulumi mocks: every declared resource and its security-relevant
 * settings, parenting, secrets, the outputs contract, the resource graph, and the uploaded config
 * files checked by the real programs (haproxy, promtool, amtool).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { pathToFileURL } from "node:url";
import * as pulumi from "@pulumi/pulumi";
import { afterAll, beforeAll, describe, expect, test } from "vitest";
import { StackOutputs, secretValues } from "../../contract/outputs.ts";
import { alertRules } from "../../infra/config-files/alert-rules.ts";
import { publish, serviceContainerArgs } from "../../infra/components/docker/container-defaults.ts";
import { noPublicDataPorts } from "../../policy/policies.ts";
import { defaultS3LockKey } from "../../runbooks/locks/index.ts";
import { DEV_SECRETS } from "./pulumi-fixtures.ts";
import { runProgram, secretAt, policyViolations, secretLeaks, type MockedResource, type ProgramRun } from "./pulumi-harness.ts";

const CONFIG = {
  ...DEV_SECRETS,
  apiImage: "ghcr.io/acme/trading-api:1.4.2",
  workerImage: "ghcr.io/acme/trading-worker:1.4.2",
  timescaleImage: "registry.example/timescaledb-ha:pg15-custom",
  redisMaxMemory: "1gb",
  redisMaxMemoryPolicy: "allkeys-lfu",
  telegramChatId: "-100200300",
};

const CONTAINER = "docker:index/container:Container";
const LONG_RUNNING = ["timescale-pg-a", "timescale-pg-b", "traffic", "redis", "api", "worker", "s3", "observability-prometheus", "observability-alertmanager", "observability-grafana", "observability-pg-exporter"];
const ONE_SHOT = ["s3-certificate", "s3-bucket"];

let run: ProgramRun;
const container = (name: string) => run.one(CONTAINER, name);
const uploadOf = (resource: MockedResource, file: string): string => {
  const found = (resource.inputs.uploads ?? []).find((u: { file: string }) => u.file === file);
  if (!found) throw new Error(`${resource.name} uploads no ${file}`);
  return found.content;
};
const uploadIsSecret = (resource: MockedResource, file: string): boolean => {
  const index = (resource.inputs.uploads ?? []).findIndex((u: { file: string }) => u.file === file);
  return secretAt(resource, `uploads.${index}.content`) || secretAt(resource, `uploads.${index}`) || secretAt(resource, "uploads");
};

beforeAll(async () => {
  run = await runProgram({ stack: "dev", config: CONFIG, secretKeys: Object.keys(DEV_SECRETS) });
}, 60_000);

describe("dev stack: containers", () => {
  test("S1: declares the network, every long-running container and the one-shot setup containers", () => {
    expect(run.byType("docker:index/network:Network")).toHaveLength(1);
    expect(run.byType(CONTAINER).map((c) => c.name).sort()).toEqual([...LONG_RUNNING, ...ONE_SHOT].sort());
  });

  test("S1: data lives on named volumes (both database nodes, Redis, the object store, Prometheus, Grafana)", () => {
    const volumes = run.byType("docker:index/volume:Volume").map((v) => v.inputs.name);
    for (const name of ["tradeops-dev-pg-a-data", "tradeops-dev-pg-b-data", "tradeops-dev-redis-data", "tradeops-dev-s3-data", "tradeops-dev-prometheus-data", "tradeops-dev-grafana-data"]) {
      expect(volumes).toContain(name);
    }
    expect(container("timescale-pg-a").inputs.volumes).toContainEqual({ volumeName: "tradeops-dev-pg-a-data", containerPath: "/home/postgres/pgdata" });
  });

  test("S2/Z7: every published port is bound to 127.0.0.1, never Docker's 0.0.0.0 default", () => {
    const ports = run.byType(CONTAINER).flatMap((c) => (c.inputs.ports ?? []).map((p: { ip?: string }) => ({ name: c.name, ip: p.ip })));
    expect(ports.length).toBeGreaterThanOrEqual(9);
    for (const port of ports) expect(port, port.name).toMatchObject({ ip: "127.0.0.1" });
  });

  test("Z7: every container has a CPU and a memory limit, without swap", () => {
    expect(run.byType(CONTAINER)).toHaveLength(LONG_RUNNING.length + ONE_SHOT.length);
    for (const c of run.byType(CONTAINER)) {
      expect(Number(c.inputs.cpus), c.name).toBeGreaterThan(0);
      expect(c.inputs.memory, c.name).toBeGreaterThan(0);
    }
    expect(container("api").inputs).toMatchObject({ cpus: "2", memory: 2048, memorySwap: 2048 });
  });

  test("S1/Z2: long-running containers restart unless stopped and rotate json-file logs at 100m × 5", () => {
    for (const name of LONG_RUNNING) {
      expect(container(name).inputs, name).toMatchObject({ restart: "unless-stopped", logDriver: "json-file", logOpts: { "max-size": "100m", "max-file": "5" } });
    }
    for (const name of ONE_SHOT) expect(container(name).inputs, name).toMatchObject({ restart: "no", mustRun: false });
  });

  test("S1: the database, Redis, proxy, API and object store have health checks; apps wait for healthy data stores (Z4)", () => {
    for (const name of ["timescale-pg-a", "timescale-pg-b", "redis", "traffic", "api", "s3", "observability-prometheus"]) {
      expect(container(name).inputs.healthcheck?.tests?.length, name).toBeGreaterThan(0);
    }
    expect(container("timescale-pg-a").inputs.healthcheck.tests).toEqual(expect.arrayContaining(["pg_isready"]));
    expect(container("api").inputs.healthcheck.tests.join(" ")).toContain("/health/ready");
    expect(container("timescale-pg-a").inputs).toMatchObject({ wait: true });
    expect(container("redis").inputs).toMatchObject({ wait: true });
  });
});

test("S2: ports bind to the configured address; a wildcard is possible, and the policy pack then refuses it for data ports", async () => {
  const site = { networkName: "n", namePrefix: "tradeops-lab", bindAddress: "0.0.0.0" };
  const port = publish(site, 16401, 5432);
  expect(port).toEqual({ internal: 5432, external: 16401, ip: "0.0.0.0", protocol: "tcp" });
  const container = { type: CONTAINER, name: "pg-a", urn: "urn::pg-a", rawInputs: {}, parent: "", provider: "" };
  const inputs = { ...serviceContainerArgs({ site, role: "pg-a", image: "x", limits: { cpu: "1", memory: "1Gi" } }), ports: [port] };
  expect(await policyViolations({ resources: [{ ...container, inputs }] }, [noPublicDataPorts])).toEqual([
    "no-public-data-ports: container pg-a publishes data port 5432 on 0.0.0.0; bind it to 127.0.0.1",
  ]);
});

describe("dev stack: database pair", () => {
  test("the TimescaleDB image comes from config and both nodes run it", () => {
    const image = run.one("docker:index/remoteImage:RemoteImage", "timescale-image");
    expect(image.inputs.name).toBe(CONFIG.timescaleImage);
    expect(container("timescale-pg-a").inputs.image).toBe(container("timescale-pg-b").inputs.image);
  });

  test("I5: pg-b bootstraps as a streaming standby of pg-a through slot pg_b; commits wait for it (sync)", () => {
    expect(container("timescale-pg-b").inputs.envs).toEqual(expect.arrayContaining(["TRADEOPS_BOOTSTRAP=standby", "PRIMARY_HOST=pg-a", "SLOT_NAME=pg_b"]));
    expect(container("timescale-pg-a").inputs.envs).toContain("TRADEOPS_BOOTSTRAP=primary");
    const conf = uploadOf(container("timescale-pg-a"), "/etc/tradeops/postgresql.conf");
    expect(conf).toContain(`synchronous_standby_names = 'FIRST 1 ("pg-b")'`);
    expect(uploadOf(container("timescale-pg-a"), "/docker-entrypoint-initdb.d/50-tradeops.sh")).toContain("pg_create_physical_replication_slot('pg_b')");
  });

  test("I7: WAL is archived continuously to the object store with pgBackRest; retention 30 d full / 7 d WAL", () => {
    const conf = uploadOf(container("timescale-pg-a"), "/etc/tradeops/postgresql.conf");
    expect(conf).toContain("archive_mode = on");
    expect(conf).toMatch(/archive_command = 'pgbackrest --config=\/etc\/pgbackrest\/pgbackrest.conf --stanza=trading archive-push %p'/);
    expect(conf).toContain("shared_preload_libraries = 'timescaledb,pg_stat_statements'");
    const repo = uploadOf(container("timescale-pg-a"), "/etc/pgbackrest/pgbackrest.conf");
    expect(repo).toContain("repo1-s3-endpoint=s3");
    expect(repo).toContain("repo1-s3-bucket=tradeops-backups");
    expect(repo).toContain("repo1-retention-full=30");
    expect(repo).toContain("repo1-retention-archive=7");
    expect(repo).toContain("archive-copy=y");
    expect(repo).toContain("repo1-storage-ca-file=/etc/pgbackrest/certs/public.crt");
  });

  test("S2: passwords reach the database nodes as secret files, never as environment values", () => {
    for (const name of ["timescale-pg-a", "timescale-pg-b"]) {
      const c = container(name);
      expect(uploadIsSecret(c, "/run/secrets/tradeops/db-password"), name).toBe(true);
      expect(uploadIsSecret(c, "/etc/pgbackrest/pgbackrest.conf"), name).toBe(true);
      expect(c.inputs.envs).toContain("POSTGRES_PASSWORD_FILE=/run/secrets/tradeops/db-password");
      expect(c.inputs.envs.join("\n")).not.toContain(DEV_SECRETS.dbPassword);
    }
  });

  test("I5: the traffic proxy sends connections to pg-a and holds pg-b disabled", () => {
    const cfg = uploadOf(container("traffic"), "/usr/local/etc/haproxy/haproxy.cfg");
    expect(cfg).toContain("server pg-a pg-a:5432 check\n");
    expect(cfg).toContain("server pg-b pg-b:5432 check disabled");
  });
});

describe("dev stack: Redis, apps, observability, object store", () => {
  test("S7: Redis keeps AOF everysec, the seed's save rules, and maxmemory + policy from config", () => {
    const conf = uploadOf(container("redis"), "/usr/local/etc/redis/redis.conf");
    for (const line of ["appendonly yes", "appendfsync everysec", "save 900 1", "save 300 10", "save 60 10000", "maxmemory 1gb", "maxmemory-policy allkeys-lfu"]) {
      expect(conf).toContain(line);
    }
    expect(uploadIsSecret(container("redis"), "/usr/local/etc/redis/redis.conf")).toBe(true);
  });

  test("API and worker images come from config; credentials are *_FILE paths to secret uploads", () => {
    expect(run.one("docker:index/remoteImage:RemoteImage", "api-image").inputs.name).toBe(CONFIG.apiImage);
    expect(run.one("docker:index/remoteImage:RemoteImage", "worker-image").inputs.name).toBe(CONFIG.workerImage);
    for (const name of ["api", "worker"]) {
      const envs: string[] = container(name).inputs.envs;
      expect(envs).toEqual(expect.arrayContaining(["DATABASE_HOST=traffic", "DATABASE_PORT=5000", "JWT_SECRET_FILE=/run/secrets/tradeops/jwt_secret"]));
      for (const secret of Object.values(DEV_SECRETS)) expect(envs.join("\n")).not.toContain(secret);
      expect(uploadIsSecret(container(name), "/run/secrets/tradeops/jwt_secret")).toBe(true);
    }
  });

  test("S4/S5: Prometheus gets the shared prometheus.yml and alert rules; Grafana's admin password is a secret file", () => {
    const prometheus = container("observability-prometheus");
    expect(uploadOf(prometheus, "/etc/prometheus/prometheus.yml")).toContain('"api:8080"');
    const rules = uploadOf(prometheus, "/etc/prometheus/rules.yml");
    for (const alert of ["HighAPILatency", "HighQueueSize", "LowDatabaseConnections"]) expect(rules).toContain(`alert: ${alert}`);
    const grafana = container("observability-grafana");
    expect(grafana.inputs.envs).toContain("GF_SECURITY_ADMIN_PASSWORD__FILE=/run/secrets/tradeops/grafana-admin-password");
    expect(uploadIsSecret(grafana, "/run/secrets/tradeops/grafana-admin-password")).toBe(true);
    expect(uploadIsSecret(container("observability-alertmanager"), "/etc/alertmanager/alertmanager.yml")).toBe(true);
  });

  test("the object store serves TLS with a certificate for its alias and gets its credentials from a secret file", () => {
    const store = container("s3");
    expect(store.inputs.command).toEqual(expect.arrayContaining(["--certs-dir", "/certs"]));
    expect(store.inputs.envs).toEqual(["MINIO_CONFIG_ENV_FILE=/etc/minio/config.env"]);
    expect(uploadIsSecret(store, "/etc/minio/config.env")).toBe(true);
    expect(container("s3-certificate").inputs.command[0]).toContain("subjectAltName=DNS:s3,DNS:localhost");
    expect(container("s3-bucket").inputs.command).toEqual(expect.arrayContaining(["mb", "tradeops/tradeops-backups"]));
  });
});

describe("dev stack: structure and outputs", () => {
  test("every resource's parent is its component; only the provider, the network and components are top-level", () => {
    expect(run.resources.length).toBeGreaterThan(0);
    for (const resource of run.resources) {
      if (resource.type.startsWith("tradeops:") || resource.type.startsWith("pulumi:providers:") || resource.type === "docker:index/network:Network") {
        expect(resource.parent, resource.name).toBe("");
      } else {
        expect(resource.parent, `${resource.type} ${resource.name}`).toMatch(/^tradeops:docker:/);
        // Its own component, not a sibling: children are named after their component.
        expect(resource.name.startsWith(resource.parent.split(" ")[1]!), `${resource.name} under ${resource.parent}`).toBe(true);
      }
    }
  });

  test("S2: no secret value appears anywhere in a resource's inputs outside a Pulumi secret", () => {
    expect(secretLeaks(run, DEV_SECRETS)).toEqual([]);
  });

  test("exports parse with the outputs contract as a docker platform; credentials are Pulumi secrets", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.platform).toEqual({
      kind: "docker",
      containers: { primary: "tradeops-dev-pg-a", standby: "tradeops-dev-pg-b", redis: "tradeops-dev-redis", api: "tradeops-dev-api", worker: "tradeops-dev-worker" },
    });
    expect(outputs.database.primary).toMatchObject({ host: "127.0.0.1", port: 16401, role: "primary" });
    expect(outputs.database.traffic).toEqual({ host: "127.0.0.1", port: 16403 });
    expect(outputs.backup).toMatchObject({ endpoint: "localhost", port: 16405, uriStyle: "path", bucket: "tradeops-backups" });
    // Runbooks on the host verify the store's TLS certificate with the file the stack bind-mounts.
    // Under $TRADEOPS_HOME, default <repo>/.tradeops (vitest runs from the repo root).
    expect(outputs.backup.caFile).toBe(join(resolve(process.env.TRADEOPS_HOME ?? ".tradeops"), "stacks/dev/s3-certs/public.crt"));
    expect(container("s3").inputs.volumes).toContainEqual({ hostPath: outputs.backup.caFile!.replace(/\/public\.crt$/, ""), containerPath: "/certs" });
    expect(outputs.notifications.telegram?.chatId).toBe(CONFIG.telegramChatId);
    // #8: the stack lock in the MinIO bucket; monitoring on its host ports; pg-a is home.
    expect(outputs.lock).toEqual({ kind: "s3", key: "locks/pgbackrest/trading.json" });
    expect(outputs.lock).toEqual({ kind: "s3", key: defaultS3LockKey(outputs) });
    expect(outputs.monitoring).toEqual({ prometheusUrl: "http://127.0.0.1:16407", alertmanagerUrl: "http://127.0.0.1:16408" });
    expect(outputs.database.homePrimary).toBe("pg-a");
    for (const secret of [run.exports.database.password, run.exports.redis.password, run.exports.opsApi.token, run.exports.backup.secretAccessKey]) {
      expect(await pulumi.isSecret(secret)).toBe(true);
    }
  });

  test("I5: exports the replication role pg-b streams as (user, and password as a Pulumi secret the runbooks mask)", async () => {
    const outputs = StackOutputs.parse(run.outputs);
    expect(outputs.database.replication).toEqual({ mode: "sync", slot: "pg_b", user: "replicator", password: DEV_SECRETS.replicationPassword, maxLagBytes: 16 * 1024 * 1024 });
    expect(await pulumi.isSecret(run.exports.database.replication.password)).toBe(true);
    expect(secretValues(outputs)).toContain(DEV_SECRETS.replicationPassword);
  });

  test("the stack passes every policy of the policy pack", async () => {
    expect(await policyViolations(run)).toEqual([]);
  });

  test("resource graph snapshot", async () => {
    expect(run.resources).toHaveLength(41);
    await expect(run.graph()).toMatchFileSnapshot("__snapshots__/dev.graph.txt");
  });
});

test("Pulumi.yaml's loader: the ESM program with .ts imports runs under `node --import tsx`, outside vitest", () => {
  const entry = pathToFileURL(join(import.meta.dirname, "..", "..", "infra", "index.ts")).href;
  const script = [
    'import * as pulumi from "@pulumi/pulumi";',
    "await pulumi.runtime.setMocks({ newResource: (a) => ({ id: a.name + '-id', state: a.inputs }), call: () => ({}) }, 'tradeops', 'dev', false);",
    "pulumi.runtime.setAllConfig(JSON.parse(process.env.TRADEOPS_TEST_CONFIG), []);",
    `const program = await import(${JSON.stringify(entry)});`,
    "pulumi.output(program.default().platform).apply((platform) => console.log(JSON.stringify(platform)));",
  ].join("\n");
  const config = Object.fromEntries(Object.entries(CONFIG).map(([key, value]) => [`tradeops:${key}`, value]));
  const out = execFileSync(process.execPath, ["--import", "tsx", "--input-type=module", "-e", script], {
    cwd: join(import.meta.dirname, "..", ".."),
    env: { ...process.env, TRADEOPS_TEST_CONFIG: JSON.stringify(config) },
    encoding: "utf8",
  });
  expect(JSON.parse(out.trim())).toMatchObject({ kind: "docker", containers: { primary: "tradeops-dev-pg-a" } });
});

describe("dev stack: the uploaded config files pass the real programs", () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), "tradeops-dev-files-"));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  test("haproxy -c accepts the traffic proxy's haproxy.cfg", () => {
    const cfg = uploadOf(container("traffic"), "/usr/local/etc/haproxy/haproxy.cfg").replace("/var/lib/haproxy/admin.sock", join(dir, "admin.sock"));
    writeFileSync(join(dir, "haproxy.cfg"), cfg);
    expect(() => execFileSync("haproxy", ["-c", "-f", join(dir, "haproxy.cfg")], { stdio: "pipe" })).not.toThrow();
  });

  test("promtool check config accepts prometheus.yml with its rule file (S5)", () => {
    const prometheus = container("observability-prometheus");
    writeFileSync(join(dir, "rules.yml"), uploadOf(prometheus, "/etc/prometheus/rules.yml"));
    writeFileSync(join(dir, "prometheus.yml"), uploadOf(prometheus, "/etc/prometheus/prometheus.yml").replace("/etc/prometheus/rules.yml", join(dir, "rules.yml")));
    const out = execFileSync("promtool", ["check", "config", join(dir, "prometheus.yml")], { encoding: "utf8", stdio: "pipe" });
    expect(out).toContain(`SUCCESS: ${alertRules().length} rules found`);
  });

  test("S7: redis-server starts with the uploaded redis.conf and runs it as rendered (AOF everysec, maxmemory from config)", async () => {
    const conf = uploadOf(container("redis"), "/usr/local/etc/redis/redis.conf");
    // Only where it writes (Redis changes into `dir` while parsing) and listens are moved to this machine.
    writeFileSync(join(dir, "redis.conf"), conf.replace('dir "/data"', `dir "${dir}"`));
    const port = 17000 + (process.pid % 1000);
    const server = spawn("redis-server", [join(dir, "redis.conf"), "--bind", "127.0.0.1", "--port", String(port)], { stdio: "ignore" });
    const cli = (...args: string[]) => execFileSync("redis-cli", ["-p", String(port), "--no-auth-warning", "-a", DEV_SECRETS.redisPassword, ...args], { encoding: "utf8" }).trim();
    try {
      let pong = "";
      for (let i = 0; i < 50 && pong !== "PONG"; i++) {
        await new Promise((r) => setTimeout(r, 100));
        pong = (() => { try { return cli("ping"); } catch { return ""; } })();
      }
      expect(pong).toBe("PONG");
      expect(cli("config", "get", "appendfsync").split("\n")).toEqual(["appendfsync", "everysec"]);
      expect(cli("config", "get", "maxmemory").split("\n")).toEqual(["maxmemory", String(1024 ** 3)]);
      expect(cli("config", "get", "maxmemory-policy").split("\n")).toEqual(["maxmemory-policy", "allkeys-lfu"]);
      expect(cli("config", "get", "save").split("\n")[1]).toBe("900 1 300 10 60 10000");
      // Without the password it refuses.
      expect(execFileSync("redis-cli", ["-p", String(port), "ping"], { encoding: "utf8" })).toContain("NOAUTH");
    } finally {
      server.kill("SIGKILL");
    }
  });

  test("I8, S4: Grafana is provisioned with the four dashboards as code, their provider, and the datasource uid their panels name", () => {
    const grafana = container("observability-grafana");
    expect(uploadOf(grafana, "/etc/grafana/provisioning/datasources/prometheus.yml")).toContain('uid: "prometheus"');
    expect(uploadOf(grafana, "/etc/grafana/provisioning/dashboards/tradeops.yml")).toContain("path: /etc/grafana/dashboards");
    for (const uid of ["tradeops-trading", "tradeops-system-health", "tradeops-model-performance", "tradeops-postgres-redis"]) {
      const dashboard = JSON.parse(uploadOf(grafana, `/etc/grafana/dashboards/${uid}.json`)) as { uid: string; panels: Array<{ datasource: { uid: string } }> };
      expect(dashboard.uid).toBe(uid);
      expect(dashboard.panels.every((panel) => panel.datasource.uid === "prometheus")).toBe(true);
    }
  });

  test("amtool check-config accepts alertmanager.yml with the Telegram and Slack receivers (I8) and the API's kill-switch webhook", () => {
    const yml = uploadOf(container("observability-alertmanager"), "/etc/alertmanager/alertmanager.yml");
    writeFileSync(join(dir, "alertmanager.yml"), yml);
    const out = execFileSync("amtool", ["check-config", join(dir, "alertmanager.yml")], { encoding: "utf8", stdio: "pipe" });
    expect(out).toContain("SUCCESS");
    expect(out).toMatch(/5 receivers/); // every channel, critical, warning, info, kill-switch
    expect(yml).toMatch(/url: http:\/\/api:\d+\/api\/alerts\/kill-switch/);
    expect(yml).toContain(`credentials: ${DEV_SECRETS.opsApiToken}`);
  });
});
