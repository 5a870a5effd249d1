/**
 * Cross-region replication of the backup bucket to the DR region's bucket (I5 "whole site",
 * I6): every object and delete marker under the backup prefixes, re-encrypted with the replica's
 * own KMS key, through an IAM role S3 assumes. One rule per prefix rather than one for the whole
 * bucket: `locks/` stays out, or prod's stack lock would be copied over the DR site's at the same key.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";
import { REPLICATED_PREFIXES, type BackupBucket } from "./backup-bucket.ts";

export interface BackupReplicationArgs {
  /** The bucket replicated from; `opts.provider` must be its region's. */
  source: BackupBucket;
  /** The DR region's bucket. */
  destination: BackupBucket;
  /**
   * Key prefixes replicated, one rule each (S3 needs distinct priorities).
   * @default ["pgbackrest/", "redis/", "models/"]
   * @example ["pgbackrest/"]
   */
  prefixes?: readonly string[];
}

export class BackupReplication extends pulumi.ComponentResource {
  public readonly role: aws.iam.Role;
  public readonly configuration: aws.s3.BucketReplicationConfig;

  constructor(name: string, args: BackupReplicationArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:aws:BackupReplication", name, {}, opts);
    const childOpts = { parent: this };
    const prefixes = args.prefixes ?? REPLICATED_PREFIXES;

    this.role = createRole();
    allowReplication(this.role);
    this.configuration = replicate(this.role);
    this.registerOutputs({ role: this.role.arn });

    function createRole(): aws.iam.Role {
      return new aws.iam.Role(
        name,
        {
          assumeRolePolicy: JSON.stringify({
            Version: "2012-10-17",
            Statement: [{ Effect: "Allow", Principal: { Service: "s3.amazonaws.com" }, Action: "sts:AssumeRole" }],
          }),
        },
        childOpts,
      );
    }

    function allowReplication(role: aws.iam.Role): void {
      const policy = pulumi
        .all([args.source.arn, args.destination.arn, args.source.kmsKeyArn, args.destination.kmsKeyArn])
        .apply(([source, destination, sourceKey, destinationKey]) =>
          JSON.stringify({
            Version: "2012-10-17",
            Statement: [
              { Effect: "Allow", Action: ["s3:GetReplicationConfiguration", "s3:ListBucket"], Resource: [source] },
              { Effect: "Allow", Action: ["s3:GetObjectVersionForReplication", "s3:GetObjectVersionAcl", "s3:GetObjectVersionTagging"], Resource: [`${source}/*`] },
              { Effect: "Allow", Action: ["s3:ReplicateObject", "s3:ReplicateDelete", "s3:ReplicateTags"], Resource: [`${destination}/*`] },
              { Effect: "Allow", Action: ["kms:Decrypt"], Resource: [sourceKey] },
              { Effect: "Allow", Action: ["kms:Encrypt", "kms:GenerateDataKey"], Resource: [destinationKey] },
            ],
          }),
        );
      new aws.iam.RolePolicy(name, { role: role.id, policy }, childOpts);
    }

    function replicate(role: aws.iam.Role): aws.s3.BucketReplicationConfig {
      return new aws.s3.BucketReplicationConfig(
        name,
        {
          bucket: args.source.bucket.id,
          role: role.arn,
          rules: prefixes.map((prefix, i) => ({
            id: `${prefix.replace(/\/$/, "")}-to-dr`,
            status: "Enabled",
            priority: i + 1,
            filter: { prefix },
            // pgBackRest's expire deletes; the DR copy must follow or it grows forever.
            deleteMarkerReplication: { status: "Enabled" },
            sourceSelectionCriteria: { sseKmsEncryptedObjects: { status: "Enabled" } },
            destination: {
              bucket: args.destination.arn,
              storageClass: "STANDARD",
              encryptionConfiguration: { replicaKmsKeyId: args.destination.kmsKeyArn },
            },
          })),
        },
        // Replication needs versioning on both sides first.
        { ...childOpts, dependsOn: [args.source.versioning, args.destination.versioning] },
      );
    }
  }
}
