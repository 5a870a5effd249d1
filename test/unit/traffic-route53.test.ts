/**
 * #8 / I5: the Route53 failover pair through @aws-sdk/client-route-53 against a local Route53
 * (test/support/fake-route53.ts): each half UPSERTed with the SetIdentifier, health check and TTL
 * the stacks declare, never a third record; where the PRIMARY half points, read back. #9: the
 * PRIMARY half moved to the DR site and back (`siteRecordChange`), and the default client pointed
 * at the fake by `AWS_ENDPOINT_URL_ROUTE_53` alone.
 */
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Route53Client } from "@aws-sdk/client-route-53";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from "vitest";
import { DrDns } from "../../contract/outputs.ts";
import { StepFailure, UsageError } from "../../runbooks/engine/errors.ts";
import { Route53FailoverTraffic, siteRecordChange } from "../../runbooks/platform/traffic-route53.ts";
import { startFakeRoute53, type FakeRoute53 } from "../support/fake-route53.ts";

const ZONE = "Z0123456789ABC";
const RECORD = { zoneId: ZONE, recordName: "api.trading.example.com" };
const PROD_LB = "prod-lb.elb.eu-west-1.amazonaws.com";
const DR_LB = "dr-lb.elb.eu-central-1.amazonaws.com";

let route53: FakeRoute53;
let client: Route53Client;
let traffic: Route53FailoverTraffic;

beforeAll(async () => {
  route53 = await startFakeRoute53([ZONE]);
  client = new Route53Client({ region: "us-east-1", endpoint: route53.url, credentials: { accessKeyId: "AKIAFAKEROUTE53", secretAccessKey: "fake-route53-secret" }, maxAttempts: 1 });
});
afterAll(async () => {
  client.destroy();
  await route53.close();
});
beforeEach(() => {
  // As the stacks deploy the pair: prod's PRIMARY with its health check, dr's SECONDARY.
  route53.zones.set(ZONE, [
    { name: "api.trading.example.com.", type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [PROD_LB], healthCheckId: "hc-prod-1234" },
    { name: "api.trading.example.com.", type: "CNAME", setIdentifier: "secondary", failover: "SECONDARY", ttl: 60, values: [DR_LB] },
    { name: "prod-api.trading.example.com.", type: "CNAME", ttl: 300, values: [PROD_LB] },
  ]);
  route53.changes.length = 0;
  traffic = new Route53FailoverTraffic(RECORD, client);
});

describe("#8: Route53 failover record pair", () => {
  test("I5: reads back which site the PRIMARY half points to", async () => {
    expect(await traffic.primaryTarget()).toBe(PROD_LB);
    expect(await traffic.half("SECONDARY")).toEqual({ target: DR_LB, healthCheckId: undefined, ttl: 60 });
  });

  test("I5: UPSERT of the PRIMARY half keeps its SetIdentifier, health check and TTL; the pair stays two records", async () => {
    const changeId = await traffic.upsert({ failover: "PRIMARY", target: DR_LB, healthCheckId: "hc-prod-1234" });
    expect(changeId).toMatch(/^\/change\/C\d+$/);
    expect(route53.changes).toEqual([
      { zoneId: ZONE, action: "UPSERT", set: { name: "api.trading.example.com.", type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [DR_LB], healthCheckId: "hc-prod-1234" } },
    ]);
    expect(await traffic.primaryTarget()).toBe(DR_LB);
    expect(route53.zones.get(ZONE)!.filter((set) => set.name === "api.trading.example.com.")).toHaveLength(2);
  });

  test("the SECONDARY half goes without a health check, with the TTL asked for", async () => {
    await traffic.upsert({ failover: "SECONDARY", target: PROD_LB, ttl: 30 });
    expect(route53.changes[0]!.set).toEqual({ name: "api.trading.example.com.", type: "CNAME", setIdentifier: "secondary", failover: "SECONDARY", ttl: 30, values: [PROD_LB] });
    expect(await traffic.half("SECONDARY")).toEqual({ target: PROD_LB, healthCheckId: undefined, ttl: 30 });
    expect(await traffic.primaryTarget()).toBe(PROD_LB);
  });

  test("a zone without the pair reads as no PRIMARY; an unknown zone is a step failure naming it", async () => {
    route53.zones.set(ZONE, []);
    expect(await traffic.primaryTarget()).toBeUndefined();
    const elsewhere = new Route53FailoverTraffic({ zoneId: "Z999NOSUCHZONE", recordName: RECORD.recordName }, client);
    const error = await elsewhere.upsert({ failover: "PRIMARY", target: DR_LB }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(StepFailure);
    expect((error as Error).message).toBe("Route53 refused the PRIMARY half of api.trading.example.com: No hosted zone found with ID: Z999NOSUCHZONE");
  });

  test("inputs are checked before anything is sent", async () => {
    expect(() => new Route53FailoverTraffic({ zoneId: "example.com", recordName: RECORD.recordName }, client)).toThrow(new UsageError("Route53 failover record: zoneId: a Route53 hosted zone id like Z123ABC"));
    await expect(traffic.upsert({ failover: "PRIMARY", target: "not a host" })).rejects.toThrow("Route53 failover record: target: a DNS name like api.example.com");
    await expect(traffic.upsert({ failover: "PRIMARY", target: DR_LB, ttl: 0 })).rejects.toThrow(UsageError);
    expect(route53.changes).toEqual([]);
  });
});

describe("I5: dr activate and dr failback move the PRIMARY half between the sites", () => {
  // The dr block as loadOutputs completes it for prod (prod's PRIMARY half, dr's SECONDARY target).
  const dns = DrDns.parse({ zoneId: ZONE, recordName: RECORD.recordName, healthCheckId: "hc-prod-1234", primaryTarget: PROD_LB, drTarget: DR_LB, ttl: 60 });
  const half = (setIdentifier: string) => route53.zones.get(ZONE)!.find((set) => set.name === "api.trading.example.com." && set.setIdentifier === setIdentifier);

  test("I5: activation UPSERTs the PRIMARY half to the DR load balancer, failback back to prod's; SetIdentifier, health check and TTL stay, the SECONDARY half is untouched", async () => {
    const secondary = structuredClone(half("secondary"));
    await traffic.upsert(siteRecordChange(dns, "dr"));
    expect(half("primary")).toEqual({ name: "api.trading.example.com.", type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [DR_LB], healthCheckId: "hc-prod-1234" });
    expect(await traffic.primaryTarget()).toBe(DR_LB);
    expect(half("secondary")).toEqual(secondary);

    await traffic.upsert(siteRecordChange(dns, "primary"));
    expect(half("primary")).toEqual({ name: "api.trading.example.com.", type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [PROD_LB], healthCheckId: "hc-prod-1234" });
    expect(half("secondary")).toEqual(secondary);
    expect(route53.changes.map((change) => [change.action, change.set.setIdentifier])).toEqual([["UPSERT", "primary"], ["UPSERT", "primary"]]);
    expect(route53.zones.get(ZONE)!.filter((set) => set.name === "api.trading.example.com.")).toHaveLength(2);
  });

  test("I5: the change carries what the outputs say: the stacks' 60 s when no TTL is exported, no health check when there is none", () => {
    expect(siteRecordChange(dns, "dr")).toEqual({ failover: "PRIMARY", target: DR_LB, healthCheckId: "hc-prod-1234", ttl: 60 });
    expect(siteRecordChange({ ...dns, ttl: undefined, healthCheckId: undefined }, "primary")).toEqual({ failover: "PRIMARY", target: PROD_LB, ttl: 60 });
    expect(siteRecordChange({ ...dns, ttl: 30 }, "primary").ttl).toBe(30);
  });

  test("I5: a target the move needs but the outputs lack is a usage error naming the key", () => {
    expect(() => siteRecordChange({ ...dns, drTarget: undefined }, "dr")).toThrow(
      new UsageError("dr.dns.drTarget is missing: the PRIMARY half of api.trading.example.com cannot move to the DR site's load balancer without it; the dr stack exports it (prod reads it through tradeops:drStack)"),
    );
    expect(() => siteRecordChange({ ...dns, primaryTarget: undefined }, "primary")).toThrow(
      new UsageError("dr.dns.primaryTarget is missing: the PRIMARY half of api.trading.example.com cannot move to the primary site's load balancer without it; the prod stack exports it"),
    );
    // Only the target the move needs: activation does not need prod's.
    expect(siteRecordChange({ ...dns, primaryTarget: undefined }, "dr").target).toBe(DR_LB);
  });
});

describe("I5: the default client follows AWS_ENDPOINT_URL_ROUTE_53 (how an integration test reaches the fake)", () => {
  const KEYS = ["AWS_ENDPOINT_URL_ROUTE_53", "AWS_ENDPOINT_URL", "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE"];
  const saved = Object.fromEntries(KEYS.map((key) => [key, process.env[key]]));
  afterEach(() => {
    for (const [key, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[key];
      else process.env[key] = value;
    }
  });

  test("I5: Route53FailoverTraffic built without a client sends its UPSERT and its read to the endpoint the variable names", async () => {
    for (const key of KEYS) delete process.env[key];
    // No shared config or credentials files: the environment alone decides.
    process.env.AWS_CONFIG_FILE = join(tmpdir(), "tradeops-no-aws-config");
    process.env.AWS_SHARED_CREDENTIALS_FILE = join(tmpdir(), "tradeops-no-aws-credentials");
    process.env.AWS_ENDPOINT_URL_ROUTE_53 = route53.url;
    process.env.AWS_ACCESS_KEY_ID = "AKIAFAKEROUTE53";
    process.env.AWS_SECRET_ACCESS_KEY = "fake-route53-secret";
    const byDefault = new Route53FailoverTraffic(RECORD);
    await byDefault.upsert({ failover: "PRIMARY", target: DR_LB, healthCheckId: "hc-prod-1234" });
    expect(route53.changes).toEqual([
      { zoneId: ZONE, action: "UPSERT", set: { name: "api.trading.example.com.", type: "CNAME", setIdentifier: "primary", failover: "PRIMARY", ttl: 60, values: [DR_LB], healthCheckId: "hc-prod-1234" } },
    ]);
    expect(await byDefault.primaryTarget()).toBe(DR_LB);
  });
});
