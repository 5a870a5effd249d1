/**
 * What the stack lock costs a run (issue #16): acquire and release of each implementation, over
 * BENCH_ROUNDS rounds (default 50), each against what it talks to in the tests — a file, s3rver over
 * TLS with AWS's conditional-write rules in front (test/support/conditional-s3.ts), and the local
 * Kubernetes API server (test/support/fake-kube-api.ts). Against AWS S3 or a real API server add
 * the round trips of that network: acquire is one conditional PUT, release one conditional DELETE.
 *
 *   npm run bench:locks
 */
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { FileLock, type StackLock } from "../runbooks/engine/lock.ts";
import { table } from "../runbooks/format.ts";
import { KubernetesLeaseLock } from "../runbooks/locks/kubernetes-lease.ts";
import { S3Lock } from "../runbooks/locks/s3.ts";
import { startConditionalS3 } from "../test/support/conditional-s3.ts";
import { startFakeKubeApi } from "../test/support/fake-kube-api.ts";

const rounds = Number(process.env.BENCH_ROUNDS ?? 50);
const dir = mkdtempSync(join(tmpdir(), "tradeops-bench-locks-"));
const s3 = await startConditionalS3(join(dir, "s3"));
const kube = await startFakeKubeApi(dir);
process.env.KUBECONFIG = kube.kubeconfig;

const implementations: Array<[string, () => StackLock]> = [
  ["file (sandbox)", () => new FileLock(join(dir, "stack.lock"))],
  ["S3 conditional writes (s3rver, TLS)", () => new S3Lock(s3.repo, "locks/pgbackrest/trading.json")],
  ["Kubernetes Lease (local API server)", () => new KubernetesLeaseLock({ namespace: "trading", name: "tradeops-stack-lock" })],
];

const ms = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return [sorted[0]!, sorted[Math.floor((sorted.length - 1) / 2)]!, sorted.at(-1)!].map((v) => `${v.toFixed(1)} ms`);
};

const rows: string[][] = [];
try {
  for (const [name, make] of implementations) {
    const acquire: number[] = [];
    const release: number[] = [];
    // One warm-up round: the first request pays the TLS handshake and the SDK's lazy loading.
    for (let round = 0; round <= rounds; round++) {
      const lock = make();
      let started = performance.now();
      await lock.acquire({ runbook: "bench", runId: crypto.randomUUID(), who: "bench@local" });
      const acquired = performance.now() - started;
      started = performance.now();
      await lock.release();
      if (round > 0) acquire.push(acquired), release.push(performance.now() - started);
    }
    rows.push([`${name}: acquire`, String(rounds), ...ms(acquire)]);
    rows.push([`${name}: release`, String(rounds), ...ms(release)]);
  }
} finally {
  await s3.close();
  await kube.close();
  rmSync(dir, { recursive: true, force: true });
}
console.log(table(["STACK LOCK", "N", "MIN", "MEDIAN", "MAX"], rows));
