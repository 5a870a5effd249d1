/**
 * `tradeops alerts` — what is wrong and what to run, on one screen: the firing alerts from
 * Alertmanager (silenced and inhibited ones left out, so a critical hides its own warning as it
 * does in the chats), each with the `tradeops` command its rule names. Where the stack runs no
 * Alertmanager, or it does not answer, Prometheus' own list of firing alerts stands in.
 */
import { z } from "zod";
import { Refusal, oneLine } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { table } from "./format.ts";

const READ_TIMEOUT_MS = 3_000;
const SEVERITY_ORDER = ["critical", "warning", "info"];

/** One firing alert, as both sources give it. */
const FiringAlert = z.object({
  labels: z.record(z.string(), z.string()),
  annotations: z.record(z.string(), z.string()).default({}),
  startsAt: z.string().optional(),
  activeAt: z.string().optional(),
});
const AlertmanagerAlerts = z.array(FiringAlert);
const PrometheusAlerts = z.object({ data: z.object({ alerts: z.array(FiringAlert.extend({ state: z.string() })) }) });

export interface AlertLine {
  alert: string;
  severity: string;
  since: string | null;
  summary: string;
  /** What the rule says to run first. */
  run: string | null;
  /** The labels that say what it is about (queue, instance, mountpoint). */
  about: Record<string, string>;
}

const OWN_LABELS = new Set(["alertname", "severity", "family", "feature", "job"]);

function lineOf(alert: z.infer<typeof FiringAlert>): AlertLine {
  return {
    alert: alert.labels.alertname ?? "unnamed",
    severity: alert.labels.severity ?? "none",
    since: alert.startsAt ?? alert.activeAt ?? null,
    summary: alert.annotations.summary ?? "",
    run: alert.annotations.command ?? null,
    about: Object.fromEntries(Object.entries(alert.labels).filter(([key]) => !OWN_LABELS.has(key))),
  };
}

async function getJson(url: string, signal: AbortSignal): Promise<unknown> {
  const response = await fetch(url, { signal: AbortSignal.any([signal, AbortSignal.timeout(READ_TIMEOUT_MS)]) });
  if (!response.ok) throw new Error(`HTTP ${response.status}`);
  return response.json();
}

const rank = (severity: string) => (SEVERITY_ORDER.includes(severity) ? SEVERITY_ORDER.indexOf(severity) : SEVERITY_ORDER.length);
const bySeverity = (a: AlertLine, b: AlertLine) => rank(a.severity) - rank(b.severity) || a.alert.localeCompare(b.alert);

export const alerts = defineRunbook({
  command: ["alerts"],
  name: "alerts",
  summary: "the firing alerts (Alertmanager, else Prometheus) with the command to run for each",
  features: ["S5", "I8"],
  mutates: false,
  args: z.object({}),
  steps: (_args, { outputs }) => {
    const monitoring = outputs.monitoring;
    return [
      {
        name: "Read the firing alerts",
        plan: monitoring?.alertmanagerUrl ? `GET ${monitoring.alertmanagerUrl}/api/v2/alerts (else Prometheus' /api/v1/alerts)` : "GET Prometheus' /api/v1/alerts",
        readOnly: true,
        action: async (ctx) => {
          if (!monitoring) throw new Refusal("the stack's outputs name no Prometheus or Alertmanager (monitoring)", "add the monitoring outputs to the stack, or look at the dashboards");
          if (monitoring.alertmanagerUrl) {
            try {
              const url = `${monitoring.alertmanagerUrl}/api/v2/alerts?active=true&silenced=false&inhibited=false`;
              const found = AlertmanagerAlerts.parse(await getJson(url, ctx.signal));
              ctx.record("source", "alertmanager");
              ctx.record("alerts", found.map(lineOf).sort(bySeverity));
              return;
            } catch (error) {
              ctx.record("alertmanagerUnreachable", oneLine(error));
              ctx.log(`Alertmanager did not answer (${oneLine(error)}): reading Prometheus instead`);
            }
          }
          try {
            const found = PrometheusAlerts.parse(await getJson(`${monitoring.prometheusUrl}/api/v1/alerts`, ctx.signal));
            ctx.record("source", "prometheus");
            ctx.record("alerts", found.data.alerts.filter((alert) => alert.state === "firing").map(lineOf).sort(bySeverity));
          } catch (error) {
            throw new Refusal(`cannot read the alerts from Prometheus at ${monitoring.prometheusUrl}: ${oneLine(error)}`, "run `tradeops health`: monitoring itself is down");
          }
        },
      },
    ];
  },
  report: (facts) => {
    const lines = (facts.alerts as AlertLine[] | undefined) ?? [];
    const source = String(facts.source ?? "none");
    const json = { source, alerts: lines, ...(facts.alertmanagerUnreachable ? { alertmanagerUnreachable: facts.alertmanagerUnreachable } : {}) };
    if (!facts.source) return { text: "the alerts were not read", json };
    const note = facts.alertmanagerUnreachable ? `\n(Alertmanager did not answer: ${facts.alertmanagerUnreachable}; these are Prometheus' firing alerts, inhibition not applied)` : "";
    if (lines.length === 0) return { text: `no alert is firing (${source})${note}`, json };
    const rows = lines.map((line) => [
      line.severity.toUpperCase(),
      line.alert,
      Object.values(line.about).join(" ") || "-",
      line.since ? line.since.replace(/\.\d+Z$/, "Z") : "-",
      line.summary,
      line.run ?? "-",
    ]);
    return { text: table(["SEVERITY", "ALERT", "ABOUT", "SINCE", "SUMMARY", "RUN"], rows) + note, json };
  },
});
