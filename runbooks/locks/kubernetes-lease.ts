/**
 * The stack lock as a coordination.k8s.io/v1 Lease in the stack's namespace — what Kubernetes'
 * own leader election uses, and what CloudNativePG's operator holds. The API server's optimistic
 * concurrency makes it a lock: create fails with 409 AlreadyExists for the second creator; renew,
 * take over and release name the `resourceVersion` they read, so a lease that changed in between
 * answers 409 Conflict instead of being overwritten.
 *
 * Staleness: `renewTime + leaseDurationSeconds` against the API server's clock (the Date of its
 * answer); the holder writes renewTime with its own clock, so clocks must agree to within the
 * renewal slack (NTP), as they must for client-go's leader election. The holder's identity is also
 * kept whole in an annotation, for the refusal message and the takeover audit line.
 */
import type { CoordinationV1Api, V1Lease } from "@kubernetes/client-node";
import { Refusal } from "../engine/errors.ts";
import { holderLine, holderOf, type LockAcquired, type LockHolder, type LockRequest } from "../engine/lock.ts";
import { DEFAULT_LEASE_TIMING, RenewedLock, type LeaseTiming } from "./renewed.ts";

const HOLDER_ANNOTATION = "tradeops.io/holder";

export interface LeaseLocation {
  namespace: string;
  name: string;
  /** kubeconfig context. @default the current context */
  context?: string;
}

export class KubernetesLeaseLock extends RenewedLock {
  readonly where: string;
  private resourceVersion?: string;
  private me?: LockHolder;
  private api?: Promise<CoordinationV1Api>;
  private readonly location: LeaseLocation;

  constructor(location: LeaseLocation, timing: LeaseTiming = DEFAULT_LEASE_TIMING) {
    super(timing);
    this.location = location;
    this.where = `Lease ${location.namespace}/${location.name}${location.context ? ` (context ${location.context})` : ""}`;
  }

  async acquire(request: LockRequest): Promise<LockAcquired> {
    this.me = holderOf(request);
    for (let attempt = 0; attempt < 3; attempt++) {
      const api = await this.coordination();
      try {
        const created = await api.createNamespacedLease({ namespace: this.location.namespace, body: this.lease() });
        return this.held(created, {});
      } catch (error) {
        if (statusOf(error) !== 409) throw error;
      }
      const current = await this.read();
      if (!current) continue; // deleted in between: try again
      if (current.ageMs <= current.durationMs) {
        const expires = new Date(Date.now() + current.durationMs - current.ageMs).toISOString();
        throw new Refusal(
          `stack is locked by ${current.holder ? holderLine(current.holder) : `'${current.lease.spec?.holderIdentity}'`} at ${this.where}`,
          `wait for it to finish (if it stopped renewing, its lease expires at ${expires}); a run that is surely gone: \`tradeops unlock --force --yes\``,
        );
      }
      try {
        const transitions = (current.lease.spec?.leaseTransitions ?? 0) + 1;
        const taken = await api.replaceNamespacedLease({
          name: this.location.name,
          namespace: this.location.namespace,
          body: this.lease(current.lease.metadata?.resourceVersion, transitions),
        });
        return this.held(taken, { tookOverFrom: current.holder });
      } catch (error) {
        if (statusOf(error) !== 409 && statusOf(error) !== 404) throw error;
      }
    }
    throw new Refusal(`could not take the stack lock ${this.where}: it changed hands three times`, "retry in a moment");
  }

  async release(): Promise<void> {
    await this.stopRenewing();
    if (!this.resourceVersion) return;
    const resourceVersion = this.resourceVersion;
    this.resourceVersion = undefined;
    // Preconditions: never delete a lease another run has taken over since.
    await (await this.coordination())
      .deleteNamespacedLease({ name: this.location.name, namespace: this.location.namespace, body: { preconditions: { resourceVersion } } })
      .catch(() => {});
  }

  async holder(): Promise<LockHolder | undefined> {
    return (await this.read())?.holder;
  }

  async breakLock(): Promise<LockHolder | undefined> {
    const current = await this.read();
    if (current) await (await this.coordination()).deleteNamespacedLease({ name: this.location.name, namespace: this.location.namespace });
    return current?.holder;
  }

  private lease(resourceVersion?: string, transitions = 0): V1Lease {
    const now = new Date();
    return {
      apiVersion: "coordination.k8s.io/v1",
      kind: "Lease",
      metadata: {
        name: this.location.name,
        namespace: this.location.namespace,
        resourceVersion,
        annotations: { [HOLDER_ANNOTATION]: JSON.stringify(this.me) },
      },
      spec: {
        holderIdentity: `${this.me!.who}/${this.me!.runbook}/${this.me!.runId}`,
        leaseDurationSeconds: Math.ceil(this.timing.ttlMs / 1000),
        acquireTime: now,
        renewTime: now,
        leaseTransitions: transitions,
      },
    };
  }

  private held(lease: V1Lease, acquired: LockAcquired): LockAcquired {
    this.resourceVersion = lease.metadata?.resourceVersion;
    this.startRenewing();
    return acquired;
  }

  protected async renewOnce(): Promise<true | string> {
    try {
      const renewed = await (await this.coordination()).replaceNamespacedLease({
        name: this.location.name,
        namespace: this.location.namespace,
        body: this.lease(this.resourceVersion),
      });
      this.resourceVersion = renewed.metadata?.resourceVersion;
      return true;
    } catch (error) {
      if (statusOf(error) !== 409 && statusOf(error) !== 404) throw error;
      const now = await this.read().catch(() => undefined);
      return now?.holder ? `another run holds it now: ${holderLine(now.holder)}` : "it was removed (tradeops unlock --force?)";
    }
  }

  protected forget(): void {
    this.resourceVersion = undefined;
  }

  /** The lease as the API server has it, with its age on the server's clock. */
  private async read(): Promise<{ lease: V1Lease; holder?: LockHolder; ageMs: number; durationMs: number } | undefined> {
    try {
      const answer = await (await this.coordination()).readNamespacedLeaseWithHttpInfo({ name: this.location.name, namespace: this.location.namespace });
      const lease = answer.data;
      const serverNow = Date.parse(answer.headers.date ?? "") || Date.now();
      const renewed = lease.spec?.renewTime ? new Date(lease.spec.renewTime).getTime() : 0;
      const annotation = lease.metadata?.annotations?.[HOLDER_ANNOTATION];
      return {
        lease,
        holder: annotation ? (JSON.parse(annotation) as LockHolder) : undefined,
        ageMs: serverNow - renewed,
        durationMs: (lease.spec?.leaseDurationSeconds ?? 0) * 1000,
      };
    } catch (error) {
      if (statusOf(error) === 404) return undefined;
      throw error;
    }
  }

  /** The kubeconfig of the environment (KUBECONFIG or ~/.kube/config), in the stack's context. Loaded on first use. */
  private coordination(): Promise<CoordinationV1Api> {
    this.api ??= import("@kubernetes/client-node").then(({ CoordinationV1Api, KubeConfig }) => {
      const config = new KubeConfig();
      config.loadFromDefault();
      if (this.location.context) config.setCurrentContext(this.location.context);
      return config.makeApiClient(CoordinationV1Api);
    });
    return this.api;
  }
}

function statusOf(error: unknown): number | undefined {
  return (error as { code?: unknown }).code !== undefined && typeof (error as { code: unknown }).code === "number" ? (error as { code: number }).code : undefined;
}
