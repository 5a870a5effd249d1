/**
 * #8 `tradeops:primaryNode`: after a failover the stack records the node that is primary now, and
 * a deploy keeps it. Flipped dev (HAProxy's enabled server, the roles and containers in the
 * outputs; database containers declared exactly as before) and flipped prod (the read-write
 * Service's selector, the roles, the slot and synchronous standby, the ConfigMap's record).
 */
import { beforeAll, describe, expect, test } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { DEV_SECRETS, PROD_CONFIG, PROD_SECRETS } from "./pulumi-fixtures.ts";
import { runProgram, type ProgramRun } from "./pulumi-harness.ts";

const DEV_CONFIG = { ...DEV_SECRETS, apiImage: "ghcr.io/acme/trading-api:1.4.2", workerImage: "ghcr.io/acme/trading-worker:1.4.2" };
const CONTAINER = "docker:index/container:Container";

const uploadOf = (run: ProgramRun, container: string, file: string): string =>
  run.one(CONTAINER, container).inputs.uploads.find((u: { file: string }) => u.file === file).content;

describe("#8: dev stack with tradeops:primaryNode pg-b", () => {
  let home: ProgramRun;
  let flipped: ProgramRun;
  beforeAll(async () => {
    home = await runProgram({ stack: "dev", config: DEV_CONFIG, secretKeys: Object.keys(DEV_SECRETS) });
    flipped = await runProgram({ stack: "dev", config: { ...DEV_CONFIG, primaryNode: "pg-b" }, secretKeys: Object.keys(DEV_SECRETS) });
  }, 90_000);

  test("I5: HAProxy renders pg-b as the enabled server and pg-a disabled", () => {
    const cfg = uploadOf(flipped, "traffic", "/usr/local/etc/haproxy/haproxy.cfg");
    expect(cfg).toContain("server pg-a pg-a:5432 check disabled");
    expect(cfg).toContain("server pg-b pg-b:5432 check\n");
    expect(uploadOf(home, "traffic", "/usr/local/etc/haproxy/haproxy.cfg")).toContain("server pg-a pg-a:5432 check\n");
  });

  test("the outputs name pg-b primary (its container too) and pg-a standby through slot pg_a; pg-a stays home", () => {
    const outputs = StackOutputs.parse(flipped.outputs);
    expect(outputs.database.primary).toMatchObject({ name: "pg-b", port: 16402, role: "primary" });
    expect(outputs.database.standby).toMatchObject({ name: "pg-a", port: 16401, role: "standby" });
    expect(outputs.database.homePrimary).toBe("pg-a");
    expect(outputs.database.replication.slot).toBe("pg_a");
    expect(outputs.platform).toMatchObject({ kind: "docker", containers: { primary: "tradeops-dev-pg-b", standby: "tradeops-dev-pg-a" } });
  });

  test("a deploy after failover replaces no database container: both are declared exactly as before", () => {
    for (const name of ["timescale-pg-a", "timescale-pg-b", "timescale-pg-a-data", "timescale-pg-b-data"]) {
      const type = name.endsWith("-data") ? "docker:index/volume:Volume" : CONTAINER;
      expect(flipped.one(type, name).inputs, name).toEqual(home.one(type, name).inputs);
    }
    expect(flipped.graph()).toBe(home.graph());
  });
});

describe("#8: prod stack with tradeops:primaryNode timescale-1", () => {
  let flipped: ProgramRun;
  beforeAll(async () => {
    flipped = await runProgram({ stack: "prod", config: { ...PROD_CONFIG, primaryNode: "timescale-1" }, secretKeys: Object.keys(PROD_SECRETS) });
  }, 90_000);

  test("I5: the read-write Service selects timescale-1, with no ignoreChanges left to keep pod -0", () => {
    const rw = flipped.one("kubernetes:core/v1:Service", "timescale-rw").inputs.spec;
    expect(rw.selector).toEqual({ "app.kubernetes.io/name": "timescale", "statefulset.kubernetes.io/pod-name": "timescale-1" });
  });

  test("the ConfigMap records timescale-1 for the start script; timescale-0 is the synchronous standby", () => {
    const configMap = flipped.one("kubernetes:core/v1:ConfigMap", "timescale-config").inputs;
    const data = configMap.data;
    expect(data["primary-node"]).toBe("timescale-1");
    expect(configMap.metadata.annotations).toEqual({ "tradeops.io/stack-primary-node": "timescale-1" });
    expect(data["postgresql.conf"]).toContain(`synchronous_standby_names = 'FIRST 1 ("timescale-0")'`);
    expect(data["start-node.sh"]).toContain('primary_node="$(cat /etc/tradeops/primary-node');
    expect(data["init-primary.sh"]).toContain("pg_create_physical_replication_slot('timescale_0')");
  });

  test("the outputs name timescale-1 primary and timescale-0 its standby through slot timescale_0; timescale-0 stays home", () => {
    const outputs = StackOutputs.parse(flipped.outputs);
    expect(outputs.database.primary).toMatchObject({ name: "timescale-1", host: "timescale-1.timescale-headless.tradeops.svc.cluster.local", role: "primary" });
    expect(outputs.database.standby).toMatchObject({ name: "timescale-0", host: "timescale-0.timescale-headless.tradeops.svc.cluster.local", role: "standby" });
    expect(outputs.database.replication).toMatchObject({ mode: "sync", slot: "timescale_0" });
    expect(outputs.database.homePrimary).toBe("timescale-0");
  });

  test("the resource graph is the committed one: only values change", async () => {
    await expect(flipped.graph()).toMatchFileSnapshot("__snapshots__/prod.graph.txt");
  });
});
