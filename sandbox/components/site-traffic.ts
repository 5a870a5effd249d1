/**
 * The site switch (I5, I6): HAProxy in front of both sites' APIs, the sandbox's stand-in for the
 * Route53 failover record users resolve. One server is in service — the primary site's API, or
 * the DR site's after `dr activate` — and the switch happens on its admin socket, as the record's
 * target changes in Route53.
 */
import { mkdirSync, writeFileSync } from "node:fs";
import { renderHaproxyCfg } from "../../infra/config-files/haproxy.ts";
import type { SandboxComponent } from "../component.ts";
import type { SandboxLayout, SiteName } from "../layout.ts";
import { assertPortFree, livePid, notReady, portOpen, spawnDaemon, stopDaemon, waitUntil } from "../processes.ts";
import { adminCommand, readyServers } from "./haproxy.ts";

const READY_TIMEOUT_MS = 10_000;
const SITE_BACKEND = "be_site";
const SITES: SiteName[] = ["primary", "dr"];

function siteOf(layout: SandboxLayout) {
  if (!layout.dr) throw new Error(`the sandbox at ${layout.dir} has no DR site (\`tradeops sandbox up --with-dr\`)`);
  return layout.dr;
}

export const siteTraffic: SandboxComponent = {
  name: "site-traffic",
  startStep: (layout) => `Start the site switch (HAProxy in front of both sites' APIs; traffic → ${siteOf(layout).activeSite} site)`,
  stopStep: () => "Stop the site switch",
  port: (layout) => layout.ports.site,
  requires: () => [{ binary: "haproxy", debianPackage: "haproxy" }],
  logFile: (layout) => siteOf(layout).site.log,
  pid: (layout) => livePid(siteOf(layout).site.pidFile, layout.dir),
  isUp: async (layout) => livePid(siteOf(layout).site.pidFile, layout.dir) !== undefined && (await portOpen(layout.host, layout.ports.site)),

  async start({ layout }) {
    const dr = siteOf(layout);
    await assertPortFree(layout.host, layout.ports.site, "the site switch");
    mkdirSync(dr.site.dir, { recursive: true, mode: 0o755 });
    const servers = SITES.map((site) => ({
      name: site,
      host: layout.host,
      port: site === "primary" ? layout.ports.opsApi : layout.ports.drOpsApi,
      enabled: site === dr.activeSite,
    }));
    const cfg = renderHaproxyCfg({ name: "site", bind: { host: layout.host, port: layout.ports.site }, servers, statsSocket: dr.site.socket, healthCheck: "tcp", clientTimeout: "1m", serverTimeout: "1m" });
    writeFileSync(dr.site.config, cfg, { mode: 0o644 });
    spawnDaemon(layout, { name: "site-traffic", command: "haproxy", args: ["-db", "-f", dr.site.config], log: dr.site.log, pidFile: dr.site.pidFile });
    if (!(await waitUntil(() => portOpen(layout.host, layout.ports.site), READY_TIMEOUT_MS))) {
      throw notReady("the site switch", `listen on port ${layout.ports.site}`, READY_TIMEOUT_MS, dr.site.log);
    }
  },

  async verify({ layout }) {
    const routed = await siteRoute(layout);
    if (routed !== siteOf(layout).activeSite) throw new Error(`the site switch routes to ${routed ?? "no site"}, not the recorded ${siteOf(layout).activeSite} site`);
  },

  stop: (layout) => stopDaemon(layout, siteOf(layout).site),

  describe: async (layout) => `traffic → ${(await siteRoute(layout)) ?? "no site"}`,
};

/** Users reach `site` alone (its API must answer): the other site's API is put in maintenance and its sessions are cut. */
export async function routeSite(layout: SandboxLayout, site: SiteName): Promise<void> {
  const { socket } = siteOf(layout).site;
  const other = site === "primary" ? "dr" : "primary";
  await adminCommand(socket, `set server ${SITE_BACKEND}/${other} state maint`);
  await adminCommand(socket, `shutdown sessions server ${SITE_BACKEND}/${other}`);
  await adminCommand(socket, `set server ${SITE_BACKEND}/${site} state ready`);
  // Out of maintenance a server counts as down until `rise` checks pass (~4 s); its API answers already.
  await adminCommand(socket, `set server ${SITE_BACKEND}/${site} health up`);
}

/** The site users reach now, as the switch reports it; undefined when it routes to none (or both). */
export async function siteRoute(layout: SandboxLayout): Promise<SiteName | undefined> {
  const ready = await readyServers(siteOf(layout).site.socket, SITE_BACKEND);
  return ready.length === 1 && (ready[0] === "primary" || ready[0] === "dr") ? ready[0] : undefined;
}
