/**
 * A Kubernetes API server over HTTP, with the API server's own concurrency rules, so what talks to
 * a cluster is tested through @kubernetes/client-node exactly as it talks to one:
 *
 * - coordination.k8s.io/v1 Leases (the stack lock): create answers 409 AlreadyExists for an
 *   existing name; replace and delete carry the resourceVersion they read and answer 409 Conflict
 *   when it moved;
 * - v1 Services, Pods, ConfigMaps and apps/v1 Deployments (the failover topology): GET, and PATCH in
 *   the three patch content types — merge (RFC 7386), strategic merge (the same for the maps these
 *   objects are patched in; lists are replaced) and JSON patch (RFC 6902: add, replace, remove,
 *   test). A patch naming `metadata.resourceVersion` is refused with 409 Conflict when the object
 *   moved on; another content type is 415; a patch that leaves a label, selector, annotation or
 *   ConfigMap value that is not a string, or a failed JSON-patch `test`, is 422 Invalid.
 *
 * A missing object is 404 NotFound; every answer has a Date header (the server's clock).
 * `refuseNextPatch` answers the next PATCH of an object with a Status of its own (RBAC's 403
 * Forbidden, an admission webhook's denial), as a cluster's policy would.
 *
 * With `deploymentController`, apps/v1 ReplicaSets are listed (by label selector) and a PATCH that
 * changes a Deployment's pod template is rolled out at once, as the controller would: the
 * ReplicaSet with that template (pod-template-hash aside) gets the next revision, or a new one is
 * made; generation and status (observed, updated, available) follow. That is what `rollout undo`
 * and an image change need to be tested through @kubernetes/client-node. A change of `spec.replicas`
 * of a Deployment or StatefulSet (`kubectl scale`) is reflected in its status at once.
 */
import { writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";

interface StoredLease {
  metadata: { name: string; namespace: string; resourceVersion: string; annotations?: Record<string, string>; creationTimestamp: string };
  spec: Record<string, unknown>;
}

/** Kinds the fake serves besides Leases, by their URL plural. */
export type FakeKind = "services" | "pods" | "configmaps" | "deployments" | "replicasets" | "statefulsets";

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type KubeObject = { metadata: { name: string; namespace?: string; resourceVersion?: string; [key: string]: any }; [key: string]: any };

export interface FakeKubeApi {
  url: string;
  /** A kubeconfig file for it (context "fake"), for KUBECONFIG. */
  kubeconfig: string;
  leases: Map<string, StoredLease>;
  /** Stores an object as the cluster has it (a fresh resourceVersion); returns what was stored. */
  put(kind: FakeKind, namespace: string, object: KubeObject): KubeObject;
  /** The object as stored now, or undefined. */
  get(kind: FakeKind, namespace: string, name: string): KubeObject | undefined;
  /** Every PATCH that reached the server: its path and content type, in order (refused ones too). */
  patches: Array<{ path: string; contentType: string; status: number }>;
  /** The body of each PATCH in `patches`, same order (empty both together): parsed JSON, or the text when it is not JSON. */
  patchBodies: unknown[];
  /** Answers the next PATCH of this object with this Status instead of applying it (a policy's refusal). */
  refuseNextPatch(kind: FakeKind, namespace: string, name: string, refusal: { code: number; reason: string; message: string }): void;
  /** Runs once before the next PATCH of this object is applied: a concurrent writer, for conflict tests. */
  beforeNextPatch(kind: FakeKind, namespace: string, name: string, change: (object: KubeObject) => void): void;
  close(): Promise<void>;
}

const LEASE_PATH = /^\/apis\/coordination\.k8s\.io\/v1\/namespaces\/([^/]+)\/leases(?:\/([^/?]+))?/;
const OBJECT_PATH = /^\/(?:api\/v1|apis\/apps\/v1)\/namespaces\/([^/]+)\/(services|pods|configmaps|deployments|replicasets|statefulsets)\/([^/?]+)(?:\?.*)?$/;
const REPLICA_SET_LIST = /^\/apis\/apps\/v1\/namespaces\/([^/]+)\/replicasets(?:\?(.*))?$/;
const KIND_OF: Record<FakeKind, { apiVersion: string; kind: string; group: string }> = {
  services: { apiVersion: "v1", kind: "Service", group: "services" },
  pods: { apiVersion: "v1", kind: "Pod", group: "pods" },
  configmaps: { apiVersion: "v1", kind: "ConfigMap", group: "configmaps" },
  deployments: { apiVersion: "apps/v1", kind: "Deployment", group: "deployments.apps" },
  replicasets: { apiVersion: "apps/v1", kind: "ReplicaSet", group: "replicasets.apps" },
  statefulsets: { apiVersion: "apps/v1", kind: "StatefulSet", group: "statefulsets.apps" },
};
const REVISION = "deployment.kubernetes.io/revision";
const PATCH_TYPES = ["application/merge-patch+json", "application/strategic-merge-patch+json", "application/json-patch+json"];

export async function startFakeKubeApi(dir: string, options: { deploymentController?: boolean } = {}): Promise<FakeKubeApi> {
  const leases = new Map<string, StoredLease>();
  const objects = new Map<string, KubeObject>();
  const patches: FakeKubeApi["patches"] = [];
  const patchBodies: unknown[] = [];
  const pendingChanges = new Map<string, (object: KubeObject) => void>();
  const pendingRefusals = new Map<string, { code: number; reason: string; message: string }>();
  let version = 1;
  const keyOf = (kind: FakeKind, namespace: string, name: string) => `${kind}/${namespace}/${name}`;
  const put = (kind: FakeKind, namespace: string, object: KubeObject): KubeObject => {
    const stored = structuredClone(object);
    stored.metadata = { ...stored.metadata, namespace, resourceVersion: String(++version) };
    stored.metadata.creationTimestamp ??= new Date().toISOString();
    objects.set(keyOf(kind, namespace, stored.metadata.name), stored);
    return stored;
  };
  const server = createServer(async (req, res) => {
    res.setHeader("date", new Date().toUTCString());
    const listMatch = options.deploymentController && req.method === "GET" ? REPLICA_SET_LIST.exec(req.url ?? "") : null;
    if (listMatch) return listReplicaSets(res, listMatch[1]!, new URLSearchParams(listMatch[2] ?? "").get("labelSelector") ?? "");
    const objectMatch = OBJECT_PATH.exec(req.url ?? "");
    if (objectMatch) return serveObject(req, res, objectMatch[1]!, objectMatch[2] as FakeKind, decodeURIComponent(objectMatch[3]!));
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

  async function serveObject(req: IncomingMessage, res: ServerResponse, namespace: string, kind: FakeKind, name: string): Promise<void> {
    const { kind: kindName, group } = KIND_OF[kind];
    const key = keyOf(kind, namespace, name);
    const text = await readText(req);
    const recordPatch = (code: number) => {
      patches.push({ path: req.url ?? "", contentType, status: code });
      patchBodies.push(parsedOrText(text));
    };
    const answer = (code: number, reason: string, message: string) => {
      if (req.method === "PATCH") recordPatch(code);
      return status(res, code, reason, message);
    };
    const contentType = (req.headers["content-type"] ?? "").split(";")[0]!.trim();
    const current = objects.get(key);
    if (req.method === "GET") return current ? object(res, 200, kind, current) : status(res, 404, "NotFound", `${group} "${name}" not found`);
    if (req.method !== "PATCH") return status(res, 405, "MethodNotAllowed", `${req.method} is not supported here`);
    if (!PATCH_TYPES.includes(contentType)) return answer(415, "UnsupportedMediaType", `the body of the request was in an unknown format - accepted media types include: ${PATCH_TYPES.join(", ")}`);
    if (!current) return answer(404, "NotFound", `${group} "${name}" not found`);
    const refusal = pendingRefusals.get(key);
    if (refusal) {
      pendingRefusals.delete(key);
      return answer(refusal.code, refusal.reason, refusal.message);
    }
    const concurrent = pendingChanges.get(key);
    if (concurrent) {
      pendingChanges.delete(key);
      concurrent(current);
      current.metadata.resourceVersion = String(++version);
    }
    let patch: unknown;
    try {
      patch = JSON.parse(text);
    } catch {
      return answer(400, "BadRequest", "the patch is not JSON");
    }
    let patched: KubeObject;
    if (contentType === "application/json-patch+json") {
      const applied = applyJsonPatch(current, patch);
      if (typeof applied === "string") return answer(422, "Invalid", `${kindName} "${name}" is invalid: ${applied}`);
      patched = applied;
    } else {
      const precondition = (patch as KubeObject).metadata?.resourceVersion;
      if (precondition !== undefined && precondition !== current.metadata.resourceVersion) {
        return answer(409, "Conflict", `Operation cannot be fulfilled on ${group} "${name}": the object has been modified; please apply your changes to the latest version and try again`);
      }
      patched = mergePatch(current, patch) as KubeObject;
    }
    const invalid = invalidField(patched, kind);
    if (invalid) return answer(422, "Invalid", `${kindName} "${name}" is invalid: ${invalid}: must be a string`);
    patched.metadata = { ...patched.metadata, name, namespace, resourceVersion: String(++version) };
    if (options.deploymentController && kind === "deployments" && JSON.stringify(patched.spec?.template) !== JSON.stringify(current.spec?.template)) rollOut(namespace, patched);
    // Scaling (kubectl scale): the pods come and go at once.
    if (options.deploymentController && (kind === "deployments" || kind === "statefulsets") && patched.spec?.replicas !== current.spec?.replicas) {
      const replicas = patched.spec.replicas;
      patched.status = { ...patched.status, observedGeneration: patched.metadata.generation, replicas, readyReplicas: replicas, availableReplicas: replicas, updatedReplicas: replicas };
    }
    objects.set(key, patched);
    recordPatch(200);
    return object(res, 200, kind, patched);
  }

  /** The controller's work, done at once: the template's ReplicaSet gets the next revision; the Deployment is rolled out. */
  function rollOut(namespace: string, deployment: KubeObject): void {
    const owned = [...objects.entries()].filter(([key, rs]) => key.startsWith(`replicasets/${namespace}/`) && rs.metadata.ownerReferences?.some((o: { uid: string }) => o.uid === deployment.metadata.uid)).map(([, rs]) => rs);
    const next = Math.max(0, ...owned.map((rs) => Number(rs.metadata.annotations?.[REVISION] ?? 0))) + 1;
    const bare = (template: KubeObject["spec"]) => {
      const copy = structuredClone(template);
      delete copy?.metadata?.labels?.["pod-template-hash"];
      return JSON.stringify(sortedKeys(copy));
    };
    const same = owned.find((rs) => bare(rs.spec.template) === bare(deployment.spec.template));
    const replicas = deployment.spec.replicas ?? 1;
    if (same) {
      same.metadata.annotations = { ...same.metadata.annotations, [REVISION]: String(next) };
      same.metadata.resourceVersion = String(++version);
    } else {
      const hash = `h${next}`;
      put("replicasets", namespace, {
        metadata: { name: `${deployment.metadata.name}-${hash}`, labels: { ...deployment.spec.selector?.matchLabels, "pod-template-hash": hash }, annotations: { [REVISION]: String(next) }, ownerReferences: [{ kind: "Deployment", name: deployment.metadata.name, uid: deployment.metadata.uid }] },
        spec: { replicas, template: { ...structuredClone(deployment.spec.template), metadata: { ...deployment.spec.template?.metadata, labels: { ...deployment.spec.template?.metadata?.labels, "pod-template-hash": hash } } } },
      });
    }
    const generation = (deployment.metadata.generation ?? 1) + 1;
    deployment.metadata.generation = generation;
    deployment.status = { observedGeneration: generation, replicas, updatedReplicas: replicas, readyReplicas: replicas, availableReplicas: replicas };
  }

  function listReplicaSets(res: ServerResponse, namespace: string, selector: string): void {
    const wanted = selector.split(",").filter(Boolean).map((pair) => pair.split("="));
    const items = [...objects.entries()]
      .filter(([key]) => key.startsWith(`replicasets/${namespace}/`))
      .map(([, rs]) => rs)
      .filter((rs) => wanted.every(([k, v]) => rs.metadata.labels?.[k!] === v));
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ apiVersion: "apps/v1", kind: "ReplicaSetList", metadata: { resourceVersion: String(version) }, items }));
  }

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
  return {
    url,
    kubeconfig,
    leases,
    put,
    get: (kind, namespace, name) => structuredClone(objects.get(keyOf(kind, namespace, name))),
    patches,
    patchBodies,
    beforeNextPatch: (kind, namespace, name, change) => void pendingChanges.set(keyOf(kind, namespace, name), change),
    refuseNextPatch: (kind, namespace, name, refusal) => void pendingRefusals.set(keyOf(kind, namespace, name), refusal),
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** The same object with every map's keys in order: a client's serializer may order fields its own way. */
function sortedKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortedKeys);
  if (!value || typeof value !== "object") return value;
  return Object.fromEntries(Object.entries(value).sort(([a], [b]) => a.localeCompare(b)).map(([k, v]) => [k, sortedKeys(v)]));
}

/** RFC 7386: objects merge, `null` deletes, anything else (lists included) replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (patch === null || typeof patch !== "object" || Array.isArray(patch)) return structuredClone(patch);
  const result: Record<string, unknown> = target && typeof target === "object" && !Array.isArray(target) ? structuredClone(target as Record<string, unknown>) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

/** RFC 6902 add / replace / remove / test; a string says why it cannot apply. */
function applyJsonPatch(target: KubeObject, operations: unknown): KubeObject | string {
  if (!Array.isArray(operations)) return "a JSON patch is a list of operations";
  const result = structuredClone(target) as Record<string, unknown>;
  for (const op of operations as Array<{ op: string; path: string; value?: unknown }>) {
    const parts = String(op.path).split("/").slice(1).map((part) => part.replaceAll("~1", "/").replaceAll("~0", "~"));
    const last = parts.pop();
    if (last === undefined) return `${op.op} of the whole object is not supported`;
    let parent: Record<string, unknown> | undefined = result;
    for (const part of parts) {
      if (parent[part] === undefined && op.op === "add") parent[part] = {};
      const next: unknown = parent[part];
      if (!next || typeof next !== "object") return `${op.path}: no such path`;
      parent = next as Record<string, unknown>;
    }
    switch (op.op) {
      case "add":
      case "replace":
        if (op.op === "replace" && !(last in parent)) return `${op.path}: no such path`;
        parent[last] = structuredClone(op.value);
        break;
      case "remove":
        if (!(last in parent)) return `${op.path}: no such path`;
        delete parent[last];
        break;
      case "test":
        if (JSON.stringify(parent[last]) !== JSON.stringify(op.value)) return `${op.path}: test failed (expected ${JSON.stringify(op.value)})`;
        break;
      default:
        return `unsupported JSON patch operation ${op.op}`;
    }
  }
  return result as KubeObject;
}

/** The string maps the API server validates here: labels, annotations, a Service's selector, a ConfigMap's data. */
function invalidField(object: KubeObject, kind: FakeKind): string | undefined {
  const maps: Array<[string, unknown]> = [
    ["metadata.labels", object.metadata?.labels],
    ["metadata.annotations", object.metadata?.annotations],
    ["spec.selector", kind === "services" ? object.spec?.selector : undefined],
    ["spec.template.metadata.annotations", object.spec?.template?.metadata?.annotations],
    ["data", object.data],
  ];
  for (const [path, map] of maps) {
    if (map === undefined || map === null) continue;
    for (const [key, value] of Object.entries(map as Record<string, unknown>)) if (typeof value !== "string") return `${path}.${key}`;
  }
  return undefined;
}

function object(res: ServerResponse, code: number, kind: FakeKind, body: KubeObject): void {
  res.writeHead(code, { "content-type": "application/json" }).end(JSON.stringify({ apiVersion: KIND_OF[kind].apiVersion, kind: KIND_OF[kind].kind, ...body }));
}

function parsedOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

async function readText(req: IncomingMessage): Promise<string> {
  let text = "";
  for await (const chunk of req) text += chunk;
  return text;
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
