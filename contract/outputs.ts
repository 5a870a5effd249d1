/**
 * The outputs contract: everything a stack exports, and the only thing infra and runbooks share.
 *
 * `pulumi stack output --json --show-secrets` of every stack (dev, prod, dr) and the sandbox's
 * outputs file both parse with `StackOutputs`. Fields marked with `secret()` are Pulumi secrets on
 * the infra side and are masked by the runbooks in every log, audit line and support bundle.
 */
import { z } from "zod";

/** Metadata carried by schema nodes; `secret: true` marks a credential. */
export const contractMeta = z.registry<{ secret?: boolean; description?: string }>();

/** A credential: a non-empty string that must never be printed. */
export const secret = (description: string) => {
  const schema = z.string().min(1, "must not be empty");
  contractMeta.add(schema, { secret: true, description });
  return schema;
};

const port = z.number().int().min(1).max(65535);
const host = z.string().min(1);
const endpoint = z.object({ host, port });

/** One PostgreSQL server of the pair. */
export const PgNode = z.object({
  /** Stable name used in messages and replication slots, e.g. `pg-a`. */
  name: z.string().regex(/^[a-z][a-z0-9_-]*$/, "lowercase letters, digits, - and _"),
  host,
  port,
  /** The role the stack was deployed with; runbooks always re-check the live role with pg_is_in_recovery(). */
  role: z.enum(["primary", "standby"]),
  /** Data directory on the node (local path for the sandbox, path inside the container/pod otherwise). */
  dataDir: z.string().min(1),
});
export type PgNode = z.infer<typeof PgNode>;

export const Database = z.object({
  /** Application database name, e.g. `trading`. */
  name: z.string().min(1),
  /** Superuser-like ops role the runbooks use. */
  user: z.string().min(1),
  password: secret("PostgreSQL password of the ops role"),
  primary: PgNode,
  standby: PgNode.optional(),
  /**
   * The node that is primary when all is well: `failback` returns there after a failover moved
   * the primary (the stack then records the other node as `primary`). @default the first node, e.g. `pg-a`
   */
  homePrimary: z.string().min(1).optional(),
  replication: z.object({
    /** `sync`: commits wait for the standby (RPO 0, I5); `async`: they do not. */
    mode: z.enum(["sync", "async"]),
    /** Physical replication slot the standby streams from. */
    slot: z.string().min(1),
    /** Role the standby connects as (pg_basebackup, rejoining an old primary after failback). */
    user: z.string().min(1).optional(),
    password: secret("PostgreSQL replication password").optional(),
    /** Failover refuses beyond this replay lag unless forced (I6). */
    maxLagBytes: z.number().int().nonnegative().default(16 * 1024 * 1024),
  }),
  /** The endpoint applications connect to (HAProxy / a Service); it must always reach the primary. */
  traffic: endpoint,
});
export type Database = z.infer<typeof Database>;

export const Redis = endpoint.extend({
  password: secret("Redis AUTH password").optional(),
});

/** The trading bot's ops API (I1, I2, I3, Z1): health, metrics, kill switch, pause, positions. */
export const OpsApi = z.object({
  url: z.url({ protocol: /^https?$/ }),
  token: secret("Bearer token of the ops API"),
  /** Lifts a kill switch without its confirmation code (I1 forced deactivation). */
  killSwitchAdminKey: secret("Kill-switch admin key").optional(),
});

export const BackupRepository = z.object({
  type: z.literal("s3"),
  /** S3 endpoint host (no scheme), e.g. `s3.eu-west-1.amazonaws.com` or `localhost` for the sandbox. */
  endpoint: host,
  port: port.default(443),
  region: z.string().min(1),
  bucket: z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "an S3 bucket name"),
  /** Key prefix of the pgBackRest repository inside the bucket, e.g. `/pgbackrest`. */
  prefix: z.string().startsWith("/"),
  uriStyle: z.enum(["host", "path"]).default("host"),
  accessKeyId: secret("S3 access key id"),
  secretAccessKey: secret("S3 secret access key"),
  /** CA bundle for a private endpoint's TLS certificate (sandbox). */
  caFile: z.string().optional(),
  /** pgBackRest stanza, e.g. `trading`. */
  stanza: z.string().regex(/^[a-z][a-z0-9_-]*$/),
  /** Path to the pgbackrest.conf the runbooks use on this machine. */
  configFile: z.string().optional(),
});
export type BackupRepository = z.infer<typeof BackupRepository>;

/**
 * How the DR site's app leaves pilot light (`dr activate`) and goes back to it (`dr failback`).
 */
export const DrApp = z.discriminatedUnion("kind", [
  /** The sandbox's DR ops API, started and stopped through the sandbox's interface. */
  z.object({ kind: z.literal("sandbox") }),
  /** Deployments of the DR cluster, kept at 0 replicas until activation, then scaled to `replicas`. */
  z.object({
    kind: z.literal("kubernetes"),
    namespace: z.string().min(1),
    /** kubeconfig context of the DR cluster. @default the kubeconfig's current context */
    context: z.string().optional(),
    deployments: z.array(z.object({ name: z.string().min(1), replicas: z.number().int().positive() })).min(1),
  }),
]);
export type DrApp = z.infer<typeof DrApp>;

/** The Route53 failover record pair apps resolve (I5, I6): prod owns the PRIMARY half, dr the SECONDARY. */
export const DrDns = z.object({
  zoneId: z.string().min(1),
  recordName: z.string().min(1),
  /** The PRIMARY half's health check (the primary site's API). */
  healthCheckId: z.string().optional(),
  /** The primary site's load balancer host name: the PRIMARY half's target when all is well. */
  primaryTarget: z.string().min(1).optional(),
  /** The DR site's load balancer host name: the SECONDARY half's target, and the PRIMARY half's while the DR site is active. */
  drTarget: z.string().min(1).optional(),
  /** @default 60 */
  ttl: z.number().int().min(1).max(86_400).optional(),
});
export type DrDns = z.infer<typeof DrDns>;

/**
 * The DR site (I5, I6): a standby site fed from the backup repository, where `dr activate` moves
 * the platform and `dr failback` brings it back from. The sandbox's `--with-dr` and the `dr` stack
 * fill it whole; the `prod` stack names the `dr` stack in `stack` and exports its half of `dns`.
 */
export const DrSite = z.object({
  name: z.string().min(1),
  region: z.string().min(1),
  /**
   * The stack that declares the DR site, e.g. `organization/tradeops/dr`: when this block has no
   * `database`, the runbooks read that stack's `dr` block for the rest.
   */
  stack: z.string().regex(/^([\w.-]+\/){0,2}[\w.-]+$/, "a stack name like organization/tradeops/dr").optional(),
  opsApi: OpsApi.optional(),
  /** The DR node: a standby restored from the repository and replaying its WAL (archive-get), promoted by `dr activate`. */
  database: PgNode.optional(),
  /** The endpoint the DR site's app connects to (its read-write Service; the node itself in the sandbox). */
  traffic: endpoint.optional(),
  app: DrApp.optional(),
  /** `dr activate` refuses beyond this replay lag (seconds of data the DR node lacks) unless forced. @default 300 (I5: 5 min) */
  maxLagSeconds: z.number().int().positive().default(300),
  dns: DrDns.optional(),
});
export type DrSite = z.infer<typeof DrSite>;

/** The monitoring that pages people at 3 a.m. (S4, S5): `health` probes it like any component. */
export const Monitoring = z.object({
  /** Prometheus' base URL, e.g. `http://127.0.0.1:15407` (probed at `/-/ready`, rules at `/api/v1/rules`). */
  prometheusUrl: z.url({ protocol: /^https?$/ }),
  /** Alertmanager's base URL (probed at `/-/ready`), where one runs. */
  alertmanagerUrl: z.url({ protocol: /^https?$/ }).optional(),
  /**
   * A node-exporter textfile-collector dir on the machine that runs tradeops: `backup` records each
   * success there (`tradeops_backup_last_success_timestamp_seconds`), the input of the BackupTooOld
   * alert (I6, I7). Without it the alert has no data.
   */
  textfileDir: z.string().min(1).optional(),
});

export const Notifications = z.object({
  telegram: z
    .object({
      botToken: secret("Telegram bot token"),
      chatId: z.string().min(1),
      /** The Bot API's base URL. @default "https://api.telegram.org" (a local fake in tests) */
      apiUrl: z.url({ protocol: /^https?$/ }).optional(),
    })
    .optional(),
  discord: z.object({ webhookUrl: secret("Discord webhook URL") }).optional(),
  slack: z.object({ webhookUrl: secret("Slack webhook URL") }).optional(),
});

/**
 * I7 backup policy; defaults are the seed's. pgBackRest takes whole days; the sets tradeops expires
 * itself (Redis, models) may be kept for a fraction (a test keeps snapshots for seconds).
 */
export const Retention = z.object({
  pgFullDays: z.number().int().positive().default(30),
  walDays: z.number().int().positive().default(7),
  redisSnapshotHours: z.number().positive().default(24),
  modelDays: z.number().positive().default(90),
});

/**
 * I6 (`backups check`): how old the newest backup of each kind may be before it is stale; defaults
 * are the seed's (check_backups.sh). Seconds, so a test can hold a policy of seconds.
 */
export const BackupFreshness = z.object({
  /** PostgreSQL full backups are daily (I7), with 2 h of slack. @default 93600 (26 h) */
  pgFullMaxAgeSeconds: z.number().int().positive().default(26 * 3600),
  /**
   * The last archived WAL. A quiet database archives nothing without `archive_timeout`, so this
   * also holds the stack to setting it. @default 300 (I5: a database failure may lose 5 min)
   */
  walMaxAgeSeconds: z.number().int().positive().default(300),
  /** Redis snapshots are hourly (I7). @default 3600 */
  redisSnapshotMaxAgeSeconds: z.number().int().positive().default(3600),
});
export type BackupFreshness = z.infer<typeof BackupFreshness>;

/** S6, Z7: how long the application's data is kept (`tradeops maintenance retention`); defaults are the seeds'. */
export const DataRetention = z.object({
  /** 1-minute candles (`candles`, timeframe '1m'). */
  candles1mDays: z.number().int().positive().default(365),
  /** Read notifications (`notifications`, is_read). */
  readNotificationsDays: z.number().int().positive().default(90),
  /** Cancelled trades (`trades`, status 'CANCELLED'). */
  cancelledTradesDays: z.number().int().positive().default(180),
  /** TimescaleDB `klines` chunks (`drop_chunks`). */
  klinesDays: z.number().int().positive().default(90),
  /** TimescaleDB: `klines` chunks older than this are compressed (a compression policy). */
  klinesCompressAfterDays: z.number().int().positive().default(7),
});

/**
 * The trading app's releases (I4, Z7, issue 7): what `rollback`, `upgrade` and the model sets act on.
 * A release is an image tag (Docker, Kubernetes) or a release of the sandbox's reference API.
 */
export const AppRelease = z.object({
  /** The release running now, e.g. `1.4.2` (the tag of the image). */
  current: z.string().min(1),
  /** The release before it: where `rollback app` goes without `--to`. */
  previous: z.string().min(1).optional(),
  /** The app's migrations: numbered `NNN.do.<name>.sql` / `NNN.undo.<name>.sql` files (postgrator's convention, the seed's `migrations/rollback/004_rollback.sql`) and the table recording the applied version. */
  migrations: z.object({ dir: z.string().min(1), table: z.string().regex(/^[a-z_][a-z0-9_]*$/).default("schemaversion") }).optional(),
  /** The live model set (files + a VERSION file) the app loads, and its reload endpoint on the ops API. */
  models: z.object({ dir: z.string().min(1), reloadPath: z.string().startsWith("/").default("/api/model/reload") }).optional(),
  /** The Pulumi config key holding the app's image (reconciled after a rollback), e.g. `tradeops:apiImage`. */
  imageConfigKey: z.string().optional(),
  /** The image repository without a tag, e.g. `ghcr.io/your-org/trading-api`. */
  image: z.string().optional(),
});
export type AppRelease = z.infer<typeof AppRelease>;

/** Where and how the stack runs; runbooks pick their platform adapters from `kind`. */
export const Platform = z.discriminatedUnion("kind", [
  z.object({
    kind: z.literal("sandbox"),
    /** Root of the sandbox: data dirs, logs, pid files, this outputs file. */
    dir: z.string().min(1),
    /** OS user PostgreSQL runs as (it refuses root). */
    osUser: z.string().min(1),
    pgBinDir: z.string().min(1),
  }),
  z.object({
    kind: z.literal("docker"),
    /** Container names by role. */
    containers: z.object({
      primary: z.string(),
      standby: z.string().optional(),
      redis: z.string(),
      api: z.string(),
      worker: z.string().optional(),
    }),
  }),
  z.object({
    kind: z.literal("kubernetes"),
    namespace: z.string().min(1),
    context: z.string().optional(),
    deployments: z.object({ api: z.string(), worker: z.string().optional() }),
    statefulSets: z.object({ database: z.string(), redis: z.string() }),
    /** The database's read-write Service, whose selector failover re-points. @default `<statefulSets.database>-rw` */
    services: z.object({ database: z.string().min(1) }).optional(),
    /** The database's ConfigMap, whose `primary-node` key the pods' start script follows. @default `<statefulSets.database>-config` */
    configMaps: z.object({ database: z.string().min(1) }).optional(),
  }),
]);
export type Platform = z.infer<typeof Platform>;

/**
 * The database ConfigMap of a kubernetes stack (`platform.configMaps.database`), as the stack
 * declares it and the failover runbooks rewrite it.
 */
export const DATABASE_CONFIG_MAP = {
  /** Data key: the pod the pods' start script follows as primary (moved when the old primary is fenced). */
  primaryNode: "primary-node",
  /** Annotation: the stack's `tradeops:primaryNode` — as deployed, or as a runbook recorded it with `pulumi config set`. */
  stackPrimaryNode: "tradeops.io/stack-primary-node",
} as const;

/**
 * Where the stack's lock lives: one runbook at a time per cluster, for every operator on every
 * machine. Not set: the sandbox uses a lock file on its machine, every other stack an object in its
 * backup bucket (`locks<prefix>/<stanza>.json`).
 */
export const StackLockLocation = z.discriminatedUnion("kind", [
  /** A file in the machine-wide lock dir (`$TRADEOPS_LOCK_DIR`, default `<tmp>/tradeops-locks`): the sandbox's. */
  z.object({ kind: z.literal("file") }),
  /** An object in the backup bucket, written with S3 conditional writes (If-None-Match / If-Match). */
  z.object({ kind: z.literal("s3"), key: z.string().min(1).regex(/^[^/]/, "an object key (no leading /)") }),
  /** A coordination.k8s.io/v1 Lease in the stack's namespace (kubeconfig from the environment). */
  z.object({ kind: z.literal("kubernetes-lease"), namespace: z.string().min(1), name: z.string().min(1), context: z.string().optional() }),
]);
export type StackLockLocation = z.infer<typeof StackLockLocation>;

/** A stack name (`sandbox`, `dev`, `prod`, `dr`); it names a local state dir, so no paths. */
export const StackName = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/, "a stack name: letters, digits, '.', '_' and '-'");

export const StackOutputs = z.object({
  contractVersion: z.literal(1),
  /** Stack name the outputs belong to. */
  stack: StackName,
  platform: Platform,
  database: Database,
  redis: Redis,
  opsApi: OpsApi,
  backup: BackupRepository,
  dr: DrSite.optional(),
  monitoring: Monitoring.optional(),
  lock: StackLockLocation.optional(),
  app: AppRelease.optional(),
  notifications: Notifications.default({}),
  retention: Retention.default({ pgFullDays: 30, walDays: 7, redisSnapshotHours: 24, modelDays: 90 }),
  freshness: BackupFreshness.prefault({}),
  dataRetention: DataRetention.prefault({}),
});
export type StackOutputs = z.infer<typeof StackOutputs>;
/** What a stack must export, before defaults are applied. */
export type StackOutputsInput = z.input<typeof StackOutputs>;

/**
 * Every secret value inside parsed outputs, found by walking the schema (not by guessing from key
 * names), so a new `secret()` field is masked without touching the runbooks.
 */
export function secretValues(outputs: unknown, schema: z.ZodType = StackOutputs): string[] {
  const found: string[] = [];
  const walk = (node: z.ZodType, value: unknown): void => {
    if (value === undefined || value === null) return;
    if (contractMeta.get(node)?.secret && typeof value === "string") {
      found.push(value);
      return;
    }
    const def = (node as z.ZodType & { _zod: { def: Record<string, unknown> } })._zod.def;
    switch (def.type) {
      case "optional":
      case "nullable":
      case "default":
      case "prefault":
        return walk(def.innerType as z.ZodType, value);
      case "object":
        for (const [key, child] of Object.entries(def.shape as Record<string, z.ZodType>)) {
          walk(child, (value as Record<string, unknown>)[key]);
        }
        return;
      case "union":
        for (const option of def.options as z.ZodType[]) {
          if (option.safeParse(value).success) return walk(option, value);
        }
        return;
      case "array":
        for (const item of value as unknown[]) walk(def.element as z.ZodType, item);
        return;
    }
  };
  walk(schema, outputs);
  return found;
}

/** One line naming the first bad key: `database.primary.port: expected number, received string`. */
export function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0];
  if (!issue) return "invalid value";
  const path = issue.path.length ? issue.path.join(".") : "(root)";
  const more = error.issues.length > 1 ? ` (+${error.issues.length - 1} more)` : "";
  return `${path}: ${issue.message}${more}`;
}
