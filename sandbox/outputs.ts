/**
 * The sandbox's stack outputs: the same contract the Pulumi stacks export, so every runbook runs
 * against the sandbox unchanged.
 */
import { describeIssue, StackOutputs } from "../contract/outputs.ts";
import { DR_NODE, slotOf, standbyOf, type SandboxLayout } from "./layout.ts";
import { appOutputs } from "./releases.ts";
import { S3RVER_CREDENTIALS, type SandboxSecrets } from "./secrets.ts";

export function sandboxOutputs(layout: SandboxLayout, secrets: SandboxSecrets): StackOutputs {
  const { host } = layout;
  const pgNode = (name: "pg-a" | "pg-b", role: "primary" | "standby") => ({
    name,
    host,
    port: layout.pg[name].port,
    role,
    dataDir: layout.pg[name].dataDir,
  });
  const outputs = StackOutputs.safeParse({
    contractVersion: 1,
    stack: "sandbox",
    platform: { kind: "sandbox", dir: layout.dir, osUser: layout.osUser, pgBinDir: layout.pgBinDir },
    database: {
      name: layout.database.name,
      user: layout.database.user,
      password: secrets.pgPassword,
      primary: pgNode(layout.primary, "primary"),
      homePrimary: "pg-a",
      standby: pgNode(standbyOf(layout), "standby"),
      replication: {
        mode: layout.mode,
        slot: slotOf(standbyOf(layout)),
        user: layout.database.replicationUser,
        password: secrets.replicatorPassword,
      },
      traffic: { host, port: layout.ports.traffic },
    },
    redis: { host, port: layout.ports.redis, password: secrets.redisPassword },
    opsApi: { url: `http://${host}:${layout.ports.opsApi}`, token: secrets.opsApiToken, killSwitchAdminKey: secrets.killSwitchAdminKey },
    monitoring: { prometheusUrl: `http://${host}:${layout.ports.prometheus}`, alertmanagerUrl: `http://${host}:${layout.ports.alertmanager}`, textfileDir: layout.metricsTextfileDir },
    lock: { kind: "file" },
    app: appOutputs(layout),
    ...(layout.dr ? { dr: drOutputs(layout, secrets) } : {}),
    backup: {
      type: "s3",
      // Field notes: pgBackRest 2.45 with verify-tls rejects IP-only certificates.
      endpoint: "localhost",
      port: layout.ports.s3,
      region: layout.s3.region,
      bucket: layout.s3.bucket,
      prefix: layout.s3.prefix,
      uriStyle: "path",
      ...S3RVER_CREDENTIALS,
      caFile: layout.s3.cert,
      stanza: layout.pgbackrest.stanza,
      configFile: layout.pgbackrest.config,
    },
  });
  // Never a raw ZodError (a JSON dump on the terminal): one line naming the key.
  if (!outputs.success) throw new Error(`the sandbox at ${layout.dir} yields outputs that break the contract: ${describeIssue(outputs.error)}`);
  return outputs.data;
}

/**
 * The DR site (I5, I6): pg-dr — a standby until `dr activate` promotes it, whatever the live role
 * (runbooks re-check it) — its API, its database endpoint (the node itself: the site has one), and
 * an app the sandbox starts and stops. Users reach whichever site is active through the site switch.
 */
function drOutputs(layout: SandboxLayout, secrets: SandboxSecrets) {
  const { host, dr } = layout;
  return {
    name: "dr",
    region: "sandbox-dr",
    opsApi: { url: `http://${host}:${layout.ports.drOpsApi}`, token: secrets.opsApiToken, killSwitchAdminKey: secrets.killSwitchAdminKey },
    database: { name: DR_NODE, host, port: dr!.node.port, role: "standby" as const, dataDir: dr!.node.dataDir },
    traffic: { host, port: dr!.node.port },
    app: { kind: "sandbox" as const },
  };
}
