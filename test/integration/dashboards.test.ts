/**
 * The dashboards as code (I8, S4) against the sandbox's real Prometheus: every panel's query names
 * a metric Prometheus holds (from the ops API or an exporter) or a recording rule, and with an
 * exporter down the dashboards say so (its `up` panel reads 0) while `health` still passes and
 * names the blind target.
 */
import { setTimeout as sleep } from "node:timers/promises";
import { describe, expect, inject, it } from "vitest";
import { alertRules } from "../../infra/config-files/alert-rules.ts";
import { DASHBOARDS, renderDashboard } from "../../infra/config-files/grafana-dashboards.ts";
import { HealthDocument } from "../../runbooks/health.ts";
import { loadOutputs } from "../../runbooks/outputs.ts";
import { openSandbox } from "../../sandbox/index.ts";
import { metricNames } from "../support/promql.ts";
import { tradeops } from "../support/tradeops.ts";

const outputsFile = inject("outputsFile");
const outputs = await loadOutputs({ stack: "sandbox", outputsFile });
const prometheus = outputs.monitoring!.prometheusUrl;

async function query(expr: string): Promise<Array<{ value: [number, string] }>> {
  const response = await fetch(`${prometheus}/api/v1/query?query=${encodeURIComponent(expr)}`);
  return ((await response.json()) as { data: { result: Array<{ value: [number, string] }> } }).data.result;
}

/** Prometheus applies new scrape targets in batches (every 5 s): wait until all five jobs' targets were scraped once. */
async function everyTargetScraped(): Promise<void> {
  for (let i = 0; i < 120; i++) {
    const body = (await (await fetch(`${prometheus}/api/v1/targets?state=active`)).json()) as { data: { activeTargets: Array<{ health: string }> } };
    const targets = body.data.activeTargets;
    if (targets.length >= 5 && targets.every((target) => target.health !== "unknown")) return;
    await sleep(250);
  }
  throw new Error("Prometheus has not scraped every target within 30 s");
}

type Panel = { title: string; targets: Array<{ expr: string }> };
const parsed = DASHBOARDS.map((spec) => JSON.parse(renderDashboard(spec)) as { uid: string; title: string; panels: Panel[] });

describe("dashboards as code (I8, S4)", () => {
  it("the metric-name reader finds metrics, not functions, labels or durations", () => {
    expect(metricNames('1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[5m]))')).toEqual(["node_cpu_seconds_total"]);
    expect(metricNames('max(up{job="postgres"}) or vector(0)')).toEqual(["up"]);
  });

  it("I8, S4: every panel's query names a metric the sandbox's Prometheus holds, or a recording rule", async () => {
    await everyTargetScraped();
    const known = new Set(((await (await fetch(`${prometheus}/api/v1/label/__name__/values`)).json()) as { data: string[] }).data);
    const rules = (await (await fetch(`${prometheus}/api/v1/rules?type=record`)).json()) as { data: { groups: Array<{ rules: Array<{ name: string }> }> } };
    for (const group of rules.data.groups) for (const rule of group.rules) known.add(rule.name);
    expect(parsed.map((dashboard) => dashboard.uid)).toEqual(["tradeops-trading", "tradeops-system-health", "tradeops-model-performance", "tradeops-postgres-redis"]);
    const unknown = parsed.flatMap((dashboard) =>
      dashboard.panels.flatMap((panel) => panel.targets.flatMap((target) => metricNames(target.expr).filter((name) => !known.has(name)).map((name) => `${dashboard.title} / ${panel.title}: ${name}`))),
    );
    expect(unknown).toEqual([]);

    // The alert rules read the same series; the backup timestamp comes from `backup` through node-exporter's textfile collector.
    const backup = await tradeops(["--outputs", inject("outputsFile"), "backup", "--type", "incr"]);
    expect(backup.code, backup.stderr).toBe(0);
    let series: unknown[] = [];
    for (let i = 0; i < 100 && series.length === 0; i++) {
      series = ((await (await fetch(`${prometheus}/api/v1/query?query=tradeops_backup_last_success_timestamp_seconds`)).json()) as { data: { result: unknown[] } }).data.result;
      if (series.length === 0) await sleep(200);
    }
    expect(series).toHaveLength(1);
    known.add("tradeops_backup_last_success_timestamp_seconds");
    const notInSandbox = alertRules().flatMap((rule) => metricNames(rule.measure).filter((name) => !known.has(name)).map((name) => `${rule.alert}: ${name}`));
    expect(notInSandbox).toEqual([]);
  });

  it("S4: with the PostgreSQL exporter down, its dashboard says so and health still passes, naming the blind target", async () => {
    const sandbox = await openSandbox({ dir: inject("sandboxDir") });
    await everyTargetScraped();
    const upPanel = parsed.find((dashboard) => dashboard.uid === "tradeops-postgres-redis")!.panels.find((panel) => panel.title === "PostgreSQL exporter")!;
    expect(Number((await query(upPanel.targets[0]!.expr))[0]!.value[1]), JSON.stringify(await (await fetch(`${prometheus}/api/v1/targets`)).json())).toBe(1);
    await sandbox.stop("pg-exporter");
    try {
      let value = 1;
      for (let i = 0; i < 40 && value !== 0; i++) {
        await sleep(250);
        value = Number((await query(upPanel.targets[0]!.expr))[0]!.value[1]);
      }
      expect(value).toBe(0);
      const run = await tradeops(["--outputs", outputsFile, "health", "--json"]);
      expect(run.code, run.stderr).toBe(0);
      const report = HealthDocument.parse(JSON.parse(run.stdout)).report!;
      expect(report.components.find((component) => component.component === "prometheus")).toMatchObject({ status: "healthy", detail: expect.stringMatching(/scrape targets down: postgres/) });
    } finally {
      await sandbox.start("pg-exporter");
    }
  });
});
