/**
 * A run that holds the stack lock and keeps renewing it until it is killed: the other process of
 * the lock tests (SIGKILL it to leave a lock nobody renews).
 *
 *   node test/support/hold-lock.ts s3 '<repo json>' <key> <ttlMs> <renewMs>
 *   node test/support/hold-lock.ts lease <namespace> <name> <ttlMs> <renewMs>   (KUBECONFIG from the environment)
 */
import type { StackLock } from "../../runbooks/engine/lock.ts";
import { KubernetesLeaseLock } from "../../runbooks/locks/kubernetes-lease.ts";
import { S3Lock } from "../../runbooks/locks/s3.ts";

const [kind, first, second, ttl, renew] = process.argv.slice(2);
const timing = { ttlMs: Number(ttl), renewMs: Number(renew) };
const lock: StackLock = kind === "s3" ? new S3Lock(JSON.parse(first!), second!, timing) : new KubernetesLeaseLock({ namespace: first!, name: second! }, timing);
await lock.acquire({ runbook: "held-by-child", runId: "00000000-0000-4000-8000-000000000001", who: "child@test" });
process.stdout.write("held\n");
lock.lost.addEventListener("abort", () => process.stdout.write(`lost: ${(lock.lost.reason as Error).message}\n`));
// The lock renews on an unref'd timer (it never keeps a finished run alive): this keeps the child alive.
setInterval(() => {}, 1_000);
