/**
 * A Kubernetes API server for one resource — coordination.k8s.io/v1 Leases — over HTTP, with the
 * API server's own concurrency rules, so the Lease lock is tested through @kubernetes/client-node
 * exactly as it talks to a cluster: create answers 409 AlreadyExists for an existing name;
 * replace and delete carry the resourceVersion they read and answer 409 Conflict when it moved;
 * a missing lease is 404 NotFound; every answer has a Date header (the server's clock).
 */
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion: string; annotations?: Record<string, string>; creationTimestamp: string };
  spec: Record<string, unknown>;
}

export interface FakeKubeApi {
  url: string;
  /** A kubeconfig file for it (context "fake"), for KUBECONFIG. */
  kubeconfig: string;
  leases: Map<string, StoredLease>;
  close(): Promise<void>;
}

const LEASE_PATH = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/?]+))?/;

export async function startFakeKubeApi(dir: string): Promise<FakeKubeApi> {
  const leases = new Map<string, StoredLease>();
  let version = 1;
  const server = createServer(async (req, res) => {
    const body = await readBody(req);
    const match = LEASE_PATH.exec(req.url ?? "");
    if (!match) return status(res, 404, "NotFound", `the server could not find the requested resource (${req.url})`);
    const [, namespace, name] = match;
    const id = `${namespace}/${name ?? body?.metadata?.name}`;
    const current = leases.get(id);
    switch (`${req.method} ${name ? "item" : "collection"}`) {
      case "POST collection": {
        if (current) return status(res, 409, "AlreadyExists", `leases.coordination.k8s.io "${body.metadata.name}" already exists`);
        const created = stored(body, namespace!, ++version);
        leases.set(id, created);
        return json(res, 201, created);
      }
      case "GET item":
        return current ? json(res, 200, current) : status(res, 404, "NotFound", `leases.coordination.k8s.io "${name}" not found`);
      case "PUT item": {
        if (!current) return status(res, 404, "NotFound", `leases.coordination.k8s.io "${name}" not found`);
        if (body.metadata?.resourceVersion !== current.metadata.resourceVersion) {
          return status(res, 409, "Conflict", `Operation cannot be fulfilled on leases.coordination.k8s.io "${name}": the object has been modified; please apply your changes to the latest version and try again`);
        }
        const replaced = stored(body, namespace!, ++version, current.metadata.creationTimestamp);
        leases.set(id, replaced);
        return json(res, 200, replaced);
      }
      case "DELETE item": {
        if (!current) return status(res, 404, "NotFound", `leases.coordination.k8s.io "${name}" not found`);
        const precondition = body?.preconditions?.resourceVersion;
        if (precondition && precondition !== current.metadata.resourceVersion) {
          return status(res, 409, "Conflict", `Precondition failed: ResourceVersion in precondition: ${precondition}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
        }
        leases.delete(id);
        return json(res, 200, { kind: "Status", apiVersion: "v1", status: "Success" });
      }
      default:
        return status(res, 405, "MethodNotAllowed", `${req.method} is not supported here`);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const kubeconfig = join(dir, "kubeconfig.json");
  writeFileSync(
    kubeconfig,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      // client-node refuses plain HTTP unless TLS verification is off (there is no TLS to verify).
      clusters: [{ name: "fake", cluster: { server: url, "insecure-skip-tls-verify": true } }],
      users: [{ name: "fake", user: { token: "fake-token" } }],
      contexts: [{ name: "fake", context: { cluster: "fake", user: "fake" } }],
      "current-context": "fake",
    }),
  );
  return { url, kubeconfig, leases, close: () => new Promise((resolve) => server.close(() => resolve())) };
}

function stored(body: { metadata: StoredLease["metadata"]; spec: Record<string, unknown> }, namespace: string, resourceVersion: number, created?: string): StoredLease {
  return {
    metadata: { ...body.metadata, namespace, resourceVersion: String(resourceVersion), creationTimestamp: created ?? new Date().toISOString() },
    spec: body.spec,
  };
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
async function readBody(req: IncomingMessage): Promise<any> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text ? JSON.parse(text) : undefined;
}

function json(res: ServerResponse, code: number, body: unknown): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify({ apiVersion: "coordination.k8s.io/v1", kind: "Lease", ...(body as object) }));
}

function status(res: ServerResponse, code: number, reason: string, message: string): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify({ kind: "Status", apiVersion: "v1", status: "Failure", message, reason, code }));
}
