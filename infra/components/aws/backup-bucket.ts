/**
 * An S3 bucket for backups (I7): versioned, encrypted with its own KMS key (rotated), private
 * (public access block + bucket-owner-enforced), TLS-only by bucket policy, with lifecycle rules.
 * Built on `aws.s3.Bucket` and its per-concern resources (not the deprecated *V2 ones).
 *
 * Retention of pgBackRest's data is pgBackRest's job (`repo1-retention-full` / `-archive`,
 * rendered from the same I7 numbers): an S3 expiry under a pgBackRest repository would delete
 * files its manifests still list (or archive.info itself). The lifecycle therefore only moves
 * full backups to Glacier Instant Retrieval (still readable by a restore), removes what
 * pgBackRest already expired (noncurrent versions), and expires the prefixes tradeops writes
 * as whole objects: Redis snapshots (24 h) and ML models (90 d).
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface BackupRetention {
  /** I7: full backups kept (pgBackRest). @default 30 */
  pgFullDays?: number;
  /** I7: WAL kept (pgBackRest). @default 7 */
  walDays?: number;
  /** I7: Redis snapshots kept. @default 24 */
  redisSnapshotHours?: number;
  /** I7: ML model versions kept. @default 90 */
  modelDays?: number;
}

export interface BackupBucketArgs {
  /** Globally unique name. @example "acme-tradeops-backups" */
  bucketName: string;
  /**
   * I7 retention; S3 acts on the Redis and model prefixes, pgBackRest on its own.
   * @default { pgFullDays: 30, walDays: 7, redisSnapshotHours: 24, modelDays: 90 }
   * @example { redisSnapshotHours: 48 }
   */
  retention?: BackupRetention;
  /**
   * Days a deleted/overwritten object version is kept before S3 removes it.
   * @default 7
   */
  deletedVersionDays?: number;
  /**
   * Days before pgBackRest full backups move to Glacier Instant Retrieval.
   * @default 7
   */
  glacierAfterDays?: number;
  /**
   * Added to `tradeops:purpose=backups`.
   * @example { team: "trading-platform" }
   */
  tags?: Record<string, string>;
}

/** The lifecycle's inputs, defaults applied. */
export interface BackupLifecycle {
  retention: Required<BackupRetention>;
  deletedVersionDays: number;
  glacierAfterDays: number;
}

/** Key prefixes inside the bucket; the backup writer's IAM policy is scoped to pgbackrest/, redis/ and locks/. */
export const BACKUP_PREFIXES = {
  pgbackrest: "pgbackrest/",
  pgFull: "pgbackrest/backup/",
  wal: "pgbackrest/archive/",
  redis: "redis/",
  models: "models/",
  /** The stack lock (`locks/pgbackrest/<stanza>.json`): each site's own, never replicated. */
  locks: "locks/",
} as const;

/** What replicates to the DR bucket, one rule each: everything but `locks/` (prod's lock must not land on DR's). */
export const REPLICATED_PREFIXES = [BACKUP_PREFIXES.pgbackrest, BACKUP_PREFIXES.redis, BACKUP_PREFIXES.models] as const;

export function backupLifecycleRules(args: BackupLifecycle): aws.types.input.s3.BucketLifecycleConfigurationRule[] {
  const deleted = { noncurrentDays: args.deletedVersionDays };
  return [
    {
      // I7 "PG full daily kept 30 d (S3 + Glacier)": pgBackRest expires at 30 d; S3 moves them to Glacier IR meanwhile.
      id: "pg-full-backups",
      status: "Enabled",
      filter: { prefix: BACKUP_PREFIXES.pgFull },
      transitions: [{ days: args.glacierAfterDays, storageClass: "GLACIER_IR" }],
      noncurrentVersionExpiration: deleted,
    },
    {
      // I7 "WAL continuous kept 7 d": pgBackRest expires it; S3 drops the expired versions.
      id: "pg-wal",
      status: "Enabled",
      filter: { prefix: BACKUP_PREFIXES.wal },
      noncurrentVersionExpiration: deleted,
    },
    {
      id: "redis-snapshots",
      status: "Enabled",
      filter: { prefix: BACKUP_PREFIXES.redis },
      // S3 counts whole days: 24 h → 1 day.
      expiration: { days: Math.max(1, Math.ceil(args.retention.redisSnapshotHours / 24)) },
      noncurrentVersionExpiration: { noncurrentDays: 1 },
    },
    {
      id: "models",
      status: "Enabled",
      filter: { prefix: BACKUP_PREFIXES.models },
      expiration: { days: args.retention.modelDays },
      noncurrentVersionExpiration: deleted,
    },
    {
      // A held lock is rewritten every 15 s: in a versioned bucket each renewal leaves a version behind.
      id: "stack-locks",
      status: "Enabled",
      filter: { prefix: BACKUP_PREFIXES.locks },
      noncurrentVersionExpiration: { noncurrentDays: 1 },
    },
    {
      id: "abort-incomplete-uploads",
      status: "Enabled",
      filter: { prefix: "" },
      abortIncompleteMultipartUpload: { daysAfterInitiation: 2 },
    },
  ];
}

/** The bucket lives in the region of the AWS provider in `opts` (the DR replica: the DR region's). */
export class BackupBucket extends pulumi.ComponentResource {
  public readonly bucket: aws.s3.Bucket;
  public readonly kmsKey: aws.kms.Key;
  public readonly versioning: aws.s3.BucketVersioning;
  public readonly bucketName: pulumi.Output<string>;
  public readonly arn: pulumi.Output<string>;
  public readonly kmsKeyArn: pulumi.Output<string>;

  constructor(name: string, args: BackupBucketArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:aws:BackupBucket", name, {}, opts);
    const childOpts = { parent: this };
    const lifecycle = normalizeLifecycle();
    const tags = { "tradeops:purpose": "backups", ...args.tags };

    this.kmsKey = createKey();
    this.bucket = createBucket();
    blockPublicAccess(this.bucket);
    this.versioning = enableVersioning(this.bucket);
    encrypt(this.bucket, this.kmsKey);
    requireTls(this.bucket);
    expire(this.bucket, this.versioning);
    this.bucketName = this.bucket.bucket;
    this.arn = this.bucket.arn;
    this.kmsKeyArn = this.kmsKey.arn;
    this.registerOutputs({ bucketName: this.bucketName, arn: this.arn, kmsKeyArn: this.kmsKeyArn });

    function normalizeLifecycle(): BackupLifecycle {
      const retention = args.retention ?? {};
      return {
        retention: {
          pgFullDays: retention.pgFullDays ?? 30,
          walDays: retention.walDays ?? 7,
          redisSnapshotHours: retention.redisSnapshotHours ?? 24,
          modelDays: retention.modelDays ?? 90,
        },
        deletedVersionDays: args.deletedVersionDays ?? 7,
        glacierAfterDays: args.glacierAfterDays ?? 7,
      };
    }

    function createKey(): aws.kms.Key {
      const key = new aws.kms.Key(`${name}-key`, { description: `tradeops backups (${args.bucketName})`, enableKeyRotation: true, deletionWindowInDays: 30, tags }, childOpts);
      new aws.kms.Alias(`${name}-key`, { name: `alias/${args.bucketName}`, targetKeyId: key.keyId }, childOpts);
      return key;
    }

    function createBucket(): aws.s3.Bucket {
      // Backups outlive stacks: `pulumi destroy` must not empty this bucket.
      return new aws.s3.Bucket(name, { bucket: args.bucketName, forceDestroy: false, tags }, { ...childOpts, protect: true });
    }

    function blockPublicAccess(bucket: aws.s3.Bucket): void {
      new aws.s3.BucketPublicAccessBlock(
        name,
        { bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true },
        childOpts,
      );
      new aws.s3.BucketOwnershipControls(name, { bucket: bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } }, childOpts);
    }

    function enableVersioning(bucket: aws.s3.Bucket): aws.s3.BucketVersioning {
      return new aws.s3.BucketVersioning(name, { bucket: bucket.id, versioningConfiguration: { status: "Enabled" } }, childOpts);
    }

    function encrypt(bucket: aws.s3.Bucket, key: aws.kms.Key): void {
      new aws.s3.BucketServerSideEncryptionConfiguration(
        name,
        { bucket: bucket.id, rules: [{ applyServerSideEncryptionByDefault: { sseAlgorithm: "aws:kms", kmsMasterKeyId: key.arn }, bucketKeyEnabled: true }] },
        childOpts,
      );
    }

    function requireTls(bucket: aws.s3.Bucket): void {
      const policy = bucket.arn.apply((arn) =>
        JSON.stringify({
          Version: "2012-10-17",
          Statement: [
            {
              Sid: "DenyInsecureTransport",
              Effect: "Deny",
              Principal: "*",
              Action: "s3:*",
              Resource: [arn, `${arn}/*`],
              Condition: { Bool: { "aws:SecureTransport": "false" } },
            },
          ],
        }),
      );
      new aws.s3.BucketPolicy(name, { bucket: bucket.id, policy }, childOpts);
    }

    function expire(bucket: aws.s3.Bucket, versioning: aws.s3.BucketVersioning): void {
      new aws.s3.BucketLifecycleConfiguration(name, { bucket: bucket.id, rules: backupLifecycleRules(lifecycle) }, { ...childOpts, dependsOn: [versioning] });
    }
  }
}
