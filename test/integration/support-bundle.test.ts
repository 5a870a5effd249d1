/**
 * `tradeops support-bundle` against the shared sandbox: the archive opens, holds every listed part,
 * and carries no secret value of the outputs (checked with the scanner the command itself uses); a
 * secret planted in a log makes the command refuse, naming the file.
 */
import { appendFileSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, truncateSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { $ } from "zx";
import { afterAll, beforeAll, describe, expect, inject, it } from "vitest";
import { namedSecrets, scanForSecrets } from "../../runbooks/bundle/secret-scan.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { BundleManifest } from "../../runbooks/support-bundle.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const sandboxDir = inject("sandboxDir");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const work = mkdtempSync(join(tmpdir(), "bundle-test-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

beforeAll(() => {
  // Earlier files of the run leak on purpose: runbooks.test.ts runs a 4 s query carrying the API
  // token, and PostgreSQL logs it (log_min_duration_statement). The bundle would rightly refuse;
  // the fix its refusal names is this one: take the secret out of the log.
  const secrets = namedSecrets(outputs);
  for (const log of readdirSync(join(sandboxDir, "logs"))) {
    const file = join(sandboxDir, "logs", log);
    const text = readFileSync(file, "utf8");
    const scrubbed = secrets.reduce((content, secret) => content.split(secret.value).join("****"), text);
    if (scrubbed !== text) writeFileSync(file, scrubbed);
  }
});

describe("support bundle (T5, C9)", () => {
  it("T5: the bundle opens and holds logs of every component, diagnose and doctor output, redacted config and outputs, metrics, versions, the audit log and a manifest; no secret value appears in it", async () => {
    // An audit log to carry: a run that records one.
    await tradeops(["--outputs", outputsFile, "--dry-run", "maintenance", "vacuum"]);
    const archive = join(work, "bundle.tar.gz");
    const run = await tradeops(["--outputs", outputsFile, "support-bundle", "--out", archive, "--since", "2h"]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(new RegExp(`^bundle: ${archive} \\(\\d+\\.\\d kB, \\d+ files; manifest\\.json lists them\\)`));
    const opened = join(work, "opened");
    await $`mkdir -p ${opened} && tar -xzf ${archive} -C ${opened}`;

    const components = readdirSync(join(sandboxDir, "logs")).filter((f) => f.endsWith(".log"));
    for (const log of components) expect(existsSync(join(opened, "logs", log)), log).toBe(true);
    for (const part of ["doctor.txt", "doctor.json", "diagnose.txt", "diagnose.json", "config/outputs.json", "config/redis.conf", "config/pgbackrest.conf", "metrics/ops-api.prom", "versions.json", "audit.jsonl", "manifest.json"]) {
      expect(statSync(join(opened, part)).size, part).toBeGreaterThan(0);
    }
    expect(readFileSync(join(opened, "doctor.txt"), "utf8")).toMatch(/^CHECK\s+STATUS\s+SAW/m);
    expect(readFileSync(join(opened, "metrics/ops-api.prom"), "utf8")).toMatch(/^http_request_duration_seconds_bucket\{/m);
    expect(JSON.parse(readFileSync(join(opened, "versions.json"), "utf8"))).toMatchObject({ "postgresql pg-a": expect.stringMatching(/^PostgreSQL 15/), redis: expect.stringMatching(/^7\./), pgbackrest: expect.stringMatching(/^pgBackRest 2/) });
    expect(JSON.parse(readFileSync(join(opened, "config/outputs.json"), "utf8")).database.password).toBe("****");

    const manifest = BundleManifest.parse(JSON.parse(readFileSync(join(opened, "manifest.json"), "utf8")));
    for (const entry of manifest.collected) expect(existsSync(join(opened, entry.file!)), entry.file).toBe(true);
    expect(manifest.missing).toEqual([]);

    expect(namedSecrets(outputs).map((s) => s.name)).toEqual(expect.arrayContaining(["database.password", "redis.password", "opsApi.token", "backup.secretAccessKey"]));
    expect(scanForSecrets(opened, namedSecrets(outputs))).toEqual([]);
  });

  it("C9: a secret planted in a component's log makes support-bundle refuse (exit 1) naming the file, and no archive is written", async () => {
    const log = join(sandboxDir, "logs", "redis.log");
    const size = statSync(log).size;
    appendFileSync(log, `${new Date().toISOString()} connecting with postgres://tradeops:${outputs.database.password}@db/trading\n`);
    try {
      const archive = join(work, "refused.tar.gz");
      const run = await tradeops(["--outputs", outputsFile, "support-bundle", "--out", archive]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/refused to write the bundle: (.*; )?logs\/redis\.log contains the value of database\.password/);
      expect(run.stderr).not.toContain(outputs.database.password);
      expect(existsSync(archive)).toBe(false);
    } finally {
      truncateSync(log, size);
    }
  });
});
