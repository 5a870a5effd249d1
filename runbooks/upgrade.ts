/**
 * `tradeops upgrade app --to RELEASE [--watch 60s]` — Z7, the ZeroQuant seed's upgrade: backup →
 * new version → health check → automatic rollback on failure (Z8's "rebuild on a fresh base image,
 * restart" is the same command with the rebuilt tag).
 *
 * The watch window is what a rolling update's readiness probe cannot see: a release that starts,
 * answers /health/ready, and then fails its requests. For the whole window the app must report the
 * new release, stay ready, and answer a canary request (GET /api/trading/status); its 5xx share of
 * /api/* requests (from its own /metrics) must stay under I8's 5 %. The first breach rolls the app
 * back by itself, and the command exits 1 with the reason.
 */
import { z } from "zod";
import { LivenessReport } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { opsApiRequest } from "../clients/ops-api.ts";
import { backup } from "./backup.ts";
import { Refusal, StepFailure, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { releasePlatformOf, type ReleaseChange } from "./platform/release.ts";
import { appOnRelease, reconcileStep } from "./rollback.ts";
import { until } from "./role-change.ts";

/** I8: API error rate 5 % warns, 10 % pages; an upgrade does not wait for the page. */
const MAX_ERROR_RATE = 0.05;
/** Three canary failures in a row is a broken release, not a blip. */
const CANARY_FAILURES = 3;
const PROBE_EVERY_MS = 500;

export function parseWindow(text: string): number | undefined {
  const match = /^(\d+)(ms|s|m)?$/.exec(text.trim());
  if (!match) return undefined;
  const n = Number(match[1]);
  return match[2] === "m" ? n * 60_000 : match[2] === "ms" ? n : n * 1_000;
}

/** 5xx and all answers to /api/* so far, from the app's request histogram. */
async function apiCounts(outputs: StackOutputs, ctx: Pick<StepContext, "signal">): Promise<{ errors: number; total: number } | undefined> {
  const answer = await opsApiRequest(outputs.opsApi, "/metrics", { signal: ctx.signal, timeoutMs: 1_000 }).catch(() => undefined);
  if (answer?.status !== 200 || typeof answer.body !== "string") return undefined;
  let errors = 0;
  let total = 0;
  for (const line of answer.body.split("\n")) {
    const m = /^http_request_duration_seconds_count\{([^}]*)\} (\S+)$/.exec(line);
    if (!m || !/route="\/api\//.test(m[1]!)) continue;
    const count = Number(m[2]);
    total += count;
    if (/status="5\d\d"/.test(m[1]!)) errors += count;
  }
  return { errors, total };
}

export const upgradeApp = defineRunbook({
  command: ["upgrade", "app"],
  name: "upgrade-app",
  summary: "back up, roll the app forward, watch health and the error rate, roll back by itself on failure",
  features: ["Z7", "Z8", "I4"],
  mutates: true,
  args: z.object({
    to: flag(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._+-]{0,127}$/, "a release (image tag)"), { description: "the release (image tag) to roll forward to", placeholder: "release" }),
    watch: flag(z.string().refine((t) => parseWindow(t) !== undefined, "a duration such as 60s, 2m or 500ms").default("60s"), { description: "how long to watch health and the error rate before calling it done", placeholder: "duration" }),
    skipBackup: flag(z.boolean().optional(), { description: "no backup first (drills; Z7 says back up)" }),
  }),
  steps: (args, target) => {
    const { outputs } = target;
    const platform = () => releasePlatformOf(outputs);
    const windowMs = parseWindow(args.watch)!;
    let from: string | undefined;
    let change: ReleaseChange | undefined;
    /** Z7: back to the release that ran before, by itself; always ends the run with exit 1 and the reason. */
    const rollBackAfter = async (why: string, ctx: StepContext): Promise<never> => {
      ctx.log(`${args.to} ${why}: rolling back to ${from}`);
      const back = await (await platform()).rollBack(from, (line) => ctx.log(line));
      ctx.record("rolledBack", back);
      const healthy = await until(() => appOnRelease(outputs, from!, ctx), 60_000, ctx.signal, 100);
      ctx.record("rolledBackHealthy", healthy);
      throw new StepFailure(
        `release ${args.to} ${why}; rolled back to ${from}${healthy ? ", which is healthy" : ", which is NOT healthy yet"}`,
        healthy ? `find out why ${args.to} fails (its log) before trying again` : "run `tradeops health` and read the app's log",
      );
    };
    return [
      {
        name: `Check that release ${args.to} exists and differs from the running one`,
        readOnly: true,
        action: async (ctx) => {
          const p = await platform();
          from = (await p.releases()).current;
          const known = await p.known();
          if (known && !known.includes(args.to)) throw new Refusal(`no release ${args.to} (known: ${known.join(", ")})`);
          if (from === args.to) ctx.log(`already on ${args.to}: the watch still runs`);
          ctx.record("release", { from, to: args.to });
        },
      },
      ...(args.skipBackup ? [] : backup.steps({ type: "incr", from: "auto" }, target)),
      {
        name: `Roll the app forward to ${args.to}`,
        plan: { sandbox: "restart the reference API on the new release", docker: "recreate the container from the new image tag", kubernetes: "set the Deployment's image and wait for the rollout" }[outputs.platform.kind],
        isDone: async () => (await (await platform()).releases()).current === args.to,
        action: async (ctx) => {
          try {
            change = await (await platform()).deploy(args.to, (line) => ctx.log(line));
          } catch (error) {
            await rollBackAfter(`it did not come up (${oneLine(error)})`, ctx);
          }
          ctx.record("appChange", change);
        },
      },
      {
        name: `Watch health and the error rate for ${args.watch}; roll back by itself on failure`,
        plan: `every ${PROBE_EVERY_MS} ms: /health reports ${args.to}, /health/ready 200, a canary GET /api/trading/status 200; /api/* 5xx share < ${MAX_ERROR_RATE * 100} %; on a breach: back to the release that ran before, and exit 1`,
        action: async (ctx) => {
          const breach = await watch(outputs, args.to, windowMs, ctx);
          if (!breach) return ctx.record("watch", { held: true, windowMs });
          ctx.record("watch", { held: false, windowMs, breach });
          await rollBackAfter(`failed its watch (${breach})`, ctx);
        },
      },
      reconcileStep(outputs, () => args.to),
    ];
  },
  report: (facts) => {
    const release = facts.release as { from: string; to: string } | undefined;
    const watched = facts.watch as { held: boolean; windowMs: number; breach?: string } | undefined;
    const back = facts.rolledBack as ReleaseChange | undefined;
    const lines = [
      release ? `upgrade ${release.from} → ${release.to}` : "upgrade not started",
      watched ? (watched.held ? `watch: ${watched.windowMs / 1000} s clean` : `watch: FAILED (${watched.breach})`) : "watch: not run",
      ...(back ? [`rolled back by itself: ${back.how}${facts.rolledBackHealthy ? " — healthy" : ""}`] : []),
      ...(facts.reconciled ? [`stack config: ${String(facts.reconciled)}`] : []),
    ];
    return { text: lines.join("\n"), json: { release: release ?? null, watch: watched ?? null, rolledBack: back ?? null, reconciled: facts.reconciled ?? null } };
  },
});

/** The first breach in the window, or undefined when the release held. */
async function watch(outputs: StackOutputs, release: string, windowMs: number, ctx: StepContext): Promise<string | undefined> {
  const base = await apiCounts(outputs, ctx);
  const end = Date.now() + windowMs;
  let canaryFailures = 0;
  let lastFailure = "";
  while (Date.now() < end && !ctx.signal.aborted) {
    try {
      const live = await opsApiRequest(outputs.opsApi, "/health", { signal: ctx.signal, timeoutMs: 1_000 });
      const reported = LivenessReport.safeParse(live.body).data?.version;
      if (reported !== release) return `the app reports release ${reported ?? "none"}, not ${release}`;
      const ready = await opsApiRequest(outputs.opsApi, "/health/ready", { signal: ctx.signal, timeoutMs: 1_000 });
      const canary = await opsApiRequest(outputs.opsApi, "/api/trading/status", { signal: ctx.signal, timeoutMs: 1_000 });
      if (ready.status !== 200 || canary.status !== 200) {
        canaryFailures += 1;
        lastFailure = ready.status !== 200 ? `/health/ready answered ${ready.status}` : `the canary GET /api/trading/status answered ${canary.status}`;
      } else canaryFailures = 0;
    } catch (error) {
      canaryFailures += 1;
      lastFailure = `the app does not answer (${oneLine(error)})`;
    }
    if (canaryFailures >= CANARY_FAILURES) return `${lastFailure}, ${canaryFailures} times in a row`;
    const now = await apiCounts(outputs, ctx);
    if (base && now) {
      const total = now.total - base.total;
      const errors = now.errors - base.errors;
      if (total >= 20 && errors / total > MAX_ERROR_RATE) return `API error rate ${((100 * errors) / total).toFixed(1)} % (> ${MAX_ERROR_RATE * 100} %)`;
    }
    await new Promise((resolve) => setTimeout(resolve, PROBE_EVERY_MS));
  }
  return undefined;
}
