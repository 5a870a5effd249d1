/**
 * tradeops guardrails (S2, Z7, I4, I7), checked on every preview and update:
 *
 *   backup-bucket-encrypted / -versioned / -private   every S3 bucket, whichever resources configure it
 *   no-public-data-ports      PostgreSQL/Redis/traffic ports never on 0.0.0.0, a LoadBalancer or a NodePort
 *   containers-have-limits    every container (Docker, Kubernetes workloads, init containers) has CPU + memory limits
 *   deployments-rollout-safe  every Deployment has readiness probes and keeps ≥ 10 revisions for rollback
 *   no-plain-secret-env       credentials reach containers by reference (secretKeyRef / *_FILE), never as env values
 *
 * Plain objects and functions only, so tests call `validateResource` / `validateStack` directly.
 */
import type { PolicyResource, ReportViolation, ResourceValidationArgs, ResourceValidationPolicy, StackValidationArgs, StackValidationPolicy } from "@pulumi/policy";

/** PostgreSQL, Redis, the HAProxy traffic endpoint, PgBouncer. */
export const DATA_PORTS = [5432, 6379, 5000, 6432];
/** Container port names of the same services (a Service may target a port by name; ours are named `postgres`/`redis`). */
export const DATA_PORT_NAMES = /^(postgres(ql)?|pg|redis|pgbouncer|traffic)$/i;
/** Canned ACLs that grant read or write beyond the bucket owner (authenticated-read: any AWS account). */
const PUBLIC_ACL = /^(public-|authenticated-read$)/;
/** Names of env vars that carry credentials. */
export const SECRET_ENV_NAME = /(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|ACCESS_KEY|API_KEY|CREDENTIALS?|_AUTH|^AUTH|WEBHOOK|DSN|DATABASE_URL|REDIS_URL)/i;
/** Workloads whose pod template holds containers. */
const K8S_WORKLOADS = ["kubernetes:apps/v1:Deployment", "kubernetes:apps/v1:StatefulSet", "kubernetes:apps/v1:DaemonSet", "kubernetes:batch/v1:Job", "kubernetes:batch/v1:CronJob", "kubernetes:core/v1:Pod"];
const DOCKER_CONTAINER = "docker:index/container:Container";
const BUCKET = "aws:s3/bucket:Bucket";
const BUCKET_V2 = "aws:s3/bucketV2:BucketV2";
export const MIN_REVISION_HISTORY = 10;

// ---- helpers ----------------------------------------------------------------------------------

type Container = { name?: string; resources?: { limits?: Record<string, unknown> }; env?: Array<{ name: string; value?: unknown; valueFrom?: unknown }>; readinessProbe?: unknown };

/** Containers (init included) of a Kubernetes workload's pod spec. */
export function podContainers(type: string, props: Record<string, any>): Container[] {
  const pod =
    type === "kubernetes:core/v1:Pod"
      ? props.spec
      : type === "kubernetes:batch/v1:CronJob"
        ? props.spec?.jobTemplate?.spec?.template?.spec
        : props.spec?.template?.spec;
  return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
}

/** The resources that configure `bucket`: they reference it in their `bucket` property. */
function configuring(resources: PolicyResource[], bucket: PolicyResource, type: string): PolicyResource[] {
  return resources.filter(
    (r) =>
      r.type === type &&
      ((r.propertyDependencies?.bucket ?? []).some((dep) => dep.urn === bucket.urn) ||
        (r.props.bucket !== undefined && (r.props.bucket === bucket.props.bucket || r.props.bucket === bucket.props.id))),
  );
}

function buckets(args: StackValidationArgs): PolicyResource[] {
  return args.resources.filter((r) => r.type === BUCKET || r.type === BUCKET_V2);
}

// ---- buckets (I7, S2) -------------------------------------------------------------------------

export const bucketEncrypted: StackValidationPolicy = {
  name: "backup-bucket-encrypted",
  description: "Every S3 bucket has default server-side encryption (SSE-KMS or SSE-S3).",
  enforcementLevel: "mandatory",
  validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
    for (const bucket of buckets(args)) {
      const configs = configuring(args.resources, bucket, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration");
      const inline = bucket.props.serverSideEncryptionConfiguration?.rule?.applyServerSideEncryptionByDefault?.sseAlgorithm;
      const encrypted = Boolean(inline) || configs.some((c) => (c.props.rules ?? []).some((rule: any) => ["aws:kms", "aws:kms:dsse", "AES256"].includes(rule?.applyServerSideEncryptionByDefault?.sseAlgorithm)));
      if (!encrypted) reportViolation(`bucket ${bucket.name} has no default encryption: add an aws.s3.BucketServerSideEncryptionConfiguration (aws:kms)`, bucket.urn);
    }
  },
};

export const bucketVersioned: StackValidationPolicy = {
  name: "backup-bucket-versioned",
  description: "Every S3 bucket has versioning enabled (an overwritten or deleted backup stays recoverable).",
  enforcementLevel: "mandatory",
  validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
    for (const bucket of buckets(args)) {
      const configs = configuring(args.resources, bucket, "aws:s3/bucketVersioning:BucketVersioning");
      const versioned = bucket.props.versioning?.enabled === true || configs.some((c) => c.props.versioningConfiguration?.status === "Enabled");
      if (!versioned) reportViolation(`bucket ${bucket.name} is not versioned: add an aws.s3.BucketVersioning with status Enabled`, bucket.urn);
    }
  },
};

export const bucketPrivate: StackValidationPolicy = {
  name: "backup-bucket-private",
  description: "Every S3 bucket blocks all public access and has no public ACL.",
  enforcementLevel: "mandatory",
  validateStack: (args: StackValidationArgs, reportViolation: ReportViolation) => {
    for (const bucket of buckets(args)) {
      if (typeof bucket.props.acl === "string" && PUBLIC_ACL.test(bucket.props.acl)) {
        reportViolation(`bucket ${bucket.name} has the public ACL ${bucket.props.acl}`, bucket.urn);
      }
      const blocks = configuring(args.resources, bucket, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock");
      const blocked = blocks.some((b) => b.props.blockPublicAcls === true && b.props.blockPublicPolicy === true && b.props.ignorePublicAcls === true && b.props.restrictPublicBuckets === true);
      if (!blocked) reportViolation(`bucket ${bucket.name} lacks a public access block with all four settings true`, bucket.urn);
    }
    for (const acl of args.resources.filter((r) => r.type === "aws:s3/bucketAcl:BucketAcl" || r.type === "aws:s3/bucketAclV2:BucketAclV2")) {
      if (typeof acl.props.acl === "string" && PUBLIC_ACL.test(acl.props.acl)) reportViolation(`${acl.name} grants the public ACL ${acl.props.acl}`, acl.urn);
    }
  },
};

// ---- network exposure (S2) --------------------------------------------------------------------

export const noPublicDataPorts: ResourceValidationPolicy = {
  name: "no-public-data-ports",
  description: "PostgreSQL, Redis and the database traffic endpoint are never published on all interfaces nor exposed by a LoadBalancer/NodePort Service.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type === DOCKER_CONTAINER) {
      for (const port of args.props.ports ?? []) {
        if (!DATA_PORTS.includes(Number(port.internal))) continue;
        const ip = port.ip ?? "0.0.0.0";
        if (ip === "0.0.0.0" || ip === "::" || ip === "") reportViolation(`container ${args.name} publishes data port ${port.internal} on ${ip || "all interfaces"}; bind it to 127.0.0.1`);
      }
    }
    if (args.type === "kubernetes:core/v1:Service") {
      const type = args.props.spec?.type ?? "ClusterIP";
      if (type !== "LoadBalancer" && type !== "NodePort") return;
      for (const port of args.props.spec?.ports ?? []) {
        const numbers = [port.port, port.targetPort, port.nodePort].map(Number);
        const namedDataPort = typeof port.targetPort === "string" && DATA_PORT_NAMES.test(port.targetPort);
        if (namedDataPort || numbers.some((n) => DATA_PORTS.includes(n))) {
          reportViolation(`Service ${args.name} exposes data port ${port.targetPort ?? port.port} through a ${type}; use a ClusterIP Service`);
        }
      }
    }
  },
};

// ---- workloads (Z7, I4) -----------------------------------------------------------------------

export const containersHaveLimits: ResourceValidationPolicy = {
  name: "containers-have-limits",
  description: "Every container has a CPU and a memory limit (Z7), Docker and Kubernetes alike.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type === DOCKER_CONTAINER) {
      const cpu = Number(args.props.cpus ?? 0) > 0 || Number(args.props.cpuQuota ?? 0) > 0;
      const memory = Number(args.props.memory ?? 0) > 0;
      if (!cpu || !memory) reportViolation(`container ${args.name} needs ${[!cpu && "a CPU limit (cpus)", !memory && "a memory limit (memory)"].filter(Boolean).join(" and ")}`);
      return;
    }
    if (!K8S_WORKLOADS.includes(args.type)) return;
    for (const container of podContainers(args.type, args.props)) {
      const limits = container.resources?.limits ?? {};
      const missing = ["cpu", "memory"].filter((key) => limits[key] === undefined || limits[key] === "" || limits[key] === null);
      if (missing.length) reportViolation(`${args.name}: container ${container.name ?? "?"} has no ${missing.join(" or ")} limit`);
    }
  },
};

export const deploymentsRolloutSafe: ResourceValidationPolicy = {
  name: "deployments-rollout-safe",
  description: `Every Deployment has a readiness probe on each container and keeps at least ${MIN_REVISION_HISTORY} revisions for rollback (I4, Z7).`,
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type !== "kubernetes:apps/v1:Deployment") return;
    // Kubernetes keeps 10 when unset.
    const history = args.props.spec?.revisionHistoryLimit ?? 10;
    if (history < MIN_REVISION_HISTORY) reportViolation(`Deployment ${args.name} keeps ${history} revisions; rollback needs at least ${MIN_REVISION_HISTORY} (revisionHistoryLimit)`);
    for (const container of args.props.spec?.template?.spec?.containers ?? []) {
      if (!container.readinessProbe) reportViolation(`Deployment ${args.name}: container ${container.name} has no readinessProbe, so a broken rollout would take traffic`);
    }
  },
};

// ---- secrets (S2, Z3) -------------------------------------------------------------------------

export const noPlainSecretEnv: ResourceValidationPolicy = {
  name: "no-plain-secret-env",
  description: "Credentials reach containers by reference (Kubernetes secretKeyRef, Docker *_FILE files), never as literal environment values.",
  enforcementLevel: "mandatory",
  validateResource: (args: ResourceValidationArgs, reportViolation: ReportViolation) => {
    if (args.type === DOCKER_CONTAINER) {
      for (const entry of args.props.envs ?? []) {
        const name = String(entry).split("=", 1)[0]!;
        if (SECRET_ENV_NAME.test(name) && !/_FILE$/i.test(name)) reportViolation(`container ${args.name} sets ${name} in its environment; upload the value as a file and pass ${name}_FILE`);
      }
      return;
    }
    if (!K8S_WORKLOADS.includes(args.type)) return;
    for (const container of podContainers(args.type, args.props)) {
      for (const env of container.env ?? []) {
        if (SECRET_ENV_NAME.test(env.name) && !/_FILE$/i.test(env.name) && env.value !== undefined) {
          reportViolation(`${args.name}: container ${container.name} sets ${env.name} to a literal value; use valueFrom.secretKeyRef`);
        }
      }
    }
  },
};

export const policies: Array<ResourceValidationPolicy | StackValidationPolicy> = [
  bucketEncrypted,
  bucketVersioned,
  bucketPrivate,
  noPublicDataPorts,
  containersHaveLimits,
  deploymentsRolloutSafe,
  noPlainSecretEnv,
];
