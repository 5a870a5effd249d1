/**
 * The policy pack, offline: each policy's validate function is called directly (and awaited) with
 * passing and violating resources and a collecting `reportViolation`. Each violating case is one
 * way the policy could be weakened; removing a policy from the pack fails the first test.
 */
import type { PolicyResource, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import { describe, expect, test } from "vitest";
import {
  bucketEncrypted,
  bucketPrivate,
  bucketVersioned,
  containersHaveLimits,
  deploymentsRolloutSafe,
  noPlainSecretEnv,
  noPublicDataPorts,
  policies,
  SECRET_ENV_NAME,
} from "../../policy/policies.ts";
import { policyViolations, resourceValidators } from "./pulumi-harness.ts";

/** Every validator is awaited: an async validator's late report counts, and a rejection fails the test. */
async function checkResource(policy: ResourceValidationPolicy, type: string, props: Record<string, unknown>, name = "subject"): Promise<string[]> {
  const violations: string[] = [];
  const args = { type, props, urn: `urn:pulumi:test::tradeops::${type}::${name}`, name, opts: {} as never, stackTags: new Map() } as never;
  for (const v of resourceValidators(policy)) await v(args, (message: string) => violations.push(message));
  return violations;
}

type Res = { type: string; name: string; props: Record<string, unknown>; bucketDep?: string };
async function checkStack(policy: StackValidationPolicy, resources: Res[]): Promise<string[]> {
  const violations: string[] = [];
  const policyResources = resources.map(
    (r) => ({ type: r.type, name: r.name, props: r.props, urn: `urn::${r.type}::${r.name}`, opts: {}, dependencies: [], propertyDependencies: {} }) as unknown as PolicyResource,
  );
  for (const [i, r] of resources.entries()) {
    if (r.bucketDep) policyResources[i]!.propertyDependencies = { bucket: policyResources.filter((p) => p.name === r.bucketDep) };
  }
  await policy.validateStack({ resources: policyResources, stackTags: new Map() } as never, (message: string) => violations.push(message));
  return violations;
}

const BUCKET = { type: "aws:s3/bucket:Bucket", name: "backups", props: { bucket: "acme-backups", id: "acme-backups" } };
/** The deprecated resource still creates buckets, so every bucket policy must see it too. */
const BUCKET_V2 = { ...BUCKET, type: "aws:s3/bucketV2:BucketV2" };
const sse = (algorithm: string, bucket = "acme-backups"): Res => ({
  type: "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration",
  name: "backups-sse",
  props: { bucket, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: algorithm } }] },
});
const versioning = (status: string, bucket = "acme-backups"): Res => ({ type: "aws:s3/bucketVersioning:BucketVersioning", name: "backups-versioning", props: { bucket, versioningConfiguration: { status } } });
const publicAccessBlock = (overrides: Record<string, boolean> = {}, bucket = "acme-backups"): Res => ({
  type: "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock",
  name: "backups-block",
  props: { bucket, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true, ...overrides },
});

/** Literal, not the policy's DATA_PORTS: dropping a port there must fail here. */
const DATA_PORTS = [5432, 6379, 5000, 6432];

/** Workload types whose containers the policies check, with where each keeps its pod spec. */
const WORKLOADS: Record<string, (pod: Record<string, unknown>) => Record<string, unknown>> = {
  "kubernetes:apps/v1:Deployment": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:apps/v1:StatefulSet": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:apps/v1:DaemonSet": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:batch/v1:Job": (pod) => ({ spec: { template: { spec: pod } } }),
  "kubernetes:batch/v1:CronJob": (pod) => ({ spec: { jobTemplate: { spec: { template: { spec: pod } } } } }),
  "kubernetes:core/v1:Pod": (pod) => ({ spec: pod }),
};

/**
 * One credential-looking name per alternative of SECRET_ENV_NAME, each matching that alternative
 * only, so dropping any one alternative from the pattern fails a case.
 */
const CREDENTIAL_NAMES: Record<string, string[]> = {
  PASSWORD: ["DATABASE_PASSWORD"],
  PASSWD: ["MYSQL_PASSWD"],
  SECRET: ["JWT_SECRET"],
  TOKEN: ["OPS_API_TOKEN"],
  PRIVATE_KEY: ["SSH_PRIVATE_KEY"],
  ACCESS_KEY: ["MINIO_ACCESS_KEY"],
  API_KEY: ["EXCHANGE_API_KEY"],
  "CREDENTIALS?": ["DB_CREDENTIAL", "GOOGLE_APPLICATION_CREDENTIALS"],
  _AUTH: ["REDISCLI_AUTH"],
  "^AUTH": ["AUTH_HEADER"],
  WEBHOOK: ["SLACK_WEBHOOK_URL"],
  DSN: ["SENTRY_DSN"],
  DATABASE_URL: ["DATABASE_URL"],
  REDIS_URL: ["REDIS_URL"],
};

test("the pack holds every guardrail", () => {
  expect(policies.map((p) => p.name).sort()).toEqual(
    ["backup-bucket-encrypted", "backup-bucket-private", "backup-bucket-versioned", "containers-have-limits", "deployments-rollout-safe", "no-plain-secret-env", "no-public-data-ports"].sort(),
  );
  for (const policy of policies) expect(policy.enforcementLevel, policy.name).toBe("mandatory");
});

describe("the offline checkers run validators as the policy engine does", () => {
  const afterATick = () => new Promise((resolve) => setTimeout(resolve, 1));
  const lateResource: ResourceValidationPolicy = {
    name: "late-resource",
    description: "reports after an await",
    validateResource: async (_args, report) => {
      await afterATick();
      report("late resource violation");
    },
  };
  const lateStack: StackValidationPolicy = {
    name: "late-stack",
    description: "reports after an await",
    validateStack: async (_args, report) => {
      await afterATick();
      report("late stack violation");
    },
  };
  const crashing: ResourceValidationPolicy = {
    name: "crashing",
    description: "rejects",
    validateResource: [() => undefined, async () => Promise.reject(new Error("validator crashed"))],
  };
  const resource = { type: "docker:index/container:Container", name: "api", urn: "urn::api", rawInputs: {}, inputs: {}, parent: "", provider: "" };

  test("an async validator's late report is counted, not lost", async () => {
    expect(await checkResource(lateResource, "docker:index/container:Container", {})).toEqual(["late resource violation"]);
    expect(await checkStack(lateStack, [BUCKET])).toEqual(["late stack violation"]);
    expect(await policyViolations({ resources: [resource] }, [lateResource, lateStack])).toEqual(["late-resource: late resource violation", "late-stack: late stack violation"]);
  });

  test("a rejecting validator fails the check instead of passing it", async () => {
    await expect(checkResource(crashing, "docker:index/container:Container", {})).rejects.toThrow("validator crashed");
    await expect(policyViolations({ resources: [resource] }, [crashing])).rejects.toThrow("validator crashed");
  });

  test("checking a stack with no resources is an error, not a pass", async () => {
    await expect(policyViolations({ resources: [] })).rejects.toThrow(/no resources/);
  });
});

describe("I7: backup-bucket-encrypted", () => {
  test("passes a bucket (and a BucketV2) with SSE-KMS configured by a separate resource", async () => {
    expect(await checkStack(bucketEncrypted, [BUCKET, sse("aws:kms")])).toEqual([]);
    expect(await checkStack(bucketEncrypted, [BUCKET_V2, sse("aws:kms")])).toEqual([]);
  });
  test("passes when the configuration references the bucket only through a dependency (unknown id at preview)", async () => {
    expect(await checkStack(bucketEncrypted, [BUCKET, { ...sse("aws:kms"), props: { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] }, bucketDep: "backups" }])).toEqual([]);
  });
  test("flags a bucket without encryption, and one whose encryption belongs to another bucket", async () => {
    expect(await checkStack(bucketEncrypted, [BUCKET])).toHaveLength(1);
    expect(await checkStack(bucketEncrypted, [BUCKET, sse("aws:kms", "other")])).toHaveLength(1);
  });
  test("flags an unnamed bucket when the only encryption depends on another unnamed bucket (both names unknown at preview)", async () => {
    const unnamed = (name: string) => ({ type: "aws:s3/bucket:Bucket", name, props: {} });
    const violations = await checkStack(bucketEncrypted, [unnamed("a"), unnamed("b"), { ...sse("aws:kms"), props: { rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms" } }] }, bucketDep: "b" }]);
    expect(violations).toEqual([expect.stringContaining("bucket a has no default encryption")]);
  });
  test("flags an encryption configuration without an algorithm", async () => {
    expect((await checkStack(bucketEncrypted, [BUCKET, sse("")]))[0]).toContain("backups has no default encryption");
  });
  test("flags an unencrypted deprecated aws.s3.BucketV2", async () => {
    expect(await checkStack(bucketEncrypted, [BUCKET_V2])).toEqual([expect.stringContaining("backups has no default encryption")]);
  });
});

describe("I7: backup-bucket-versioned", () => {
  test("passes a bucket (and a BucketV2) with versioning Enabled", async () => {
    expect(await checkStack(bucketVersioned, [BUCKET, versioning("Enabled")])).toEqual([]);
    expect(await checkStack(bucketVersioned, [BUCKET_V2, versioning("Enabled")])).toEqual([]);
  });
  test("flags no versioning, Suspended versioning, inline versioning disabled, and versioning of another bucket", async () => {
    expect(await checkStack(bucketVersioned, [BUCKET])).toHaveLength(1);
    expect(await checkStack(bucketVersioned, [BUCKET, versioning("Suspended")])).toHaveLength(1);
    expect(await checkStack(bucketVersioned, [{ ...BUCKET, props: { ...BUCKET.props, versioning: { enabled: false } } }])).toHaveLength(1);
    expect(await checkStack(bucketVersioned, [BUCKET, versioning("Enabled", "other")])).toHaveLength(1);
  });
  test("flags an unversioned deprecated aws.s3.BucketV2", async () => {
    expect(await checkStack(bucketVersioned, [BUCKET_V2])).toEqual([expect.stringContaining("backups is not versioned")]);
  });
});

describe("S2: backup-bucket-private", () => {
  test("passes a bucket (and a BucketV2) with all four public access blocks and a private ACL", async () => {
    expect(await checkStack(bucketPrivate, [BUCKET, publicAccessBlock()])).toEqual([]);
    expect(await checkStack(bucketPrivate, [BUCKET_V2, publicAccessBlock(), { type: "aws:s3/bucketAclV2:BucketAclV2", name: "acl", props: { bucket: "acme-backups", acl: "private" } }])).toEqual([]);
  });
  test("flags a missing block, any one of the four settings off, and a block for another bucket", async () => {
    expect(await checkStack(bucketPrivate, [BUCKET])).toHaveLength(1);
    for (const setting of ["blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls", "restrictPublicBuckets"]) {
      expect(await checkStack(bucketPrivate, [BUCKET, publicAccessBlock({ [setting]: false })]), setting).toHaveLength(1);
    }
    expect(await checkStack(bucketPrivate, [BUCKET, publicAccessBlock({}, "other")])).toHaveLength(1);
  });
  test("flags a public ACL set on the bucket itself, by an aws.s3.BucketAcl, and by an aws.s3.BucketAclV2", async () => {
    expect(await checkStack(bucketPrivate, [{ ...BUCKET, props: { ...BUCKET.props, acl: "public-read" } }, publicAccessBlock()])).toEqual([expect.stringContaining("public ACL public-read")]);
    for (const type of ["aws:s3/bucketAcl:BucketAcl", "aws:s3/bucketAclV2:BucketAclV2"]) {
      expect(await checkStack(bucketPrivate, [BUCKET, publicAccessBlock(), { type, name: "acl", props: { bucket: "acme-backups", acl: "public-read-write" } }]), type).toEqual([
        "acl grants the public ACL public-read-write",
      ]);
    }
  });
  test("flags authenticated-read (any AWS account may read) as public, and leaves owner-only ACLs alone", async () => {
    expect(await checkStack(bucketPrivate, [{ ...BUCKET, props: { ...BUCKET.props, acl: "authenticated-read" } }, publicAccessBlock()])).toEqual([
      expect.stringContaining("public ACL authenticated-read"),
    ]);
    for (const acl of ["private", "bucket-owner-full-control", "log-delivery-write"]) {
      expect(await checkStack(bucketPrivate, [{ ...BUCKET, props: { ...BUCKET.props, acl } }, publicAccessBlock()]), acl).toEqual([]);
    }
  });
  test("flags a deprecated aws.s3.BucketV2 without a public access block", async () => {
    expect(await checkStack(bucketPrivate, [BUCKET_V2])).toEqual([expect.stringContaining("backups lacks a public access block")]);
  });
});

describe("S2: no-public-data-ports", () => {
  const container = (ports: unknown[]) => checkResource(noPublicDataPorts, "docker:index/container:Container", { ports });
  const service = (type: string, port: number, targetPort = port, nodePort?: number) =>
    checkResource(noPublicDataPorts, "kubernetes:core/v1:Service", { spec: { type, ports: [{ port, targetPort, ...(nodePort ? { nodePort } : {}) }] } });

  test("passes PostgreSQL and Redis bound to 127.0.0.1, a public HTTP port, and ClusterIP data Services", async () => {
    expect(await container([{ internal: 5432, external: 16401, ip: "127.0.0.1" }, { internal: 6379, ip: "127.0.0.1" }, { internal: 8080, ip: "0.0.0.0" }])).toEqual([]);
    expect(await service("ClusterIP", 5432)).toEqual([]);
    expect(await checkResource(noPublicDataPorts, "kubernetes:core/v1:Service", { spec: { ports: [{ port: 6379, targetPort: 6379 }] } })).toEqual([]);
    expect(await service("LoadBalancer", 443, 8443)).toEqual([]);
  });
  test("flags every data port published on 0.0.0.0, on Docker's default (no ip), on an empty ip and on ::", async () => {
    for (const port of DATA_PORTS) {
      for (const ip of ["0.0.0.0", undefined, "", "::"]) {
        expect(await container([{ internal: port, external: 16400, ...(ip === undefined ? {} : { ip }) }]), `${port} on ${ip}`).toHaveLength(1);
      }
    }
  });
  test("flags every data port as the port of a LoadBalancer or a NodePort", async () => {
    for (const port of DATA_PORTS) {
      expect(await service("LoadBalancer", port), `LoadBalancer ${port}`).toHaveLength(1);
      expect(await service("NodePort", port), `NodePort ${port}`).toHaveLength(1);
    }
  });
  test("flags a LoadBalancer or NodePort that targets a data port by its name (our pods name theirs postgres/redis)", async () => {
    for (const name of ["postgres", "redis", "postgresql", "pgbouncer"]) {
      expect(await service("LoadBalancer", 443, name as never), `443 → ${name}`).toEqual([expect.stringContaining(`data port ${name} through a LoadBalancer`)]);
      expect(await service("NodePort", 443, name as never), `NodePort 443 → ${name}`).toHaveLength(1);
    }
    expect(await service("LoadBalancer", 443, "https" as never)).toEqual([]);
  });
  test("flags a LoadBalancer that forwards a harmless port (443) to a data port: the target is what is exposed", async () => {
    for (const port of DATA_PORTS) {
      expect(await service("LoadBalancer", 443, port), `443 → ${port}`).toEqual([expect.stringContaining("through a LoadBalancer")]);
      expect(await service("NodePort", 443, port), `NodePort 443 → ${port}`).toHaveLength(1);
    }
  });
  test("flags a LoadBalancer publishing a data port (5432) even when it forwards to another target port", async () => {
    expect(await service("LoadBalancer", 5432, 15432)).toHaveLength(1);
  });
  test("flags a NodePort whose node port is a data port (a cluster with a widened --service-node-port-range)", async () => {
    expect(await service("NodePort", 80, 8080, 5432)).toHaveLength(1);
  });
});

describe("Z7: containers-have-limits", () => {
  const deployment = (containers: unknown[], initContainers: unknown[] = []) =>
    checkResource(containersHaveLimits, "kubernetes:apps/v1:Deployment", { spec: { template: { spec: { containers, initContainers } } } });
  const limited = (name: string) => ({ name, resources: { limits: { cpu: "1", memory: "1Gi" } } });
  const docker = (props: Record<string, unknown>) => checkResource(containersHaveLimits, "docker:index/container:Container", props);

  test("passes Kubernetes containers of every workload type and Docker containers with both limits", async () => {
    expect(await deployment([limited("api")], [limited("init")])).toEqual([]);
    for (const [type, podOf] of Object.entries(WORKLOADS)) expect(await checkResource(containersHaveLimits, type, podOf({ containers: [limited("c")] })), type).toEqual([]);
    expect(await docker({ cpus: "0.5", memory: 512 })).toEqual([]);
    expect(await docker({ cpuQuota: 50000, memory: 512 })).toEqual([]);
  });
  test("flags a missing CPU limit, a missing memory limit, empty or null limits, requests without limits, and an unlimited init container", async () => {
    expect(await deployment([{ name: "api", resources: { limits: { memory: "1Gi" } } }])).toEqual(["subject: container api has no cpu limit"]);
    expect(await deployment([{ name: "api", resources: { limits: { cpu: "1" } } }])).toEqual(["subject: container api has no memory limit"]);
    expect(await deployment([{ name: "api", resources: { limits: { cpu: "", memory: "1Gi" } } }])).toEqual(["subject: container api has no cpu limit"]);
    expect(await deployment([{ name: "api", resources: { limits: { cpu: "1", memory: null } } }])).toEqual(["subject: container api has no memory limit"]);
    expect(await deployment([{ name: "api", resources: { requests: { cpu: "1", memory: "1Gi" } } }])).toHaveLength(1);
    expect(await deployment([limited("api")], [{ name: "migrate" }])).toHaveLength(1);
  });
  test("flags an unlimited container in every workload type: Deployment, StatefulSet, DaemonSet, Job, CronJob, Pod", async () => {
    for (const [type, podOf] of Object.entries(WORKLOADS)) {
      expect(await checkResource(containersHaveLimits, type, podOf({ containers: [{ name: "c" }] })), type).toEqual(["subject: container c has no cpu or memory limit"]);
      expect(await checkResource(containersHaveLimits, type, podOf({ initContainers: [{ name: "init" }], containers: [limited("c")] })), `${type} init`).toHaveLength(1);
    }
  });
  test("flags Docker containers without a CPU or a memory limit, or with a zero one", async () => {
    expect(await docker({ memory: 512 })).toHaveLength(1);
    expect(await docker({ cpus: "1" })).toHaveLength(1);
    expect(await docker({ cpus: "0", memory: 512 })).toHaveLength(1);
    expect(await docker({ cpuQuota: 0, memory: 512 })).toHaveLength(1);
    expect(await docker({ cpus: "1", memory: 0 })).toHaveLength(1);
  });
});

describe("I4/Z7: deployments-rollout-safe", () => {
  const deployment = (spec: Record<string, unknown>) => checkResource(deploymentsRolloutSafe, "kubernetes:apps/v1:Deployment", { spec });
  const ready = { name: "api", readinessProbe: { httpGet: { path: "/health/ready", port: 8080 } } };

  test("passes readiness probes with 10 revisions kept, and with the Kubernetes default (unset = 10)", async () => {
    expect(await deployment({ revisionHistoryLimit: 10, template: { spec: { containers: [ready] } } })).toEqual([]);
    expect(await deployment({ template: { spec: { containers: [ready] } } })).toEqual([]);
  });
  test("flags a short rollback history (0 and 9)", async () => {
    expect(await deployment({ revisionHistoryLimit: 0, template: { spec: { containers: [ready] } } })).toHaveLength(1);
    expect(await deployment({ revisionHistoryLimit: 9, template: { spec: { containers: [ready] } } })).toHaveLength(1);
  });
  test("flags any container of the Deployment without a readiness probe", async () => {
    expect(await deployment({ revisionHistoryLimit: 10, template: { spec: { containers: [ready, { name: "sidecar" }] } } })).toEqual([
      "Deployment subject: container sidecar has no readinessProbe, so a broken rollout would take traffic",
    ]);
  });
});

describe("S2: no-plain-secret-env", () => {
  const deployment = (env: unknown[]) => checkResource(noPlainSecretEnv, "kubernetes:apps/v1:Deployment", { spec: { template: { spec: { containers: [{ name: "api", env }] } } } });
  const docker = (envs: string[]) => checkResource(noPlainSecretEnv, "docker:index/container:Container", { envs });
  const credentialNames = Object.values(CREDENTIAL_NAMES).flat();

  test("passes secretKeyRef credentials, *_FILE paths and plain settings", async () => {
    expect(await deployment([{ name: "JWT_SECRET", valueFrom: { secretKeyRef: { name: "app", key: "JWT_SECRET" } } }, { name: "POSTGRES_PASSWORD_FILE", value: "/run/secrets/db" }, { name: "DATABASE_HOST", value: "db" }])).toEqual([]);
    expect(await docker(["JWT_SECRET_FILE=/run/secrets/jwt", "PORT=8080", "DATABASE_HOST=traffic", "REDIS_HOST=redis"])).toEqual([]);
  });
  test("every alternative of the credential-name pattern has a case below", () => {
    const alternatives = SECRET_ENV_NAME.source.replace(/^\(|\)$/g, "").split("|");
    expect(Object.keys(CREDENTIAL_NAMES).sort()).toEqual(alternatives.sort());
  });
  test("flags each credential-looking name as a literal in Kubernetes env and in a Docker container's environment", async () => {
    expect(credentialNames.length).toBeGreaterThanOrEqual(15);
    for (const name of credentialNames) {
      expect(await deployment([{ name, value: "literal" }]), `Kubernetes ${name}`).toEqual([`subject: container api sets ${name} to a literal value; use valueFrom.secretKeyRef`]);
      expect(await docker([`${name}=literal`]), `Docker ${name}`).toEqual([expect.stringContaining(`sets ${name} in its environment`)]);
    }
  });
  test("flags lowercase credential names, and a name that only contains _FILE without ending in it", async () => {
    expect(await deployment([{ name: "database_password", value: "literal" }])).toHaveLength(1);
    expect(await docker(["redis_url=redis://:pw@redis:6379"])).toHaveLength(1);
    expect(await docker(["DATABASE_PASSWORD_FILE_CONTENTS=hunter2"])).toHaveLength(1);
  });
  test("flags a literal credential in every workload type, init containers included", async () => {
    for (const [type, podOf] of Object.entries(WORKLOADS)) {
      const literal = [{ name: "REDIS_PASSWORD", value: "x" }];
      expect(await checkResource(noPlainSecretEnv, type, podOf({ containers: [{ name: "c", env: literal }] })), type).toHaveLength(1);
      expect(await checkResource(noPlainSecretEnv, type, podOf({ initContainers: [{ name: "fetch", env: literal }], containers: [] })), `${type} init`).toHaveLength(1);
    }
  });
});
