/**
 * One half of the Route53 failover pair apps resolve (I5, I6): the PRIMARY record (prod) with a
 * health check on the primary API's readiness, or the SECONDARY record (dr). Each site owns its
 * record, so activating DR never needs the prod stack to be updatable.
 */
import * as aws from "@pulumi/aws";
import * as pulumi from "@pulumi/pulumi";

export interface FailoverRecordArgs {
  /** The Route53 hosted zone. @example "Z0123456789ABC" */
  zoneId: pulumi.Input<string>;
  /** The name apps resolve. @example "api.trading.example.com" */
  recordName: pulumi.Input<string>;
  /** Which half of the pair this site owns. @example "PRIMARY" */
  failover: "PRIMARY" | "SECONDARY";
  /** The site's load balancer host name (CNAME target). @example "a1b2c3.elb.eu-west-1.amazonaws.com" */
  target: pulumi.Input<string>;
  /**
   * The site's own name (e.g. `prod-api.trading.example.com`), a plain CNAME to `target`: runbooks
   * and the health check address one site whatever the failover record answers.
   */
  siteHostname: pulumi.Input<string>;
  /**
   * Health-check the site over HTTPS at this path (PRIMARY; Route53 fails over when it is
   * unhealthy). It is sent to `siteHostname`, so the Ingress routes it by Host like real traffic.
   * @default unset: no health check (the SECONDARY half)
   * @example "/health/ready"
   */
  healthCheckPath?: string;
  /** @default 60 (seconds; failover is only as fast as resolvers re-ask) */
  ttl?: number;
}

export class FailoverRecord extends pulumi.ComponentResource {
  public readonly record: aws.route53.Record;
  public readonly siteRecord: aws.route53.Record;
  public readonly healthCheck?: aws.route53.HealthCheck;
  public readonly healthCheckId?: pulumi.Output<string>;
  /** The failover record's CNAME value: the site's load balancer (the contract's `dr.dns.primaryTarget` / `drTarget`). */
  public readonly target: pulumi.Output<string>;
  /** The failover record's TTL in seconds, as declared (`dr.dns.ttl`): a DR activation's UPSERT keeps it. */
  public readonly ttl: number;

  constructor(name: string, args: FailoverRecordArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:aws:FailoverRecord", name, {}, opts);
    const childOpts = { parent: this };
    this.target = pulumi.output(args.target);
    this.ttl = args.ttl ?? 60;
    const ttl = this.ttl;

    this.siteRecord = createSiteRecord();
    if (args.healthCheckPath) {
      this.healthCheck = createHealthCheck(args.healthCheckPath);
      this.healthCheckId = this.healthCheck.id;
    }
    this.record = createRecord(this.healthCheck);
    this.registerOutputs({ record: this.record.fqdn });

    function createSiteRecord(): aws.route53.Record {
      return new aws.route53.Record(`${name}-site`, { zoneId: args.zoneId, name: args.siteHostname, type: "CNAME", ttl: 300, records: [args.target] }, childOpts);
    }

    function createHealthCheck(path: string): aws.route53.HealthCheck {
      return new aws.route53.HealthCheck(
        name,
        {
          type: "HTTPS",
          fqdn: args.siteHostname,
          port: 443,
          resourcePath: path,
          enableSni: true,
          // 3 failures × 10 s: traffic moves within ~30 s plus the TTL (I5 app failure RTO 5 min).
          requestInterval: 10,
          failureThreshold: 3,
          measureLatency: true,
          tags: { Name: `${name}-primary-api` },
        },
        childOpts,
      );
    }

    function createRecord(healthCheck?: aws.route53.HealthCheck): aws.route53.Record {
      return new aws.route53.Record(
        name,
        {
          zoneId: args.zoneId,
          name: args.recordName,
          type: "CNAME",
          ttl,
          records: [args.target],
          setIdentifier: args.failover.toLowerCase(),
          failoverRoutingPolicies: [{ type: args.failover }],
          ...(healthCheck ? { healthCheckId: healthCheck.id } : {}),
        },
        childOpts,
      );
    }
  }
}
