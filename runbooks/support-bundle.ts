/**
 * `tradeops support-bundle` — T5, C9: one tar.gz to attach to a ticket, like `kubectl cnpg report`
 * and `velero debug`: every component's logs, `diagnose` and `doctor` output, the stack config and
 * outputs with every secret removed, a metrics snapshot, the version of every component, the audit
 * log, and a manifest of what was collected and what could not be (and why).
 *
 * Logs are copied as they are, never masked: a secret in a log is a leak to fix, not to hide. Before
 * the archive is written, every file is scanned for every secret value of the outputs
 * (bundle/secret-scan.ts); one hit and no archive is written: exit 1 naming the file.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { z } from "zod";
import { $ } from "zx";
import { httpRequest } from "../clients/http.ts";
import { projectRoot } from "../contract/home.ts";
import { secretValues, type StackOutputs } from "../contract/outputs.ts";
import { namedSecrets, scanForSecrets } from "./bundle/secret-scan.ts";
import { onPg, onRedis } from "./connect.ts";
import { diagnose } from "./diagnose.ts";
import { CHECKS, renderDoctor, runChecks } from "./doctor.ts";
import { Duration, spell } from "./durations.ts";
import { StepFailure, oneLine } from "./engine/errors.ts";
import { Masker } from "./engine/mask.ts";
import { parseArgs, runRunbook } from "./engine/run.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes } from "./format.ts";
import { dbNodeShell } from "./platform/db-node.ts";
import { logSource } from "./platform/logs.ts";
import { parseRedisInfo } from "./probes.ts";
import { stateDirFor } from "./state.ts";

/** One entry of manifest.json: a file in the bundle, or a part that could not be collected and why. */
export const ManifestEntry = z.object({ part: z.string(), file: z.string().optional(), bytes: z.number().optional(), missing: z.string().optional() });
export const BundleManifest = z.object({
  stack: z.string(),
  createdAt: z.iso.datetime(),
  logsSince: z.string(),
  collected: z.array(ManifestEntry),
  missing: z.array(ManifestEntry),
});
export type BundleManifest = z.infer<typeof BundleManifest>;

const DEFAULT_SINCE = "24h";

export const supportBundle = defineRunbook({
  command: ["support-bundle"],
  name: "support-bundle",
  summary: "one tar.gz of logs, diagnose and doctor output, redacted config and outputs, metrics, versions, audit log; refuses if a secret is in it",
  features: ["T5", "C9"],
  mutates: false,
  args: z.object({
    out: flag(z.string().min(1).optional(), { description: "the archive to write (default ./tradeops-support-<stack>-<time>.tar.gz)", placeholder: "file" }),
    since: flag(Duration.prefault(DEFAULT_SINCE), { description: "logs of this last period", placeholder: "duration", defaultText: DEFAULT_SINCE }),
  }),
  steps: ({ out, since }, { outputs }) => {
    const archive = resolve(out ?? `tradeops-support-${outputs.stack}-${new Date().toISOString().replace(/[-:]/g, "").replace(/\.\d+Z$/, "Z")}.tar.gz`);
    // Made by the first step: a dry run creates nothing.
    let staged: Bundle | undefined;
    const bundle = () => (staged ??= new Bundle(mkdtempSync(join(tmpdir(), "tradeops-bundle-"))));
    const collect = (name: string, plan: string, work: (ctx: StepContext) => Promise<void>) => ({ name, plan, readOnly: true, action: work });
    const steps = [
      collect("Collect the logs of every component", `the last ${spell(since)} of each component's log (${logSource(outputs).origin})`, (ctx) => collectLogs(outputs, since, bundle(), ctx)),
      collect("Run diagnose and doctor", "`tradeops diagnose` and `tradeops doctor`, text and JSON", (ctx) => collectDiagnosis(outputs, bundle(), ctx)),
      collect("Write the stack config and outputs with every secret removed", "outputs.json and the stack's config files, every secret value and credential key masked", async () => collectConfig(outputs, bundle())),
      collect("Take a metrics snapshot", "the ops API's /metrics and Prometheus' targets", (ctx) => collectMetrics(outputs, bundle(), ctx)),
      collect("Record the version of every component", "PostgreSQL (each node), Redis, pgBackRest, the ops API, Prometheus, Node.js, tradeops", (ctx) => collectVersions(outputs, bundle(), ctx)),
      collect("Copy the audit log", `${join(stateDirFor(outputs), "audit.jsonl")}`, async () => bundle().copy("audit log", "audit.jsonl", join(stateDirFor(outputs), "audit.jsonl"))),
      {
        name: "Scan every file for the secret values of the outputs",
        plan: `each file against the ${secretValues(outputs).length} secret values of the outputs; any hit: no archive is written`,
        readOnly: true,
        action: async (ctx: StepContext) => {
          const { dir, entries } = bundle();
          bundle().writeManifest(outputs, since);
          const hits = scanForSecrets(dir, namedSecrets(outputs));
          ctx.record("secretScan", { files: entries.length, hits });
          if (hits.length) {
            rmSync(dir, { recursive: true, force: true });
            const files = [...new Set(hits.map((h) => h.file))];
            throw new StepFailure(
              `refused to write the bundle: ${hits.map((h) => `${h.file} contains the value of ${h.secret}`).join("; ")}`,
              `remove the secret from ${files.join(", ")} (and rotate it: it leaked), then run support-bundle again`,
            );
          }
        },
      },
      {
        name: "Write the archive",
        plan: archive,
        action: async (ctx: StepContext) => {
          const { dir, entries, missing } = bundle();
          try {
            mkdirSync(dirname(archive), { recursive: true });
            await $({ quiet: true })`tar -czf ${archive} -C ${dir} .`;
          } finally {
            rmSync(dir, { recursive: true, force: true });
          }
          ctx.record("bundle", { file: archive, bytes: statSync(archive).size, files: entries.length, missing: missing.map((m) => `${m.part}: ${m.missing}`) });
        },
      },
    ];
    return steps;
  },
  report: (facts) => {
    const written = facts.bundle as { file: string; bytes: number; files: number; missing: string[] } | undefined;
    if (!written) return { text: "no bundle was written", json: null };
    const missing = written.missing.length ? `\nnot collected:\n${written.missing.map((m) => `  ${m}`).join("\n")}` : "";
    return { text: `bundle: ${written.file} (${bytes(written.bytes)}, ${written.files} files; manifest.json lists them)${missing}`, json: written };
  },
});

/** The staging dir and the manifest being built. */
class Bundle {
  readonly entries: z.infer<typeof ManifestEntry>[] = [];
  readonly missing: z.infer<typeof ManifestEntry>[] = [];
  readonly dir: string;

  constructor(dir: string) {
    this.dir = dir;
  }

  write(part: string, file: string, content: string | Buffer): void {
    const path = join(this.dir, file);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, content, { mode: 0o600 });
    this.entries.push({ part, file, bytes: statSync(path).size });
  }

  copy(part: string, file: string, from: string): void {
    if (!existsSync(from)) return this.lack(part, `${from} does not exist`);
    this.write(part, file, readFileSync(from));
  }

  lack(part: string, why: string): void {
    this.missing.push({ part, missing: why });
  }

  writeManifest(outputs: StackOutputs, since: number): void {
    const manifest: BundleManifest = { stack: outputs.stack, createdAt: new Date().toISOString(), logsSince: spell(since), collected: [...this.entries], missing: this.missing };
    writeFileSync(join(this.dir, "manifest.json"), `${JSON.stringify(manifest, null, 2)}\n`, { mode: 0o600 });
  }
}

async function collectLogs(outputs: StackOutputs, since: number, bundle: Bundle, ctx: StepContext): Promise<void> {
  const logs = logSource(outputs);
  const components = await logs.components().catch((error: unknown) => {
    bundle.lack("logs", oneLine(error));
    return [];
  });
  for (const component of components) {
    try {
      const lines = await logs.read(component, { sinceMs: since, signal: ctx.signal });
      bundle.write(`log of ${component}`, `logs/${component}.log`, lines.length ? `${lines.join("\n")}\n` : "");
    } catch (error) {
      bundle.lack(`log of ${component}`, oneLine(error));
    }
  }
}

async function collectDiagnosis(outputs: StackOutputs, bundle: Bundle, ctx: StepContext): Promise<void> {
  const findings = await runChecks(outputs, CHECKS, ctx.signal);
  const report = { status: findings.some((f) => f.status === "fail") ? ("fail" as const) : findings.some((f) => f.status === "warn") ? ("warn" as const) : ("ok" as const), checkedAt: new Date().toISOString(), findings };
  const masker = new Masker(secretValues(outputs));
  bundle.write("doctor", "doctor.txt", `${masker.text(renderDoctor(report))}\n`);
  bundle.write("doctor (JSON)", "doctor.json", `${JSON.stringify(masker.value(report), null, 2)}\n`);
  // diagnose through the engine, as `tradeops diagnose --json` runs it (read-only: no lock, no audit line).
  const result = await runRunbook(diagnose, parseArgs(diagnose, {}), { target: { outputs }, stateDir: stateDirFor(outputs), quiet: true, signal: ctx.signal });
  bundle.write("diagnose", "diagnose.txt", `${result.reportText ?? ""}\n`);
  bundle.write("diagnose (JSON)", "diagnose.json", `${JSON.stringify(result.report, null, 2)}\n`);
}

/** The outputs and config files pass through the masker (values and credential keys); the scan checks it held. */
function collectConfig(outputs: StackOutputs, bundle: Bundle): void {
  const masker = new Masker(secretValues(outputs));
  bundle.write("stack outputs (secrets removed)", "config/outputs.json", `${JSON.stringify(masker.value(outputs), null, 2)}\n`);
  const files: [string, string][] = [];
  if (outputs.platform.kind !== "sandbox") files.push([`Pulumi.${outputs.stack}.yaml`, join(projectRoot, `Pulumi.${outputs.stack}.yaml`)]);
  else {
    const dir = outputs.platform.dir;
    files.push(["sandbox.json", join(dir, "sandbox.json")], ["redis.conf", join(dir, "redis", "redis.conf")], ["haproxy.cfg", join(dir, "haproxy", "haproxy.cfg")], ["pgbackrest.conf", join(dir, "pgbackrest", "pgbackrest.conf")], ["prometheus.yml", join(dir, "prometheus", "prometheus.yml")]);
  }
  if (outputs.backup.configFile && !files.some(([, path]) => path === outputs.backup.configFile)) files.push(["pgbackrest.conf", outputs.backup.configFile]);
  for (const [name, path] of files) {
    if (!existsSync(path)) {
      bundle.lack(`config ${name}`, `${path} does not exist`);
      continue;
    }
    // Pulumi's `secure:` values are ciphertext, but ciphertext is still not for a ticket.
    const text = masker.text(readFileSync(path, "utf8")).replace(/^(\s*[\w.:-]*(?:pass|password|secret|token|key)\s*[:=]\s*).+$/gim, "$1****").replace(/(secure:\s*).+$/gm, "$1****");
    bundle.write(`config ${name} (secrets removed)`, `config/${name}`, text);
  }
}

async function collectMetrics(outputs: StackOutputs, bundle: Bundle, ctx: StepContext): Promise<void> {
  const get = async (part: string, file: string, url: URL) => {
    try {
      const answer = await httpRequest(url, { signal: ctx.signal });
      if (answer.status !== 200) return bundle.lack(part, `${url.href} answered ${answer.status}`);
      bundle.write(part, file, typeof answer.body === "string" ? answer.body : `${JSON.stringify(answer.body, null, 2)}\n`);
    } catch (error) {
      bundle.lack(part, oneLine(error));
    }
  };
  await get("metrics of the ops API", "metrics/ops-api.prom", new URL("/metrics", outputs.opsApi.url));
  if (outputs.monitoring) await get("Prometheus targets", "metrics/prometheus-targets.json", new URL("/api/v1/targets", outputs.monitoring.prometheusUrl));
  else bundle.lack("Prometheus targets", "the stack outputs name no Prometheus");
}

async function collectVersions(outputs: StackOutputs, bundle: Bundle, ctx: StepContext): Promise<void> {
  const options = { signal: ctx.signal, timeoutMs: 5_000 };
  const { database } = outputs;
  const nodes = [database.primary, database.standby].filter((n) => n !== undefined);
  const probes: [string, () => Promise<string>][] = [
    ...nodes.map((node): [string, () => Promise<string>] => [`postgresql ${node.name}`, () => onPg(outputs, node, async (c) => (await c.query("select version() as v")).rows[0].v as string, options)]),
    ["redis", () => onRedis(outputs, async (r) => parseRedisInfo(await r.info("server")).redis_version ?? "?", options)],
    ["pgbackrest", async () => (await dbNodeShell(outputs).exec(database.primary, ["pgbackrest", "version"], ctx.signal)).trim()],
    ["ops-api", async () => String(((await httpRequest(new URL("/health", outputs.opsApi.url), options)).body as { version?: string }).version ?? "?")],
    ["node", async () => process.version],
    ["tradeops", async () => (JSON.parse(readFileSync(join(projectRoot, "package.json"), "utf8")) as { version: string }).version],
  ];
  if (outputs.monitoring) {
    const url = outputs.monitoring.prometheusUrl;
    probes.push(["prometheus", async () => String(((await httpRequest(new URL("/api/v1/status/buildinfo", url), options)).body as { data?: { version?: string } }).data?.version ?? "?")]);
  }
  const settled = await Promise.allSettled(probes.map(([, probe]) => probe()));
  const versions: Record<string, string> = {};
  settled.forEach((result, i) => {
    const [name] = probes[i]!;
    if (result.status === "fulfilled") versions[name] = result.value;
    else bundle.lack(`version of ${name}`, oneLine(result.reason));
  });
  bundle.write("versions", "versions.json", `${JSON.stringify(versions, null, 2)}\n`);
}
