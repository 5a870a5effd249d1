/**
 * The least-privilege identity that writes backups: an IAM user whose policy allows listing the
 * backup buckets only under its prefixes, reading/writing/deleting objects only there (pgBackRest
 * expires its own files), and using the buckets' KMS keys. Nothing else.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { BACKUP_PREFIXES } from "./backup-bucket.ts";

export interface BackupWriterArgs {
  /** The buckets it may write: the primary and (for after a failover) the DR replica. */
  buckets: Array<{ arn: pulumi.Input<string>; kmsKeyArn: pulumi.Input<string> }>;
  /**
   * Key prefixes, without leading slash.
   * @default ["pgbackrest/", "redis/", "locks/"] (pgBackRest's repository, the Redis snapshots, the stack lock)
   * @example ["pgbackrest/"]
   */
  prefixes?: string[];
  /**
   * The IAM user's name.
   * @default Pulumi's auto-name (`<name>-<random suffix>`)
   * @example "tradeops-prod-backup-writer"
   */
  userName?: string;
}

/** The policy document, separate so tests can read it without a provider. */
export function backupWriterPolicy(buckets: Array<{ arn: string; kmsKeyArn: string }>, prefixes: string[]): string {
  const bare = prefixes.map((prefix) => prefix.replace(/\/$/, ""));
  return JSON.stringify({
    Version: "2012-10-17",
    Statement: [
      {
        Sid: "ListOwnPrefixes",
        Effect: "Allow",
        Action: ["s3:ListBucket"],
        Resource: buckets.map((bucket) => bucket.arn),
        Condition: { StringLike: { "s3:prefix": [...bare, ...prefixes.map((prefix) => `${prefix}*`)] } },
      },
      {
        Sid: "ReadWriteOwnPrefixes",
        Effect: "Allow",
        Action: ["s3:GetObject", "s3:PutObject", "s3:DeleteObject"],
        Resource: buckets.flatMap((bucket) => prefixes.map((prefix) => `${bucket.arn}/${prefix}*`)),
      },
      {
        Sid: "UseBackupKeys",
        Effect: "Allow",
        Action: ["kms:Encrypt", "kms:Decrypt", "kms:GenerateDataKey"],
        Resource: buckets.map((bucket) => bucket.kmsKeyArn),
      },
    ],
  });
}

export class BackupWriter extends pulumi.ComponentResource {
  public readonly user: aws.iam.User;
  public readonly accessKeyId: pulumi.Output<string>;
  /** A secret Output. */
  public readonly secretAccessKey: pulumi.Output<string>;

  constructor(name: string, args: BackupWriterArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:aws:BackupWriter", name, {}, opts);
    const childOpts = { parent: this };
    const prefixes = args.prefixes ?? [BACKUP_PREFIXES.pgbackrest, BACKUP_PREFIXES.redis, BACKUP_PREFIXES.locks];

    this.user = new aws.iam.User(name, { name: args.userName, tags: { "tradeops:purpose": "backup-writer" } }, childOpts);
    attachPolicy(this.user);
    const key = new aws.iam.AccessKey(name, { user: this.user.name }, { ...childOpts, additionalSecretOutputs: ["secret"] });
    this.accessKeyId = key.id;
    this.secretAccessKey = pulumi.secret(key.secret);
    this.registerOutputs({ user: this.user.name, accessKeyId: this.accessKeyId });

    function attachPolicy(user: aws.iam.User): void {
      const buckets = pulumi.all(args.buckets.map((bucket) => pulumi.all([bucket.arn, bucket.kmsKeyArn]).apply(([arn, kmsKeyArn]) => ({ arn, kmsKeyArn }))));
      new aws.iam.UserPolicy(name, { user: user.name, policy: buckets.apply((resolved) => backupWriterPolicy(resolved, prefixes)) }, childOpts);
    }
  }
}
