/**
 * `tradeops dr status` — I5, I6 ("verify DB sync"): how far behind the DR site is — the RPO an
 * activation would have now — whether its app runs, and where users are sent. Exit 1 when the DR
 * node does not answer or is beyond its lag limit, so a cron job or an alert can run it.
 */
import { z } from "zod";
import { StepFailure } from "./engine/errors.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { bytes, table } from "./format.ts";
import { drAppUp, drTarget, measureDrLag, type DrLag } from "./dr-state.ts";
import { drPlatformOf, drSiteOf } from "./platform/dr-site.ts";

export const drStatus = defineRunbook({
  command: ["dr", "status"],
  name: "dr-status",
  summary: "the DR site's lag behind the primary (bytes, seconds: the RPO of an activation now), its app, where traffic goes",
  features: ["I5", "I6"],
  mutates: false,
  target: drTarget,
  args: z.object({}),
  steps: (_args, { outputs }) => {
    const dr = drSiteOf(outputs);
    let lag: DrLag | undefined;
    return [
      {
        name: `Measure ${dr.database.name}'s replay against the primary and the repository`,
        plan: `${dr.database.name}: replay position and last replayed commit; ${outputs.database.primary.name}: current WAL and archiver (the repository's last segment when it does not answer); the DR app; the site switch`,
        action: async (ctx) => {
          const platform = await drPlatformOf(outputs);
          const [measured, appUp, routed, recorded] = await Promise.all([
            measureDrLag(outputs, dr, ctx.signal),
            drAppUp(dr, ctx.signal),
            platform.routedSite().catch(() => undefined),
            platform.recordedSite().catch(() => undefined),
          ]);
          lag = measured;
          ctx.record("dr", reportOf(measured, { appUp, routed, recorded, maxLagSeconds: dr.maxLagSeconds, node: dr.database.name }));
        },
      },
      {
        name: `Confirm ${dr.database.name} answers and is within ${dr.maxLagSeconds} s`,
        readOnly: true,
        action: async () => {
          if (!lag?.node.answers) throw new StepFailure(`${dr.database.name} does not answer (${lag?.node.error ?? "not measured"})`, "the DR site cannot take over until it answers: `tradeops sandbox up` on the sandbox, the DR cluster otherwise");
          if (lag.node.inRecovery === false) return;
          if (lag.lagSeconds === null) throw new StepFailure(`${dr.database.name}'s lag is unknown: it has replayed no transaction yet`, "write to the primary and let archive_timeout pass");
          if (lag.lagSeconds > dr.maxLagSeconds) {
            throw new StepFailure(`${dr.database.name} lags ${lag.lagSeconds.toFixed(1)} s, beyond its ${dr.maxLagSeconds} s limit`, "check the primary's WAL archiving (`tradeops backups check`) and the DR node's log (archive-get)");
          }
        },
      },
    ];
  },
  report: (facts) => {
    const dr = facts.dr as ReturnType<typeof reportOf> | undefined;
    if (!dr) return { text: "not measured", json: null };
    const rows: [string, string][] = [
      ["DR node", `${dr.node}: ${dr.role}`],
      ["replayed to", dr.replayLsn ?? "-"],
      ["last transaction replayed", dr.lastReplayAt ? `${dr.lastReplayAt} (${dr.lastReplayAgeSeconds?.toFixed(1)} s ago)` : "-"],
      ["primary's current WAL", dr.primaryLsn ?? "the primary does not answer"],
      ["last archived WAL", dr.lastArchivedWal ? `${dr.lastArchivedWal}${dr.lastArchivedAt ? ` at ${dr.lastArchivedAt}` : ""}` : "-"],
      ["behind the primary", dr.behindBytes === null ? "unknown (the primary does not answer)" : bytes(dr.behindBytes)],
      ["replayed the repository's last segment", dr.caughtUpWithArchive === null ? "unknown" : dr.caughtUpWithArchive ? "yes" : "no"],
      ["lag (RPO of an activation now)", dr.lagSeconds === null ? "unknown" : `${dr.lagSeconds.toFixed(1)} s (limit ${dr.maxLagSeconds} s)`],
      ["DR app", dr.appUp ? "up" : "down (pilot light)"],
      ["traffic", dr.routed ? `${dr.routed} site` : "unknown"],
    ];
    if (dr.archiveFailing) rows.push(["archiving", `FAILING: ${dr.archiveFailing}`]);
    return { text: table(["DR SITE", "VALUE"], rows), json: dr };
  },
});

function reportOf(lag: DrLag, extra: { appUp: boolean; routed?: string; recorded?: string; maxLagSeconds: number; node: string }) {
  const { node, primary } = lag;
  const role = !node.answers ? `does not answer (${node.error})` : node.inRecovery ? `standby${node.replayPaused ? " (replay PAUSED)" : ""}` : "primary (the DR site is active)";
  return {
    node: extra.node,
    role,
    answers: node.answers,
    inRecovery: node.inRecovery ?? null,
    replayLsn: node.lsn ?? null,
    replayPaused: node.replayPaused ?? null,
    lastReplayAt: node.lastReplayAt?.toISOString() ?? null,
    lastReplayAgeSeconds: node.lastReplayAt ? (Date.now() - node.lastReplayAt.getTime()) / 1000 : null,
    primaryAnswers: primary.answers,
    primaryLsn: primary.currentLsn ?? null,
    lastArchivedWal: primary.lastArchivedWal ?? lag.repositoryLastWal ?? null,
    lastArchivedAt: primary.lastArchivedAt?.toISOString() ?? null,
    archiveFailing: primary.archiveFailing ?? null,
    behindBytes: lag.behindBytes,
    caughtUpWithArchive: lag.caughtUpWithArchive,
    lagSeconds: lag.lagSeconds,
    maxLagSeconds: extra.maxLagSeconds,
    appUp: extra.appUp,
    routed: extra.routed ?? null,
    recordedActiveSite: extra.recorded ?? null,
  };
}
