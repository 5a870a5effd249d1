/**
 * Runs the tradeops Pulumi program against `pulumi.runtime.setMocks`: no engine, no providers. It
 * records every registered resource (type, name, inputs with secrets still marked, parent) and
 * resolves the program's exports. Mocks are process-global: one stack per test file.
 */
import type { PolicyResource, ResourceValidation, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import * as pulumi from "@pulumi/pulumi";
import { policies } from "../../policy/policies.ts";

/** The marker the SDK puts around a secret value on the wire. */
const SECRET_SIG_KEY = "4dabf18193072939515e22adb298388d";
const SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270";

export interface MockedResource {
  type: string;
  name: string;
  urn: string;
  /** Inputs as the engine would receive them: secret values wrapped, see `isSecretValue`. */
  rawInputs: Record<string, unknown>;
  /** Inputs with secret markers removed. */
  inputs: Record<string, any>;
  /** `type name` of the parent, or "" for a top-level resource. */
  parent: string;
  /** Provider reference (`<urn>::<id>`), "" for the default provider. */
  provider: string;
}

export interface ProgramRun {
  resources: MockedResource[];
  /** The exports, resolved, secrets unwrapped. */
  outputs: Record<string, any>;
  /** The exports as the program returned them (Outputs), to ask `pulumi.isSecret`. */
  exports: Record<string, any>;
  byType(type: string): MockedResource[];
  one(type: string, name: string): MockedResource;
  /** Sorted `type name ← parentType parentName` lines: the resource graph a review reads. */
  graph(): string;
}

export interface RunOptions {
  stack: string;
  /** Keys without namespace (`dbPassword`) are put under `tradeops:`. */
  config: Record<string, string | object>;
  /** Keys (without namespace) set as secrets. */
  secretKeys?: string[];
  /** Outputs of stacks the program reads with a StackReference, by stack name. */
  stackReferences?: Record<string, { outputs: Record<string, unknown>; secretOutputNames?: string[] }>;
  project?: string;
  /** A program of its own (e.g. components alone) instead of the tradeops program, `infra/index.ts`. */
  program?: () => Record<string, unknown>;
}

export function isSecretValue(value: unknown): boolean {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[SECRET_SIG_KEY] === SECRET_SIG;
}

export function unwrapSecrets(value: unknown): any {
  if (isSecretValue(value)) return unwrapSecrets((value as { value: unknown }).value);
  if (Array.isArray(value)) return value.map(unwrapSecrets);
  if (value && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, unwrapSecrets(v)]));
  return value;
}

/** Values that only exist after a real create: ARNs, ids, generated keys, load balancer names. */
function computedState(type: string, name: string, inputs: Record<string, any>, refs: RunOptions["stackReferences"]): Record<string, unknown> {
  switch (type) {
    case "aws:s3/bucket:Bucket": {
      const bucket = inputs.bucket ?? `${name}-mock`;
      return { bucket, arn: `arn:aws:s3:::${bucket}`, id: bucket };
    }
    case "aws:kms/key:Key":
      return { arn: `arn:aws:kms:mock:123456789012:key/${name}`, keyId: `${name}-key-id` };
    case "aws:iam/role:Role":
    case "aws:iam/user:User":
      return { arn: `arn:aws:iam::123456789012:${type.endsWith("Role") ? "role" : "user"}/${inputs.name ?? name}`, name: inputs.name ?? name };
    case "aws:iam/accessKey:AccessKey":
      return { id: "AKIAMOCKBACKUPWRITER", secret: pulumi.secret("mock-secret-access-key-0123456789") };
    case "aws:route53/healthCheck:HealthCheck":
      return { id: `${name}-hc-id` };
    case "kubernetes:networking.k8s.io/v1:Ingress":
      return { status: { loadBalancer: { ingress: [{ hostname: `${name}.elb.mock.amazonaws.com` }] } } };
    case "docker:index/remoteImage:RemoteImage":
      return { imageId: `sha256:${name}`, repoDigest: `${inputs.name}@sha256:mock` };
    case "pulumi:pulumi:StackReference": {
      const ref = refs?.[inputs.name ?? name];
      if (!ref) throw new Error(`test set no outputs for stack reference ${inputs.name ?? name}`);
      return { name: inputs.name ?? name, outputs: ref.outputs, secretOutputNames: ref.secretOutputNames ?? [] };
    }
    default:
      return {};
  }
}

export async function runProgram(opts: RunOptions): Promise<ProgramRun> {
  const records = new Map<string, MockedResource>();
  await pulumi.runtime.setMocks(
    {
      newResource: (args) => {
        const state = { ...args.inputs, ...computedState(args.type, args.name, unwrapSecrets(args.inputs), opts.stackReferences) };
        return { id: (state.id as string | undefined) ?? `${args.name}-id`, state };
      },
      call: (args) => {
        throw new Error(`the program made an unexpected provider call: ${args.token}`);
      },
    },
    opts.project ?? "tradeops",
    opts.stack,
    false,
  );
  recordParents(records);

  const values: Record<string, string> = {};
  for (const [key, value] of Object.entries(opts.config)) {
    values[key.includes(":") ? key : `tradeops:${key}`] = typeof value === "string" ? value : JSON.stringify(value);
  }
  pulumi.runtime.setAllConfig(values, (opts.secretKeys ?? []).map((key) => (key.includes(":") ? key : `tradeops:${key}`)));

  const program = opts.program ?? (await import("../../infra/index.ts")).default;
  const exports = program() as Record<string, any>;
  const outputs = await resolve(exports);
  await settled(records);
  const resources = [...records.values()];
  return {
    resources,
    outputs,
    exports,
    byType: (type) => resources.filter((r) => r.type === type),
    one: (type, name) => {
      const found = resources.find((r) => r.type === type && r.name === name);
      if (!found) throw new Error(`no ${type} named ${name}; have: ${resources.filter((r) => r.type === type).map((r) => r.name).join(", ")}`);
      return found;
    },
    graph: () => resources.map((r) => `${r.type} ${r.name} ← ${r.parent || "(stack)"}`).sort().join("\n") + "\n",
  };
}

/** Wraps the mock monitor's registerResource to learn each resource's parent (mocks do not pass it). */
function recordParents(records: Map<string, MockedResource>): void {
  const monitor = pulumi.runtime.getMonitor() as any;
  const urnToLabel = new Map<string, string>();
  const register = monitor.registerResource.bind(monitor);
  monitor.registerResource = (req: any, callback: (err: unknown, response: any) => void) =>
    register(req, (err: unknown, response: any) => {
      if (!err && response) {
        const urn: string = response.getUrn();
        const type: string = req.getType();
        const name: string = req.getName();
        urnToLabel.set(urn, `${type} ${name}`);
        const rawInputs = pulumi.runtime.deserializeProperties(req.getObject()) as Record<string, unknown>;
        const parentUrn: string = req.getParent();
        records.set(urn, { type, name, urn, rawInputs, inputs: unwrapSecrets(rawInputs), parent: parentUrn ? (urnToLabel.get(parentUrn) ?? parentUrn) : "", provider: req.getProvider() ?? "" });
      }
      callback(err, response);
    });
  // StackReferences are read, not registered.
  const read = monitor.readResource.bind(monitor);
  monitor.readResource = (req: any, callback: (err: unknown, response: any) => void) =>
    read(req, (err: unknown, response: any) => {
      if (!err && response) {
        const urn: string = response.getUrn();
        const parentUrn: string = req.getParent();
        const rawInputs = pulumi.runtime.deserializeProperties(req.getProperties()) as Record<string, unknown>;
        records.set(urn, { type: req.getType(), name: req.getName(), urn, rawInputs, inputs: unwrapSecrets(rawInputs), parent: parentUrn ? (urnToLabel.get(parentUrn) ?? parentUrn) : "", provider: req.getProvider() ?? "" });
      }
      callback(err, response);
    });
}

async function resolve(value: unknown): Promise<any> {
  return new Promise((done, fail) => {
    pulumi.output(value as pulumi.Input<any>).apply((resolved: unknown) => {
      done(unwrapSecrets(JSON.parse(JSON.stringify(resolved ?? null))));
      return resolved;
    });
    setTimeout(() => fail(new Error("outputs did not resolve within 20 s")), 20_000).unref();
  });
}

/** Resources register asynchronously: wait until no new one arrives. */
async function settled(records: Map<string, MockedResource>): Promise<void> {
  let last = -1;
  let stableRounds = 0;
  while (stableRounds < 5) {
    await new Promise((r) => setTimeout(r, 20));
    if (records.size === last) stableRounds++;
    else {
      stableRounds = 0;
      last = records.size;
    }
  }
}

/** Whether the value at `path` (e.g. "stringData.password") of a resource's inputs was sent as a secret. */
export function secretAt(resource: MockedResource, path: string): boolean {
  let node: unknown = resource.rawInputs;
  for (const part of path.split(".")) {
    if (isSecretValue(node)) return true;
    if (node === null || typeof node !== "object") return false;
    node = (node as Record<string, unknown>)[part];
  }
  return isSecretValue(node);
}

/** Every container spec of a Kubernetes workload (Deployment, StatefulSet, CronJob), init containers included. */
export function podContainers(resource: MockedResource): Array<Record<string, any>> {
  const pod = resource.type.endsWith(":CronJob") ? resource.inputs.spec?.jobTemplate?.spec?.template?.spec : resource.inputs.spec?.template?.spec;
  return [...(pod?.initContainers ?? []), ...(pod?.containers ?? [])];
}

/** Walks raw inputs and reports every string holding one of `secrets` outside a Pulumi secret. */
export function secretLeaks(run: ProgramRun, secrets: Record<string, string>): string[] {
  // Either empty would make "no leaks" pass by checking nothing.
  if (run.resources.length === 0) throw new Error("no resources to check: the program declared none");
  if (Object.values(secrets).filter(Boolean).length === 0) throw new Error("no secret values to look for");
  const leaks: string[] = [];
  const walk = (node: unknown, path: string, owner: string): void => {
    if (isSecretValue(node)) return;
    if (typeof node === "string") {
      for (const [key, secret] of Object.entries(secrets)) if (node.includes(secret)) leaks.push(`${owner} ${path} holds ${key}`);
    } else if (node && typeof node === "object") {
      for (const [k, v] of Object.entries(node)) walk(v, `${path}.${k}`, owner);
    }
  };
  for (const resource of run.resources) walk(resource.rawInputs, "", `${resource.type} ${resource.name}`);
  return leaks;
}

/** A policy's resource validators: one function or a list. */
export function resourceValidators(policy: ResourceValidationPolicy): ResourceValidation[] {
  const validate = policy.validateResource;
  return Array.isArray(validate) ? validate : [validate!];
}

/**
 * Runs the policy pack over the declared resources, as `pulumi preview --policy-pack policy` would.
 * Every validator is awaited, so an async one's report counts and a rejection fails the caller; an
 * empty resource list is an error, so "passes every policy" can never pass by checking nothing.
 */
export async function policyViolations(run: Pick<ProgramRun, "resources">, pack: Array<ResourceValidationPolicy | StackValidationPolicy> = policies): Promise<string[]> {
  if (run.resources.length === 0) throw new Error("no resources to check: the program declared none");
  const violations: string[] = [];
  const resources = run.resources.map(
    (r) => ({ type: r.type, name: r.name, props: r.inputs, urn: r.urn, opts: {}, dependencies: [], propertyDependencies: {} }) as unknown as PolicyResource,
  );
  for (const policy of pack) {
    const report = (message: string) => violations.push(`${policy.name}: ${message}`);
    if ("validateStack" in policy) {
      await policy.validateStack({ resources, stackTags: new Map() } as never, report);
      continue;
    }
    for (const resource of resources) {
      for (const validate of resourceValidators(policy)) await validate({ ...resource, stackTags: new Map() } as never, report);
    }
  }
  return violations;
}
