/**
 * Rollback figures (issue #10), on a fresh sandbox in a temp dir (base port 28600 unless
 * BENCH_BASE_PORT is set), BENCH_CYCLES cycles (default 5), each through the real CLI:
 *
 *   kill switch   `tradeops kill-switch on`: its first step → the API refusing orders (the report's
 *                 own clock), and the whole command (CLI start to exit)
 *   rollback app  `tradeops rollback app`: first step → healthy on the previous release (the steps'
 *                 durations up to "Wait until the app is healthy"), and the whole command
 *   full          `tradeops rollback app --with-migrations --with-model`: pause → model → app →
 *                 schema down → health → resume, every step, and the whole command
 *
 *   npm run bench:rollback
 *   BENCH_CYCLES=10 npm run bench:rollback
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { opsApiRequest } from "../clients/ops-api.ts";
import { loadOutputs } from "../runbooks/outputs.ts";
import { openSandbox } from "../sandbox/index.ts";
import { tradeops } from "../test/support/tradeops.ts";
import { statsTable } from "./stats.ts";

const cycles = Number(process.env.BENCH_CYCLES ?? 5);
const basePort = process.env.BENCH_BASE_PORT ?? "28600";
const parent = mkdtempSync(join(tmpdir(), "tradeops-bench-rollback-"));
chmodSync(parent, 0o755);
const dir = join(parent, "sandbox");
const outputsFile = join(dir, "outputs.json");
const env = { TRADEOPS_HOME: join(parent, "home") };
const samples: Record<string, number[]> = { killSwitch: [], killSwitchCommand: [], app: [], appCommand: [], full: [], fullCommand: [] };

type Doc = { report: Record<string, unknown>; steps: { name: string; durationMs: number }[] };
async function cli(...args: string[]): Promise<{ doc: Doc; seconds: number }> {
  const started = performance.now();
  const run = await tradeops(["--outputs", outputsFile, "--json", ...args], env);
  const seconds = (performance.now() - started) / 1000;
  if (run.code !== 0) throw new Error(`tradeops ${args.join(" ")} exited ${run.code}: ${run.stderr.trim().split("\n").pop() || run.stdout}`);
  return { doc: JSON.parse(run.stdout) as Doc, seconds };
}
const stepsUpTo = (doc: Doc, prefix?: string) => {
  const until = prefix ? doc.steps.findIndex((s) => s.name.startsWith(prefix)) : doc.steps.length - 1;
  return doc.steps.slice(0, until + 1).reduce((sum, s) => sum + s.durationMs, 0) / 1000;
};

try {
  const up = await tradeops(["sandbox", "up", "--dir", dir, "--base-port", basePort], env);
  if (up.code !== 0) throw new Error(`sandbox up: ${up.stderr.trim().split("\n").pop()}`);
  const sandbox = await openSandbox({ dir });
  const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
  const api = (path: string, body?: unknown) => opsApiRequest(outputs.opsApi, path, body === undefined ? {} : { method: "POST", body });
  const seedModel = ((await api("/health")).body as { model_version: string }).model_version;
  await cli("backup", "--models");
  const modelDir = outputs.app!.models!.dir;
  writeFileSync(join(modelDir, "weights.bin"), "weights of the newer model");
  writeFileSync(join(modelDir, "VERSION"), "bench-newer\n");
  await cli("backup", "--models");

  for (let cycle = 1; cycle <= cycles; cycle++) {
    const on = await cli("kill-switch", "on", "--reason", `bench cycle ${cycle}`);
    samples.killSwitch!.push(Number(on.doc.report.elapsedMs) / 1000);
    samples.killSwitchCommand!.push(on.seconds);
    await api("/api/kill-switch/force-deactivate", { admin_key: outputs.opsApi.killSwitchAdminKey });
    await api("/api/trading/resume", {});

    const app = await cli("rollback", "app");
    samples.app!.push(stepsUpTo(app.doc, "Wait until the app is healthy"));
    samples.appCommand!.push(app.seconds);

    // Back to 1.1.0 (schema 2, migrated up at its start) with the newer model live.
    if (sandbox.app.release().current !== "1.0.0") await sandbox.app.deploy("1.0.0");
    await sandbox.app.deploy("1.1.0");
    await cli("restore", "--models", "bench-newer");
    const full = await cli("rollback", "app", "--with-migrations", "--with-model", seedModel);
    samples.full!.push(stepsUpTo(full.doc));
    samples.fullCommand!.push(full.seconds);
    await sandbox.app.deploy("1.1.0");
    process.stderr.write(`[bench] cycle ${cycle}/${cycles}\n`);
  }
} finally {
  await tradeops(["sandbox", "down", "--purge", "--yes", "--dir", dir], env);
  rmSync(parent, { recursive: true, force: true });
}

console.log(
  statsTable("ROLLBACK BENCH", [
    ["kill-switch on: first step → the API refuses orders", samples.killSwitch!],
    ["kill-switch on, the whole command", samples.killSwitchCommand!],
    ["rollback app: first step → healthy on the previous release", samples.app!],
    ["rollback app, the whole command", samples.appCommand!],
    ["rollback app --with-migrations --with-model: pause → resume", samples.full!],
    ["rollback app --with-migrations --with-model, the whole command", samples.fullCommand!],
  ]),
);
console.log("\nseed targets (I5): app failure RTO 5 min; the whole command includes ~0.7 s of CLI start (field notes)");
