/**
 * The site-level traffic switch (I5, I6): the Route53 failover record pair apps resolve. Each
 * site's stack owns one half (prod the PRIMARY with its health check, dr the SECONDARY); a DR
 * activation rewrites a half here with UPSERT — same name, type, SetIdentifier, health check and
 * TTL as the stack declared it (infra/components/aws/failover-record.ts), only the target moved —
 * and reads back where the PRIMARY half points.
 */
import type { Route53Client } from "@aws-sdk/client-route-53";
import { z } from "zod";
import { describeIssue, type DrDns } from "../../contract/outputs.ts";
import { StepFailure, UsageError, oneLine } from "../engine/errors.ts";

/** The TTL the stacks declare for the failover pair: failover is only as fast as resolvers re-ask. */
export const FAILOVER_TTL_SECONDS = 60;
const hostname = z.string().regex(/^(?=.{1,253}\.?$)([a-z0-9_]([a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,}\.?$/i, "a DNS name like api.example.com");

export const FailoverRecordSet = z.object({
  /** @example "Z0123456789ABC" */
  zoneId: z.string().regex(/^(\/hostedzone\/)?Z[A-Z0-9]+$/, "a Route53 hosted zone id like Z123ABC"),
  /** @example "api.trading.example.com" */
  recordName: hostname,
});
export type FailoverRecordSet = z.infer<typeof FailoverRecordSet>;

export const FailoverHalf = z.object({
  failover: z.enum(["PRIMARY", "SECONDARY"]),
  /** The site's load balancer host name, the CNAME's value. @example "a1b2c3.elb.eu-central-1.amazonaws.com" */
  target: hostname,
  /** Route53 fails over from the PRIMARY when this check fails; the SECONDARY half has none. */
  healthCheckId: z.string().min(1).optional(),
  ttl: z.number().int().min(1).max(86_400).default(FAILOVER_TTL_SECONDS),
});
export type FailoverHalfInput = z.input<typeof FailoverHalf>;

/** The SetIdentifier the stacks give each half (`primary` / `secondary`): UPSERT must name the same one or it adds a third record. */
export function setIdentifierOf(failover: "PRIMARY" | "SECONDARY"): string {
  return failover.toLowerCase();
}

/**
 * The change `dr activate` (site `dr`) and `dr failback` (site `primary`) make: the PRIMARY half
 * moves to that site's load balancer and keeps its SetIdentifier, health check and TTL. The
 * SECONDARY half stays where the dr stack put it.
 */
export function siteRecordChange(dns: DrDns, site: "primary" | "dr"): FailoverHalfInput {
  const key = site === "dr" ? "drTarget" : "primaryTarget";
  const target = dns[key];
  if (!target) {
    const exporter = site === "dr" ? "the dr stack exports it (prod reads it through tradeops:drStack)" : "the prod stack exports it";
    throw new UsageError(`dr.dns.${key} is missing: the PRIMARY half of ${dns.recordName} cannot move to the ${site === "dr" ? "DR" : "primary"} site's load balancer without it; ${exporter}`);
  }
  return { failover: "PRIMARY", target, ...(dns.healthCheckId ? { healthCheckId: dns.healthCheckId } : {}), ttl: dns.ttl ?? FAILOVER_TTL_SECONDS };
}

/** Route53 answers names with a trailing dot; compare without it. */
const bare = (name: string) => name.replace(/\.$/, "").toLowerCase();

export class Route53FailoverTraffic {
  private readonly record: FailoverRecordSet;
  private readonly client: () => Promise<Route53Client>;

  /**
   * `client`: tests pass one pointed at a local fake; by default the SDK's own credentials chain and
   * endpoint settings (`AWS_ENDPOINT_URL_ROUTE_53` points it elsewhere, e.g. at the fake).
   */
  constructor(record: FailoverRecordSet, client?: Route53Client) {
    this.record = parsed(FailoverRecordSet, record);
    let made: Promise<Route53Client> | undefined;
    this.client = () =>
      (made ??= client
        ? Promise.resolve(client)
        : import("@aws-sdk/client-route-53").then(({ Route53Client: Client }) => new Client({ region: "us-east-1", maxAttempts: 3 })));
  }

  /** UPSERTs one half of the pair; returns Route53's change id (PENDING until its servers have it). */
  async upsert(half: FailoverHalfInput): Promise<string> {
    const { failover, target, healthCheckId, ttl } = parsed(FailoverHalf, half);
    const { ChangeResourceRecordSetsCommand } = await import("@aws-sdk/client-route-53");
    const answer = await (await this.client())
      .send(
        new ChangeResourceRecordSetsCommand({
          HostedZoneId: this.record.zoneId,
          ChangeBatch: {
            Comment: `tradeops: ${failover} half of ${this.record.recordName} → ${target}`,
            Changes: [
              {
                Action: "UPSERT",
                ResourceRecordSet: {
                  Name: this.record.recordName,
                  Type: "CNAME",
                  SetIdentifier: setIdentifierOf(failover),
                  Failover: failover,
                  TTL: ttl,
                  ResourceRecords: [{ Value: target }],
                  ...(healthCheckId ? { HealthCheckId: healthCheckId } : {}),
                },
              },
            ],
          },
        }),
      )
      .catch((error: unknown) => {
        throw new StepFailure(`Route53 refused the ${failover} half of ${this.record.recordName}: ${oneLine(error)}`, `check hosted zone ${this.record.zoneId} and the AWS credentials (route53:ChangeResourceRecordSets)`);
      });
    return answer.ChangeInfo?.Id ?? "";
  }

  /** Where the PRIMARY half points now (its CNAME value), undefined when the zone has no PRIMARY half of this name. */
  async primaryTarget(): Promise<string | undefined> {
    return (await this.half("PRIMARY"))?.target;
  }

  /** One half as Route53 has it. */
  async half(failover: "PRIMARY" | "SECONDARY"): Promise<{ target?: string; healthCheckId?: string; ttl?: number } | undefined> {
    const { ListResourceRecordSetsCommand } = await import("@aws-sdk/client-route-53");
    const answer = await (await this.client())
      .send(new ListResourceRecordSetsCommand({ HostedZoneId: this.record.zoneId, StartRecordName: this.record.recordName, StartRecordType: "CNAME", MaxItems: 10 }))
      .catch((error: unknown) => {
        throw new StepFailure(`could not read ${this.record.recordName} from Route53: ${oneLine(error)}`, `check hosted zone ${this.record.zoneId} and the AWS credentials (route53:ListResourceRecordSets)`);
      });
    const found = (answer.ResourceRecordSets ?? []).find(
      (set) => bare(set.Name ?? "") === bare(this.record.recordName) && set.Type === "CNAME" && set.SetIdentifier === setIdentifierOf(failover),
    );
    if (!found) return undefined;
    return { target: found.ResourceRecords?.[0]?.Value?.replace(/\.$/, ""), healthCheckId: found.HealthCheckId, ttl: found.TTL };
  }
}

function parsed<T extends z.ZodType>(schema: T, value: unknown): z.infer<T> {
  const result = schema.safeParse(value);
  if (!result.success) throw new UsageError(`Route53 failover record: ${describeIssue(result.error)}`);
  return result.data;
}
