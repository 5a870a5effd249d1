/**
 * What the DR runbooks do to the two sites beyond SQL (I5, I6) — which site users reach, each
 * site's app, the DR node's life as a standby fed from the repository, and the record of which
 * site is active — behind one interface, so `dr activate` and `dr failback` never branch on the
 * platform.
 *
 * The sandbox goes through its one interface (the site switch, its two APIs, pg-dr); a Route53
 * failover pair in the outputs (`dr.dns`) is rewritten on every platform that has one. On
 * Kubernetes the apps are Deployments scaled through the API server; re-seeding nodes there is a
 * procedure of the cluster (docs/deploy.md), so those steps refuse, naming it.
 */
import type { DrSite, PgNode, StackOutputs } from "../../contract/outputs.ts";
import { openSandbox, type PgNodeName, type Sandbox, type SiteName } from "../../sandbox/index.ts";
import { Refusal, StepFailure } from "../engine/errors.ts";
import type { Route53FailoverTraffic } from "./traffic-route53.ts";

export type { SiteName };

export interface DrPlatform {
  /** Users reach `site` alone (the site switch, the Route53 pair); says what changed. */
  routeSite(site: SiteName): Promise<string>;
  /** The site users reach now; undefined when no switch can say (Route53 answers by health too). */
  routedSite(): Promise<SiteName | undefined>;
  /** What keeps the primary site from taking the platform back (its machines, its repository), one phrase each; none: it is back. */
  primarySiteProblems(): Promise<string[]>;
  /** The primary site's app stops taking orders; "not reachable" when its platform does not answer. */
  stopPrimaryApp(log: (line: string) => void): Promise<string>;
  /** The primary site's database traffic endpoint runs (a whole-site loss may have taken it too). */
  startPrimaryEndpoint(log: (line: string) => void): Promise<void>;
  startPrimaryApp(log: (line: string) => void): Promise<void>;
  /** The DR site's app leaves pilot light / goes back to it. */
  startDrApp(log: (line: string) => void): Promise<void>;
  stopDrApp(log: (line: string) => void): Promise<void>;
  /** `pg_ctl stop -m fast` of the DR node (its shutdown checkpoint streams to its standbys). */
  stopDrNode(log: (line: string) => void): Promise<void>;
  /** The stopped or crashed `node` of the primary site follows the DR node: pg_rewind, its standby, streaming. */
  followDr(node: PgNode, log: (line: string) => void): Promise<"rewound" | "no rewind required" | "restored from a fresh backup of pg-dr">;
  /** The DR node goes back to a standby fed from the repository, following `source`'s timeline. */
  drBackToStandby(source: PgNode, log: (line: string) => void): Promise<"rewound" | "no rewind required">;
  /** Records which site is active where the stack keeps it; says where. */
  recordActiveSite(site: SiteName): Promise<string>;
  /** The site recorded as active, where the stack keeps one. */
  recordedSite(): Promise<SiteName | undefined>;
}

/** The DR site of these outputs, or a refusal saying it is not configured (nothing changed). */
export function drSiteOf(outputs: StackOutputs): DrSite & { database: PgNode } {
  const dr = outputs.dr;
  if (!dr?.database) {
    throw new Refusal(
      `stack ${outputs.stack} has no DR site${dr?.stack ? ` (its dr block names stack ${dr.stack}, which exports no DR node)` : ""}`,
      outputs.platform.kind === "sandbox" ? "`tradeops sandbox up --with-dr` adds one to the sandbox" : "deploy the `dr` stack (docs/deploy.md) and set `tradeops:drStack` on this one",
    );
  }
  return dr as DrSite & { database: PgNode };
}

export async function drPlatformOf(outputs: StackOutputs): Promise<DrPlatform> {
  const dr = drSiteOf(outputs);
  // The AWS and Kubernetes clients load only where the outputs need them.
  const aws = dr.dns ? await import("./traffic-route53.ts") : undefined;
  const route53 = aws && dr.dns ? new aws.Route53FailoverTraffic({ zoneId: dr.dns.zoneId, recordName: dr.dns.recordName }) : undefined;
  const upsert = async (site: SiteName) => {
    if (!aws || !route53 || !dr.dns) return undefined;
    const change = aws.siteRecordChange(dr.dns, site);
    const id = await route53.upsert(change);
    return `Route53: the PRIMARY half of ${dr.dns.recordName} → ${change.target} (change ${id || "accepted"})`;
  };
  switch (outputs.platform.kind) {
    case "sandbox":
      return sandboxDrPlatform(await openSandbox({ dir: outputs.platform.dir }), upsert, route53 && dr.dns ? () => routedRecord(route53, dr.dns!) : undefined);
    case "kubernetes":
      return kubernetesDrPlatform(outputs, dr, upsert, route53, (await import("./dr-kubernetes.ts")).KubernetesDeployments);
    case "docker":
      throw new Refusal("the dev stack (Docker) has no DR site", "the DR site is the `dr` stack, on Kubernetes (docs/deploy.md)");
  }
}

// ---- the sandbox ----------------------------------------------------------------------------------

/** The site the Route53 pair's PRIMARY half points at, by its target. */
async function routedRecord(route53: Route53FailoverTraffic, dns: NonNullable<DrSite["dns"]>): Promise<SiteName | undefined> {
  const target = await route53.primaryTarget();
  if (!target) return undefined;
  if (target === dns.drTarget) return "dr";
  return target === dns.primaryTarget ? "primary" : undefined;
}

/** `record`: where a Route53 pair in the outputs sends users too (both must agree for a site to count as routed). */
function sandboxDrPlatform(sandbox: Sandbox, upsert: (site: SiteName) => Promise<string | undefined>, record?: () => Promise<SiteName | undefined>): DrPlatform {
  const dr = () => {
    if (!sandbox.dr) throw new Refusal(`the sandbox at ${sandbox.dir} has no DR site`, "`tradeops sandbox up --with-dr`");
    return sandbox.dr;
  };
  const pairNode = (node: PgNode): PgNodeName => {
    if (node.name !== "pg-a" && node.name !== "pg-b") throw new StepFailure(`${node.name} is not a node of the sandbox's primary site`);
    return node.name;
  };
  return {
    async routeSite(site) {
      await dr().route(site);
      const record = await upsert(site);
      return [`the site switch → ${site} site`, record].filter(Boolean).join("; ");
    },
    async routedSite() {
      const routed = await dr().routedTo();
      if (!record) return routed;
      return routed === (await record()) ? routed : undefined;
    },
    async primarySiteProblems() {
      // What failback cannot start itself: the repository (re-seeding, archiving) and Redis (the app).
      const { components } = await sandbox.status();
      return components.filter((c) => (c.name === "s3" || c.name === "redis") && c.state !== "up").map((c) => `${c.name} is down`);
    },
    async stopPrimaryApp(log) {
      if (sandbox.pid("ops-api") === undefined) return "was not running";
      await sandbox.stop("ops-api", log);
      return "stopped";
    },
    startPrimaryEndpoint: (log) => sandbox.start("haproxy", log),
    startPrimaryApp: (log) => sandbox.start("ops-api", log),
    startDrApp: (log) => sandbox.start("dr-ops-api", log),
    stopDrApp: (log) => sandbox.stop("dr-ops-api", log),
    stopDrNode: (log) => sandbox.stop("pg-dr", log),
    followDr: (node, log) => dr().followDr(pairNode(node), log),
    drBackToStandby: (source, log) => dr().backToStandby(pairNode(source), log),
    async recordActiveSite(site) {
      await dr().recordActiveSite(site);
      return `${sandbox.dir}/sandbox.json`;
    },
    recordedSite: async () => dr().activeSite(),
  };
}

// ---- Kubernetes -----------------------------------------------------------------------------------

function kubernetesDrPlatform(
  outputs: StackOutputs,
  dr: DrSite,
  upsert: (site: SiteName) => Promise<string | undefined>,
  route53: Route53FailoverTraffic | undefined,
  KubernetesDeployments: typeof import("./dr-kubernetes.ts").KubernetesDeployments,
): DrPlatform {
  const platform = outputs.platform as Extract<StackOutputs["platform"], { kind: "kubernetes" }>;
  const app = dr.app;
  const drApp = () => {
    if (app?.kind !== "kubernetes") throw new Refusal("the DR site's outputs name no Deployments to scale (dr.app)", "deploy the `dr` stack, which exports them");
    return { deployments: new KubernetesDeployments({ namespace: app.namespace, context: app.context }), list: app.deployments };
  };
  const primaryApp = new KubernetesDeployments({ namespace: platform.namespace, context: platform.context });
  const primaryDeployments = [platform.deployments.api, platform.deployments.worker].filter((name): name is string => Boolean(name));
  const byHand = (what: string) =>
    new Refusal(`${what} is not automated on Kubernetes`, "follow docs/deploy.md, \"The DR site\" → failback: re-seed the prod database from the DR site, then run `tradeops dr failback` again");
  return {
    async routeSite(site) {
      const record = await upsert(site);
      if (!record) throw new Refusal("the DR site has no Route53 failover pair in the outputs (dr.dns): nothing would move users", "deploy prod with dnsZoneId/dnsRecordName");
      return record;
    },
    routedSite: async () => (route53 && dr.dns ? routedRecord(route53, dr.dns) : undefined),
    async primarySiteProblems() {
      return primaryApp.replicas(primaryDeployments[0]!).then(
        () => [],
        (error: unknown) => [`its API server does not answer (${error instanceof Error ? error.message : String(error)})`],
      );
    },
    async stopPrimaryApp(log) {
      try {
        for (const name of primaryDeployments) await primaryApp.scale(name, 0);
        return `scaled ${primaryDeployments.join(", ")} to 0`;
      } catch (error) {
        log(`the primary site's API server does not answer (${error instanceof Error ? error.message : String(error)})`);
        return "not reachable";
      }
    },
    // The database's read-write Service needs no start.
    startPrimaryEndpoint: async () => {},
    startPrimaryApp: async () => {
      throw byHand("starting the primary site's app again");
    },
    async startDrApp(log) {
      const { deployments, list } = drApp();
      for (const { name, replicas } of list) await deployments.scale(name, replicas);
      for (const { name, replicas } of list) {
        await deployments.waitReady(name, replicas, 180_000);
        log(`${name}: ${replicas} replica(s) ready`);
      }
    },
    async stopDrApp() {
      const { deployments, list } = drApp();
      for (const { name } of list) await deployments.scale(name, 0);
    },
    stopDrNode: async () => {
      throw byHand("stopping the DR node");
    },
    followDr: async () => {
      throw byHand("re-seeding the primary site's database from the DR site");
    },
    drBackToStandby: async () => {
      throw byHand("making the DR node a standby again");
    },
    recordActiveSite: async (site) => `not recorded: a Kubernetes stack keeps no active site (the Route53 pair says it: ${site})`,
    recordedSite: async () => undefined,
  };
}
