/**
 * A Route53 API over HTTP for the two calls the failover traffic adapter makes, in Route53's own
 * REST-XML, so the adapter is tested through @aws-sdk/client-route-53 exactly as it talks to AWS:
 *
 *   POST /2013-04-01/hostedzone/{Id}/rrset   ChangeResourceRecordSets (CREATE, UPSERT, DELETE)
 *   GET  /2013-04-01/hostedzone/{Id}/rrset   ListResourceRecordSets (from name/type, sorted as Route53 sorts)
 *
 * Route53's rules that matter here: names are stored with a trailing dot; a record set is identified
 * by name, type and SetIdentifier (UPSERT of another identifier adds a record); a failover record
 * needs a SetIdentifier; CREATE of an existing set and DELETE of a missing one are InvalidChangeBatch;
 * an unknown zone is NoSuchHostedZone (404).
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface FakeRecordSet {
  name: string;
  type: string;
  setIdentifier?: string;
  failover?: string;
  ttl?: number;
  values: string[];
  healthCheckId?: string;
}

export interface FakeRoute53 {
  url: string;
  /** Record sets by zone id (no `/hostedzone/` prefix). */
  zones: Map<string, FakeRecordSet[]>;
  /** Every change batch received, as parsed. */
  changes: Array<{ zoneId: string; action: string; set: FakeRecordSet }>;
  close(): Promise<void>;
}

const RRSET_PATH = /^\/2013-04-01\/hostedzone\/([^/?]+)\/rrset\/?(?:\?(.*))?$/;
const NS = "https://route53.amazonaws.com/doc/2013-04-01/";

export async function startFakeRoute53(zoneIds: string[]): Promise<FakeRoute53> {
  const zones = new Map<string, FakeRecordSet[]>(zoneIds.map((id) => [id, []]));
  const changes: FakeRoute53["changes"] = [];
  let changeId = 0;
  const server = createServer(async (req, res) => {
    const match = RRSET_PATH.exec(req.url ?? "");
    if (!match) return error(res, 404, "NotFound", `no such API: ${req.method} ${req.url}`);
    const zoneId = decodeURIComponent(match[1]!).replace(/^\/?hostedzone\//, "");
    const sets = zones.get(zoneId);
    if (!sets) return error(res, 404, "NoSuchHostedZone", `No hosted zone found with ID: ${zoneId}`);
    if (req.method === "GET") return list(res, sets, new URLSearchParams(match[2] ?? ""));
    if (req.method !== "POST") return error(res, 405, "MethodNotAllowed", `${req.method} is not supported here`);
    const body = await readText(req);
    const batch: Array<{ action: string; set: FakeRecordSet }> = [];
    for (const change of tags(body, "Change")) {
      const setXml = tag(change, "ResourceRecordSet") ?? "";
      const set: FakeRecordSet = {
        name: dotted(tag(setXml, "Name") ?? ""),
        type: tag(setXml, "Type") ?? "",
        setIdentifier: tag(setXml, "SetIdentifier"),
        failover: tag(setXml, "Failover"),
        ttl: tag(setXml, "TTL") === undefined ? undefined : Number(tag(setXml, "TTL")),
        values: tags(setXml, "Value"),
        healthCheckId: tag(setXml, "HealthCheckId"),
      };
      if (set.failover && !set.setIdentifier) return error(res, 400, "InvalidInput", "Invalid request: Missing field 'SetIdentifier' in Change with [Action=UPSERT, Name=" + set.name + ", Type=" + set.type + "]");
      batch.push({ action: tag(change, "Action") ?? "", set });
    }
    // A batch applies whole or not at all.
    const next = [...sets];
    for (const { action, set } of batch) {
      const at = next.findIndex((s) => s.name === set.name && s.type === set.type && s.setIdentifier === set.setIdentifier);
      if (action === "CREATE" && at >= 0) return error(res, 400, "InvalidChangeBatch", `[Tried to create resource record set [name='${set.name}', type='${set.type}', set-identifier='${set.setIdentifier}'] but it already exists]`);
      if (action === "DELETE" && at < 0) return error(res, 400, "InvalidChangeBatch", `[Tried to delete resource record set [name='${set.name}', type='${set.type}', set-identifier='${set.setIdentifier}'] but it was not found]`);
      if (action === "DELETE") next.splice(at, 1);
      else if (at >= 0) next[at] = set;
      else next.push(set);
    }
    zones.set(zoneId, next);
    for (const { action, set } of batch) changes.push({ zoneId, action, set });
    return xml(
      res,
      `<ChangeResourceRecordSetsResponse xmlns="${NS}"><ChangeInfo><Id>/change/C${++changeId}</Id><Status>PENDING</Status><SubmittedAt>${new Date().toISOString()}</SubmittedAt></ChangeInfo></ChangeResourceRecordSetsResponse>`,
    );
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return { url, zones, changes, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

/** Route53 lists in name order (then type, then identifier), starting at name/type. */
function list(res: ServerResponse, sets: FakeRecordSet[], query: URLSearchParams): void {
  const from = query.get("name") ? dotted(query.get("name")!) : "";
  const fromType = query.get("type") ?? "";
  const max = Number(query.get("maxitems") ?? 100);
  const sorted = [...sets].sort((a, b) => a.name.localeCompare(b.name) || a.type.localeCompare(b.type) || (a.setIdentifier ?? "").localeCompare(b.setIdentifier ?? ""));
  const after = sorted.filter((s) => s.name > from || (s.name === from && s.type >= fromType));
  const page = after.slice(0, max);
  const records = page
    .map(
      (s) =>
        `<ResourceRecordSet><Name>${s.name}</Name><Type>${s.type}</Type>${s.setIdentifier ? `<SetIdentifier>${s.setIdentifier}</SetIdentifier>` : ""}${s.failover ? `<Failover>${s.failover}</Failover>` : ""}${s.ttl !== undefined ? `<TTL>${s.ttl}</TTL>` : ""}<ResourceRecords>${s.values.map((v) => `<ResourceRecord><Value>${v}</Value></ResourceRecord>`).join("")}</ResourceRecords>${s.healthCheckId ? `<HealthCheckId>${s.healthCheckId}</HealthCheckId>` : ""}</ResourceRecordSet>`,
    )
    .join("");
  xml(res, `<ListResourceRecordSetsResponse xmlns="${NS}"><ResourceRecordSets>${records}</ResourceRecordSets><IsTruncated>${after.length > max}</IsTruncated><MaxItems>${max}</MaxItems></ListResourceRecordSetsResponse>`);
}

const dotted = (name: string) => (name.endsWith(".") ? name : `${name}.`).toLowerCase();

function tag(text: string, name: string): string | undefined {
  return tags(text, name)[0];
}

function tags(text: string, name: string): string[] {
  return [...text.matchAll(new RegExp(`<${name}>([\\s\\S]*?)</${name}>`, "g"))].map((m) => m[1]!);
}

function xml(res: ServerResponse, body: string): void {
  res.writeHead(200, { "content-type": "text/xml", "x-amzn-requestid": "fake" }).end(`<?xml version="1.0" encoding="UTF-8"?>\n${body}`);
}

function error(res: ServerResponse, code: number, errorCode: string, message: string): void {
  res
    .writeHead(code, { "content-type": "text/xml", "x-amzn-requestid": "fake" })
    .end(`<?xml version="1.0" encoding="UTF-8"?>\n<ErrorResponse xmlns="${NS}"><Error><Type>Sender</Type><Code>${errorCode}</Code><Message>${message}</Message></Error><RequestId>fake</RequestId></ErrorResponse>`);
}

async function readText(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
}
