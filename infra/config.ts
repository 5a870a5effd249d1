/**
 * Stack configuration: what `Pulumi.<stack>.yaml` may hold, parsed with zod before any resource
 * is declared. A wrong, unknown or missing key stops `pulumi up` with one line naming it:
 *
 *   tradeops:redisMaxMemory: expected a size like 2gb
 *
 * Keys are flat (`tradeops:<key>`) except `resources` and `retention`, which are objects
 * (`pulumi config set --path 'tradeops:resources.api.cpu' 2`). Secrets are read here as plain
 * strings only to be checked (S2: length, entropy, defaults) and leave this module wrapped in
 * `pulumi.secret`, so nothing downstream can print them.
 */
import * as pulumi from "@pulumi/pulumi";
import { z } from "zod";
import { Retention } from "../contract/outputs.ts";

export const CONFIG_NAMESPACE = "tradeops";
export type StackKind = "dev" | "prod" | "dr";

/** The error `pulumi up` prints: a RunError is shown as its message alone, without a stack trace. */
export class ConfigError extends pulumi.RunError {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

// ---- value types ------------------------------------------------------------------------------

/** Pulumi passes every config value as a string; numbers and booleans arrive as "2" and "true". */
const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.preprocess(
    (value) => (typeof value === "string" && /^-?\d+$/.test(value.trim()) ? Number(value) : value),
    z.number({ error: "expected a whole number" }).int("expected a whole number").min(min, `expected a number ≥ ${min}`).max(max, `expected a number ≤ ${max}`),
  );

/** Redis sizes: `2gb`, `512mb`, `100000` (bytes). */
const redisSize = z.string().regex(/^\d+(b|kb|mb|gb)?$/i, "expected a size like 2gb");
/** Kubernetes quantities, also used for Docker limits: `2`, `500m` (CPU); `2Gi`, `512Mi` (memory). */
const cpuQuantity = z.string().regex(/^(\d+(\.\d+)?|\d+m)$/, "expected a CPU quantity like 2 or 500m");
const memoryQuantity = z.string().regex(/^\d+(Ki|Mi|Gi|Ti)$/, "expected a memory quantity like 2Gi or 512Mi");
const storageQuantity = z.string().regex(/^\d+(Mi|Gi|Ti)$/, "expected a storage size like 100Gi");
const image = z.string().regex(/^[a-z0-9][\w./:@-]*$/i, "expected a container image like registry/name:tag");
const ipv4 = z.string().regex(/^(\d{1,3})(\.\d{1,3}){3}$/, "expected an IPv4 address like 127.0.0.1");
const cidr = z.string().regex(/^(\d{1,3})(\.\d{1,3}){3}\/\d{1,2}$/, "expected a CIDR like 172.28.0.0/16");
const hostname = z.string().regex(/^(?=.{1,253}$)([a-z0-9]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}$/i, "expected a DNS name like api.example.com");
const dnsLabel = z.string().regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/, "expected a DNS label (lowercase letters, digits, -)");
/** A Pulumi stack name, bare or qualified (`dr`, `organization/tradeops/dr`). */
const stackName = (example: string) => z.string().regex(/^([\w.-]+\/){0,2}[\w.-]+$/, `expected a stack name like ${example}`);
const awsRegion = z.string().regex(/^[a-z]{2}(-gov)?-[a-z]+-\d$/, "expected an AWS region like eu-west-1");
const bucketName = z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, "expected an S3 bucket name (3-63 lowercase letters, digits, . and -)");
const stanza = z.string().regex(/^[a-z][a-z0-9_-]*$/, "expected lowercase letters, digits, - and _");
const roleName = z.string().regex(/^[a-z_][a-z0-9_]*$/, "expected a PostgreSQL role name (lowercase, digits, _)");
/** A secret is any non-empty string here; S2's strength rules are checked per stack kind below. */
const secretString = z.string().min(1, "must not be empty");

/** `pulumi config set --path` may store `2` as a number. */
const quantity = (schema: z.ZodString) => z.preprocess((value) => (typeof value === "number" ? String(value) : value), schema);
const limits = (cpu: string, memory: string) =>
  z.strictObject({ cpu: quantity(cpuQuantity).default(cpu), memory: quantity(memoryQuantity).default(memory) }).prefault({});

/** Numbers inside structured config may arrive as strings ("7"). */
const numbersIn = (value: unknown) =>
  value && typeof value === "object" && !Array.isArray(value)
    ? Object.fromEntries(Object.entries(value).map(([key, item]) => [key, typeof item === "string" && /^\d+$/.test(item) ? Number(item) : item]))
    : value;

/**
 * CPU and memory limits per workload (Z7: the API gets 2 CPU / 2 GiB). Requests are a quarter of
 * the limits (see `requestsFor`).
 */
const Resources = z
  .strictObject({
    api: limits("2", "2Gi"),
    worker: limits("1", "1Gi"),
    timescale: limits("2", "4Gi"),
    redis: limits("1", "3Gi"),
    proxy: limits("500m", "256Mi"),
    prometheus: limits("1", "2Gi"),
    alertmanager: limits("250m", "256Mi"),
    grafana: limits("500m", "512Mi"),
    objectStore: limits("500m", "1Gi"),
    backupJob: limits("1", "1Gi"),
  })
  .prefault({});
export type Resources = z.infer<typeof Resources>;
export type WorkloadLimits = Resources["api"];

// ---- the schema -------------------------------------------------------------------------------

/** Keys every stack has. */
const common = {
  kind: z.enum(["dev", "prod", "dr"], { error: "expected dev, prod or dr" }),
  dbName: roleName.default("trading"),
  dbUser: roleName.default("tradeops"),
  dbPassword: secretString,
  replicationUser: roleName.default("replicator"),
  replicationPassword: secretString,
  stanza: stanza.default("trading"),
  redisPassword: secretString,
  /** S7 */
  redisMaxMemory: redisSize.default("2gb"),
  /** S7, C4 */
  redisMaxMemoryPolicy: z
    .enum(["noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"], {
      error: "expected a Redis maxmemory-policy such as allkeys-lru",
    })
    .default("allkeys-lru"),
  jwtSecret: secretString,
  opsApiToken: secretString,
  grafanaAdminPassword: secretString,
  apiImage: image,
  workerImage: image,
  /** A TimescaleDB image that ships pgBackRest (the HA image does); runs as uid 1000 with PGDATA below. */
  timescaleImage: image.default("timescale/timescaledb-ha:pg15"),
  redisImage: image.default("redis:7.2"),
  prometheusImage: image.default("prom/prometheus:v2.53.0"),
  alertmanagerImage: image.default("prom/alertmanager:v0.27.0"),
  grafanaImage: image.default("grafana/grafana:11.1.0"),
  /** S4/S5: LowDatabaseConnections needs postgres_exporter's metrics. */
  pgExporterImage: image.default("prometheuscommunity/postgres-exporter:v0.15.0"),
  /** Port the API container listens on (health, metrics and the ops endpoints). */
  apiPort: int(1, 65535).default(8080),
  resources: Resources,
  /** I7; the contract's defaults (30 d full, 7 d WAL, 24 h Redis, 90 d models). */
  retention: z.preprocess(numbersIn, z.strictObject(Retention.shape)).prefault({}),
  telegramBotToken: secretString.optional(),
  /** Alertmanager takes a numeric chat id only (a channel @name is refused there). @example "-1001234567890" */
  telegramChatId: z.string().regex(/^-?\d+$/, "a numeric Telegram chat id, e.g. -1001234567890").optional(),
  slackWebhookUrl: secretString.optional(),
  discordWebhookUrl: secretString.optional(),
};

/** Keys of the Kubernetes stacks (prod and dr). */
const kubernetes = {
  namespace: dnsLabel.default("tradeops"),
  /** Kubeconfig contents (a secret); unset = the ambient kubeconfig of whoever runs `pulumi up`. */
  kubeconfig: secretString.optional(),
  kubeContext: z.string().min(1).optional(),
  storageClass: z.string().min(1).optional(),
  pgStorageSize: storageQuantity.default("100Gi"),
  redisStorageSize: storageQuantity.default("10Gi"),
  workerReplicas: int(0, 50).default(1),
  /**
   * The database pod that is primary now (I5): the read-write Service selects it and the pods'
   * start script follows it. Set by the failover runbooks; unset = the home primary, timescale-0.
   * Do not set it on a new stack. @example "timescale-1"
   */
  primaryNode: z.string().regex(/^timescale-\d+$/, "expected a database pod name like timescale-0").optional(),
  /** S2 "TLS": the API is only served over HTTPS, from this host name and this TLS Secret. */
  apiHostname: hostname,
  tlsSecretName: dnsLabel,
  ingressClassName: z.string().min(1).default("nginx"),
  /** pg_hba's client network: the cluster's pod CIDR (NetworkPolicies narrow it to app pods). */
  podNetworkCidr: cidr.default("10.0.0.0/8"),
  redisImage: image.default("redis:7.2"),
  /** Runs the backup CronJobs' `kubectl exec` into the current primary. */
  kubectlImage: image.default("bitnami/kubectl:1.30"),
  awsCliImage: image.default("amazon/aws-cli:2.17.0"),
};

const Dev = z.strictObject({
  ...common,
  kind: z.literal("dev"),
  /** Every published port binds here; anything but loopback is a deliberate choice (Z7/S2). */
  bindAddress: ipv4.default("127.0.0.1"),
  /** Host ports are this base plus the sandbox's offsets (+1 pg-a, +2 pg-b, +3 traffic, +4 redis, +5 s3, +6 api, +7 prometheus, +8 alertmanager, +9 grafana). */
  hostPortBase: int(1024, 65000).default(16400),
  networkSubnet: cidr.default("172.28.0.0/16"),
  /** Docker daemon; unset = DOCKER_HOST or the local socket. */
  dockerHost: z.string().min(1).optional(),
  replicationMode: z.enum(["sync", "async"], { error: "expected sync or async" }).default("sync"),
  /**
   * The node that is primary now (I5): HAProxy routes to it and the outputs name it primary. Set by
   * the failover runbooks (or by hand after a failover); unset = the home primary, pg-a.
   * @example "pg-b"
   */
  primaryNode: z.enum(["pg-a", "pg-b"], { error: "expected pg-a or pg-b (the dev stack's database nodes)" }).optional(),
  haproxyImage: image.default("haproxy:2.8"),
  objectStoreImage: image.default("minio/minio:latest"),
  objectStoreClientImage: image.default("minio/mc:latest"),
  /** One-shot image that makes the object store's self-signed TLS certificate (pgBackRest needs TLS). */
  certImage: image.default("alpine/openssl:latest"),
  backupBucketName: bucketName.default("tradeops-backups"),
  /** Host directory for the object store's certificate. @default `$TRADEOPS_HOME/stacks/<stack>/s3-certs` */
  certificateDir: z.string().startsWith("/", "expected an absolute path").optional(),
  s3AccessKey: secretString,
  s3SecretKey: secretString,
});

const Prod = z.strictObject({
  ...common,
  ...kubernetes,
  kind: z.literal("prod"),
  replicationMode: z.enum(["sync", "async"], { error: "expected sync or async" }).default("sync"),
  /** Ordinal 0 starts as primary, the rest stream from it (I5: promote a replica). */
  pgReplicas: int(1, 5).default(2),
  apiReplicas: int(2, 50).default(2),
  region: awsRegion,
  drRegion: awsRegion,
  /** S2 "backup storage ready". */
  backupBucketName: bucketName,
  drBucketName: bucketName.optional(),
  /** Noncurrent versions (what pgBackRest's expire deleted) stay this long before S3 removes them. */
  deletedVersionDays: int(1, 365).default(7),
  dnsZoneId: z.string().regex(/^Z[A-Z0-9]+$/, "expected a Route53 hosted zone id like Z123ABC"),
  /** The failover record apps resolve, e.g. `api.trading.example.com`. */
  dnsRecordName: hostname,
  /**
   * The stack that declares the DR site (exported as `dr.stack`): the runbooks read the rest of the
   * DR site — its database, app and the DNS pair's SECONDARY target — from that stack's outputs.
   * @default unset: `dr` commands against this stack know only its half of the DNS pair
   * @example "organization/tradeops/dr"
   */
  drStack: stackName("organization/tradeops/dr").optional(),
});

const Dr = z.strictObject({
  ...common,
  ...kubernetes,
  kind: z.literal("dr"),
  /** The DR region: where the replica bucket is and where this site's AWS resources go. */
  region: awsRegion,
  /** The replica bucket prod replicates into (prod's `drBucketName`); the standby restores from it. */
  backupBucketName: bucketName,
  /** Unset: prod's (read through the StackReference) — the restored database has prod's roles. */
  dbPassword: secretString.optional(),
  redisPassword: secretString.optional(),
  opsApiToken: secretString.optional(),
  /** The DR site runs no Grafana of its own. */
  grafanaAdminPassword: secretString.optional(),
  /** The DR cluster's kubeconfig (a secret): required, so a DR deploy never lands on the prod cluster. */
  kubeconfig: secretString,
  /** The prod stack this site follows, e.g. `organization/tradeops/prod`. */
  prodStack: stackName("organization/tradeops/prod"),
  /** I5 pilot light: 0 keeps the API scaled down until `dr activate`. */
  drApiReplicas: int(0, 50).default(0),
  workerReplicas: int(0, 50).default(0),
  /**
   * I5: the API pods `dr activate` scales up to (exported in `dr.app`); at least 2, as prod's
   * `apiReplicas`, so a node drain always leaves one serving. @default 2
   */
  drActiveApiReplicas: int(2, 50).default(2),
  /** I5: the worker pods `dr activate` scales up to (exported in `dr.app`). @default 1 */
  drActiveWorkerReplicas: int(1, 50).default(1),
  /**
   * `repository`: the standby replays WAL from the replicated pgBackRest repository (no network
   * path between sites needed); `streaming`: it also streams from `primaryHost`.
   */
  standbyMode: z.enum(["repository", "streaming"], { error: "expected repository or streaming" }).default("repository"),
  primaryHost: hostname.optional(),
});

export const StackConfigSchema = z.discriminatedUnion("kind", [Dev, Prod, Dr]);
export type DevConfig = z.infer<typeof Dev>;
export type ProdConfig = z.infer<typeof Prod>;
export type DrConfig = z.infer<typeof Dr>;
export type StackConfig = DevConfig | ProdConfig | DrConfig;

/** Keys holding credentials: they must be set with `--secret` in prod and dr (S2). */
export const SECRET_KEYS = [
  "dbPassword",
  "replicationPassword",
  "redisPassword",
  "jwtSecret",
  "opsApiToken",
  "grafanaAdminPassword",
  "s3AccessKey",
  "s3SecretKey",
  "kubeconfig",
  "telegramBotToken",
  "slackWebhookUrl",
  "discordWebhookUrl",
] as const;
export type SecretKey = (typeof SECRET_KEYS)[number];

// ---- reading ----------------------------------------------------------------------------------

export interface ConfigSource {
  /** `tradeops:key` → value as Pulumi passes it (structured values as JSON text). */
  values: Record<string, string>;
  /** Full keys (`tradeops:dbPassword`) that were set with `--secret`. */
  secretKeys: ReadonlySet<string>;
  stack: string;
}

/** The running program's config, as the Pulumi engine (or `setAllConfig` in tests) provides it. */
export function currentConfigSource(): ConfigSource {
  return { values: pulumi.runtime.allConfig(), secretKeys: configSecretKeys(), stack: pulumi.getStack() };
}

/**
 * The engine sends the names of secret keys next to the values (PULUMI_CONFIG_SECRET_KEYS); the SDK
 * reads them with `isConfigSecret`, which its typings leave out.
 */
function configSecretKeys(): ReadonlySet<string> {
  const runtime = pulumi.runtime as unknown as { isConfigSecret?: (key: string) => boolean };
  const keys = Object.keys(pulumi.runtime.allConfig());
  if (runtime.isConfigSecret) return new Set(keys.filter((key) => runtime.isConfigSecret!(key)));
  const fromEnv = process.env.PULUMI_CONFIG_SECRET_KEYS;
  return new Set(fromEnv ? (JSON.parse(fromEnv) as string[]) : []);
}

/** Parses and checks the stack's config; throws `ConfigError` with one line naming the first bad key. */
export function loadStackConfig(source: ConfigSource = currentConfigSource()): StackConfig {
  const raw = namespacedValues(source.values);
  if (raw.kind === undefined && ["dev", "prod", "dr"].includes(source.stack)) raw.kind = source.stack;
  if (raw.kind === undefined) {
    throw new ConfigError(`${CONFIG_NAMESPACE}:kind: missing; stack '${source.stack}' needs kind dev, prod or dr (pulumi config set ${CONFIG_NAMESPACE}:kind prod)`);
  }
  if (!["dev", "prod", "dr"].includes(String(raw.kind))) throw new ConfigError(`${CONFIG_NAMESPACE}:kind: expected dev, prod or dr`);
  const parsed = StackConfigSchema.safeParse(raw);
  if (!parsed.success) throw new ConfigError(describeConfigIssue(parsed.error, raw));
  const config = parsed.data;
  checkDeploymentRules(config, source.secretKeys);
  return config;
}

/** The keys whose values are objects. */
const OBJECT_KEYS = ["resources", "retention"];

function namespacedValues(values: Record<string, string>): Record<string, unknown> {
  const raw: Record<string, unknown> = {};
  for (const [fullKey, value] of Object.entries(values)) {
    if (!fullKey.startsWith(`${CONFIG_NAMESPACE}:`)) continue;
    const key = fullKey.slice(CONFIG_NAMESPACE.length + 1);
    // Structured values (`--path` or YAML objects) arrive as JSON text; every other key is a string
    // (a kubeconfig or a password may well start with `{`).
    raw[key] = OBJECT_KEYS.includes(key) ? parseJson(key, value) : value;
  }
  return raw;
}

function parseJson(key: string, value: string): unknown {
  try {
    return JSON.parse(value);
  } catch {
    throw new ConfigError(`${CONFIG_NAMESPACE}:${key}: expected an object (pulumi config set --path '${CONFIG_NAMESPACE}:${key}.<name>' …)`);
  }
}

/** `tradeops:resources.api.cpu: expected a CPU quantity like 2 or 500m` */
export function describeConfigIssue(error: z.ZodError, raw: Record<string, unknown>): string {
  const issue = error.issues[0]!;
  const key = `${CONFIG_NAMESPACE}:${issue.path.join(".")}`;
  if (issue.code === "unrecognized_keys") {
    const unknownKey = issue.keys[0]!;
    if (issue.path.length) return `${key}.${unknownKey}: unknown key`;
    const kinds = kindsTaking(unknownKey);
    if (kinds.length) return `${CONFIG_NAMESPACE}:${unknownKey}: unknown key for a ${String(raw.kind)} stack (only ${kinds.join(" and ")} stacks take it)`;
    return `${CONFIG_NAMESPACE}:${unknownKey}: unknown key${suggestion(unknownKey, knownKeys())}`;
  }
  const given = issue.path.reduce<unknown>((node, part) => (node && typeof node === "object" ? (node as Record<PropertyKey, unknown>)[part] : undefined), raw);
  if (issue.code === "invalid_type" && given === undefined) {
    const leaf = String(issue.path[issue.path.length - 1]);
    const secret = (SECRET_KEYS as readonly string[]).includes(leaf) ? "--secret " : "";
    return `${key}: missing (pulumi config set ${secret}${key} …)`;
  }
  if (issue.code === "invalid_type" && issue.message.startsWith("Invalid input")) return `${key}: expected ${issue.expected}`;
  return `${key}: ${issue.message}`;
}

function kindsTaking(key: string): StackKind[] {
  return (["dev", "prod", "dr"] as const).filter((kind) => key in { dev: Dev, prod: Prod, dr: Dr }[kind].shape);
}

function knownKeys(): string[] {
  return [...new Set([Dev, Prod, Dr].flatMap((schema) => Object.keys(schema.shape)))];
}

/** A typo (`redisMaxMemroy`) names the key it probably meant. */
function suggestion(unknownKey: string, candidates: string[]): string {
  const close = candidates.find((candidate) => editDistance(candidate.toLowerCase(), unknownKey.toLowerCase()) <= 2);
  return close ? ` (did you mean ${close}?)` : "";
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

// ---- S2: the deployment checklist as checks ---------------------------------------------------

/** Values that must never reach prod: defaults from guides, images and examples. */
const DEFAULT_PASSWORDS = new Set(["admin", "password", "postgres", "changeme", "change-me", "secret", "redis", "grafana", "tradeops", "trading"]);

function checkDeploymentRules(config: StackConfig, secretKeys: ReadonlySet<string>): void {
  const fail = (key: string, message: string): never => {
    throw new ConfigError(`${CONFIG_NAMESPACE}:${key}: ${message}`);
  };
  // S7: Redis evicts at maxmemory, but fork for BGSAVE/AOF rewrite needs headroom above it, or the kernel OOM-kills it.
  const redisLimit = memoryMiB(config.resources.redis.memory);
  if (redisLimit < redisSizeMiB(config.redisMaxMemory) * 1.25) {
    fail("resources.redis.memory", `${config.resources.redis.memory} leaves no headroom above redisMaxMemory ${config.redisMaxMemory}; allow at least 25% more`);
  }
  if (config.kind === "dev") {
    if (config.grafanaAdminPassword === "admin") fail("grafanaAdminPassword", "must not be Grafana's default 'admin'");
    return;
  }
  // S2 in prod and dr: every credential is a Pulumi secret, strong, and not a default.
  for (const key of SECRET_KEYS) {
    const value = (config as Record<string, unknown>)[key];
    if (value === undefined) continue;
    if (!secretKeys.has(`${CONFIG_NAMESPACE}:${key}`)) fail(key, `must be set as a secret (pulumi config set --secret ${CONFIG_NAMESPACE}:${key} …)`);
  }
  if (config.jwtSecret.length < 32) fail("jwtSecret", `too short (${config.jwtSecret.length} characters); use at least 32 random characters (openssl rand -base64 48)`);
  if (shannonBitsPerChar(config.jwtSecret) < 3.5) fail("jwtSecret", "too predictable (low entropy); use random bytes (openssl rand -base64 48)");
  for (const key of ["dbPassword", "replicationPassword", "redisPassword", "grafanaAdminPassword", "opsApiToken"] as const) {
    const value = config[key];
    if (value === undefined) continue;
    if (DEFAULT_PASSWORDS.has(value.toLowerCase())) fail(key, `must not be a default value ('${value}' is)`);
    if (value.length < 16) fail(key, `too short (${value.length} characters); use at least 16`);
  }
  if (config.primaryNode) {
    const pods = config.kind === "prod" ? config.pgReplicas : 1;
    const ordinal = Number(config.primaryNode.slice(config.primaryNode.lastIndexOf("-") + 1));
    if (ordinal >= pods) {
      const which = pods === 1 ? "timescale-0" : `timescale-0 … timescale-${pods - 1}`;
      fail("primaryNode", `${config.primaryNode} is not a database pod of this stack (${config.kind === "prod" ? `pgReplicas ${pods}` : "the DR site runs 1"}: ${which})`);
    }
  }
  if (config.kind === "prod" && config.drBucketName === config.backupBucketName) fail("drBucketName", "must differ from backupBucketName (replication needs a second bucket)");
  if (config.kind === "dr" && config.standbyMode === "streaming" && !config.primaryHost) fail("primaryHost", "missing; standbyMode streaming needs the primary's host name reachable from the DR site");
}

/** Shannon entropy per character; random base64 scores ~5.5-6, `aaaa…`/`passwordpassword…` far less. */
export function shannonBitsPerChar(value: string): number {
  const counts = new Map<string, number>();
  for (const char of value) counts.set(char, (counts.get(char) ?? 0) + 1);
  let bits = 0;
  for (const count of counts.values()) {
    const p = count / value.length;
    bits -= p * Math.log2(p);
  }
  return bits;
}

// ---- helpers for components -------------------------------------------------------------------

/** A config credential as a Pulumi secret: the only way secrets leave this module. */
export function secretOf(value: string): pulumi.Output<string> {
  return pulumi.secret(value);
}

/** Requests are a quarter of the limits (CPU in millicores, memory in MiB), so pods schedule on small nodes. */
export function requestsFor(limits: WorkloadLimits): WorkloadLimits {
  return { cpu: `${Math.max(50, Math.round(cpuMillis(limits.cpu) / 4))}m`, memory: `${Math.max(64, Math.round(memoryMiB(limits.memory) / 4))}Mi` };
}

export function cpuMillis(quantity: string): number {
  return quantity.endsWith("m") ? Number(quantity.slice(0, -1)) : Math.round(Number(quantity) * 1000);
}

export function memoryMiB(quantity: string): number {
  const match = /^(\d+)(Ki|Mi|Gi|Ti)$/.exec(quantity);
  if (!match) throw new Error(`not a memory quantity: ${quantity}`);
  const factor = { Ki: 1 / 1024, Mi: 1, Gi: 1024, Ti: 1024 * 1024 }[match[2] as "Ki" | "Mi" | "Gi" | "Ti"];
  return Math.ceil(Number(match[1]) * factor);
}

/** Redis `2gb` → MiB, to check the container limit leaves room above maxmemory. */
export function redisSizeMiB(size: string): number {
  const match = /^(\d+)(b|kb|mb|gb)?$/i.exec(size)!;
  const unit = (match[2] ?? "b").toLowerCase();
  const bytes = Number(match[1]) * { b: 1, kb: 1024, mb: 1024 ** 2, gb: 1024 ** 3 }[unit as "b" | "kb" | "mb" | "gb"];
  return bytes / 1024 ** 2;
}
