/**
 * #8: the database pods' start script follows the ConfigMap's `primary-node` record. Run by bash
 * with stand-ins for postgres, pg_basebackup, pg_receivewal and pg_isready that only log what they
 * were asked, in a scratch PGDATA: which pod starts as primary, and whom every other pod follows.
 */
import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, test } from "vitest";
import { PG_PATHS, nodeStartScript } from "../../infra/components/rendered-files.ts";

let dir: string;
let pgdata: string;
const log = () => (existsSync(join(dir, "log")) ? readFileSync(join(dir, "log"), "utf8") : "");

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), "tradeops-start-script-"));
  pgdata = join(dir, "pgdata", "data");
  mkdirSync(join(dir, "bin"), { recursive: true });
  // The data volume is mounted (empty) before the script runs.
  mkdirSync(join(dir, "pgdata"));
  mkdirSync(join(dir, "secrets"));
  writeFileSync(join(dir, "secrets", "replication-password"), "repl-Secret-1");
  const standIn = (name: string, body: string) => {
    writeFileSync(join(dir, "bin", name), `#!/bin/bash\necho "${name} $*" >> ${join(dir, "log")}\n${body}\n`);
    chmodSync(join(dir, "bin", name), 0o755);
  };
  standIn("postgres", `if [ -f "$PGDATA/standby.signal" ]; then echo "role standby" >> ${join(dir, "log")}; else echo "role primary" >> ${join(dir, "log")}; fi`);
  standIn("pg_isready", "exit 0");
  standIn("pg_receivewal", "exit 0");
  standIn("pg_basebackup", `mkdir -p "${pgdata}" && echo 15 > "${pgdata}/PG_VERSION"`);
  standIn("docker-entrypoint.sh", `echo "initdb" >> ${join(dir, "log")}`);
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** Runs the script as `pod`, with `recorded` in the primary-node file (or no file). */
function startAs(pod: string, recorded: string | undefined): void {
  const recordFile = join(dir, "primary-node");
  if (recorded !== undefined) writeFileSync(recordFile, recorded);
  const script = nodeStartScript({ dbName: "trading", dbUser: "tradeops", replicationUser: "replicator", stanza: "trading", standbySlots: [], recordedPrimaryFile: recordFile })
    .replaceAll(PG_PATHS.home, join(dir, "pgdata"))
    .replaceAll(PG_PATHS.secretsDir, join(dir, "secrets"))
    .replaceAll("/docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh", join(dir, "bin", "docker-entrypoint.sh"));
  writeFileSync(join(dir, "start-node.sh"), script);
  execFileSync("bash", [join(dir, "start-node.sh")], {
    env: { PATH: `${join(dir, "bin")}:${process.env.PATH}`, NODE_NAME: pod, TRADEOPS_BOOTSTRAP: "ordinal", HEADLESS_SERVICE: "timescale-headless.tradeops.svc.cluster.local" },
    stdio: "pipe",
  });
}

function withData(standby: boolean, autoConf = ""): void {
  mkdirSync(pgdata, { recursive: true });
  writeFileSync(join(pgdata, "PG_VERSION"), "15");
  writeFileSync(join(pgdata, "postgresql.auto.conf"), autoConf);
  if (standby) writeFileSync(join(pgdata, "standby.signal"), "");
}

describe("#8: the start script follows the recorded primary", () => {
  test("an empty recorded pod initialises as the primary", () => {
    startAs("timescale-1", "timescale-1");
    expect(log()).toContain("initdb");
    expect(log()).not.toContain("pg_basebackup");
  });

  test("no record: pod -0 is the primary, as before", () => {
    startAs("timescale-0", undefined);
    expect(log()).toContain("initdb");
  });

  test("an empty pod clones the recorded primary through its own slot, created there first", () => {
    startAs("timescale-0", "timescale-1");
    expect(log()).toMatch(/pg_receivewal --create-slot --if-not-exists --slot=timescale_0 .*host=timescale-1\.timescale-headless/);
    expect(log()).toMatch(/pg_basebackup -d host=timescale-1\.timescale-headless\.tradeops\.svc\.cluster\.local .* -S timescale_0/);
    expect(log()).toContain("role standby");
    expect(readFileSync(join(pgdata, "postgresql.auto.conf"), "utf8")).toContain("host=timescale-1.timescale-headless.tradeops.svc.cluster.local");
  });

  test("a former primary with data comes back as a standby of the recorded primary, not a second primary", () => {
    withData(false, "primary_conninfo = 'host=somewhere-else'\nwork_mem = '8MB'\n");
    startAs("timescale-0", "timescale-1");
    expect(log()).toContain("role standby");
    expect(log()).not.toContain("initdb");
    const auto = readFileSync(join(pgdata, "postgresql.auto.conf"), "utf8");
    expect(auto).not.toContain("somewhere-else");
    expect(auto).toContain("work_mem = '8MB'");
    expect(auto.match(/primary_conninfo/g)).toHaveLength(1);
    expect(auto).toContain("primary_slot_name = 'timescale_0'");
  });

  test("the recorded pod with data starts as it was: a pod never promotes itself (pg_promote does, before the record moves)", () => {
    withData(true);
    startAs("timescale-1", "timescale-1");
    expect(log()).toContain("role standby");
    rmSync(join(pgdata, "standby.signal"));
    rmSync(join(dir, "log"));
    startAs("timescale-1", "timescale-1");
    expect(log()).toContain("role primary");
  });
});
