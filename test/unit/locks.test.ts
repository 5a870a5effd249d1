/**
 * One runbook at a time per cluster, for every operator (issue #16): the S3 lock against a store
 * that honours conditional writes, and the Kubernetes Lease lock against an API server with its
 * concurrency rules — both over HTTP, through the same clients users run.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { Refusal } from "../../runbooks/engine/errors.ts";
import type { LockRequest, StackLock } from "../../runbooks/engine/lock.ts";
import { KubernetesLeaseLock } from "../../runbooks/locks/kubernetes-lease.ts";
import type { LeaseTiming } from "../../runbooks/locks/renewed.ts";
import { S3Lock } from "../../runbooks/locks/s3.ts";
import { startConditionalS3, type ConditionalS3 } from "../support/conditional-s3.ts";
import { startFakeKubeApi, type FakeKubeApi } from "../support/fake-kube-api.ts";

const dir = mkdtempSync(join(tmpdir(), "tradeops-locks-"));
let s3: ConditionalS3;
let kube: FakeKubeApi;
const children: ChildProcess[] = [];

beforeAll(async () => {
  s3 = await startConditionalS3(join(dir, "s3"));
  kube = await startFakeKubeApi(dir);
  process.env.KUBECONFIG = kube.kubeconfig;
});
afterAll(async () => {
  for (const child of children) child.kill("SIGKILL");
  await s3?.close();
  await kube?.close();
  rmSync(dir, { recursive: true, force: true });
});

const S3_KEY = "locks/pgbackrest/trading.json";
const LEASE = { namespace: "trading", name: "tradeops-stack-lock" };

/** Each implementation, and the arguments of test/support/hold-lock.ts for it. */
const implementations: Array<{ name: string; make(timing?: LeaseTiming): StackLock; holdArgs(timing: LeaseTiming): string[] }> = [
  {
    name: "S3 conditional writes",
    make: (timing) => new S3Lock(s3.repo, S3_KEY, timing),
    holdArgs: (timing) => ["s3", JSON.stringify(s3.repo), S3_KEY, String(timing.ttlMs), String(timing.renewMs)],
  },
  {
    name: "Kubernetes Lease",
    make: (timing) => new KubernetesLeaseLock(LEASE, timing),
    holdArgs: (timing) => ["lease", LEASE.namespace, LEASE.name, String(timing.ttlMs), String(timing.renewMs)],
  },
];

const request = (runbook: string): LockRequest => ({ runbook, runId: crypto.randomUUID(), who: `${runbook}@test` });

/** A process holding the lock (renewing) until killed; resolves once it holds it. */
function holder(args: string[]): Promise<ChildProcess> {
  return new Promise((resolveHeld, fail) => {
    const child = spawn(process.execPath, [resolve(import.meta.dirname, "../support/hold-lock.ts"), ...args], { stdio: ["ignore", "pipe", "inherit"] });
    children.push(child);
    child.stdout!.on("data", (chunk: Buffer) => chunk.toString().includes("held") && resolveHeld(child));
    child.once("exit", (code) => fail(new Error(`hold-lock exited ${code} before holding the lock`)));
  });
}

for (const implementation of implementations) {
  describe(`stack lock: ${implementation.name} (#16)`, () => {
    it("two concurrent acquirers: exactly one wins, every time across 100 tries; the other is refused naming the winner", async () => {
      for (let i = 0; i < 100; i++) {
        const [a, b] = [implementation.make(), implementation.make()];
        const results = await Promise.allSettled([a.acquire(request("first")), b.acquire(request("second"))]);
        const won = results.filter((r) => r.status === "fulfilled");
        expect(won, `try ${i}`).toHaveLength(1);
        const refused = results.find((r) => r.status === "rejected") as PromiseRejectedResult;
        expect(refused.reason).toBeInstanceOf(Refusal);
        expect((refused.reason as Error).message).toMatch(/^stack is locked by runbook '(first|second)'/);
        await (results[0]!.status === "fulfilled" ? a : b).release();
        expect(await a.holder()).toBeUndefined();
      }
    }, 120_000);

    it("a holder killed with SIGKILL is taken over after the TTL, not before, and the takeover names it", async () => {
      const timing = { ttlMs: 2_000, renewMs: 400 };
      const child = await holder(implementation.holdArgs(timing));
      await sleep(900); // a renewal or two happened
      child.kill("SIGKILL");
      const killedAt = performance.now();
      await expect(implementation.make(timing).acquire(request("too-early"))).rejects.toThrow(/^stack is locked by runbook 'held-by-child' \(pid \d+/);
      // Past the TTL (plus the store's one-second clock) counted from the last renewal.
      await sleep(Math.max(0, timing.ttlMs + 1_300 - (performance.now() - killedAt)));
      const taker = implementation.make(timing);
      const acquired = await taker.acquire(request("taker"));
      expect(acquired.tookOverFrom).toMatchObject({ runbook: "held-by-child", pid: child.pid });
      expect(await taker.holder()).toMatchObject({ runbook: "taker" });
      await taker.release();
    }, 30_000);

    it("renewals keep a long run's lock past many TTLs; it is free the moment it is released", async () => {
      const timing = { ttlMs: 1_500, renewMs: 300 };
      const longRun = implementation.make(timing);
      await longRun.acquire(request("long-run"));
      for (let t = 0; t < 8; t++) {
        await sleep(500);
        await expect(implementation.make(timing).acquire(request("intruder"))).rejects.toThrow(/locked by runbook 'long-run'/);
      }
      expect(longRun.lost.aborted).toBe(false);
      await longRun.release();
      const next = implementation.make(timing);
      expect(await next.acquire(request("next"))).toEqual({});
      await next.release();
    }, 30_000);

    it("a release racing a renewal in flight leaves the lock free, every time across 40 tries", async () => {
      for (let i = 0; i < 40; i++) {
        const run = implementation.make({ ttlMs: 2_000, renewMs: 5 });
        await run.acquire(request("racing"));
        await sleep(i % 10);
        await run.release();
        expect(await implementation.make().holder(), `try ${i}`).toBeUndefined();
        expect(run.lost.aborted).toBe(false);
      }
    }, 60_000);

    it("a holder whose lock was removed (unlock --force) learns it at its next renewal", async () => {
      const timing = { ttlMs: 3_000, renewMs: 300 };
      const run = implementation.make(timing);
      await run.acquire(request("victim"));
      expect(await implementation.make().breakLock()).toMatchObject({ runbook: "victim" });
      await sleep(800);
      expect(run.lost.aborted).toBe(true);
      expect((run.lost.reason as Error).message).toMatch(/lost the stack lock .*: it was removed/);
      await run.release();
    }, 10_000);
  });
}

describe("the Lease as Kubernetes stores it", () => {
  it("names its holder, duration and renewal in the Lease spec", async () => {
    const lock = new KubernetesLeaseLock(LEASE);
    await lock.acquire(request("spec-check"));
    const stored = kube.leases.get(`${LEASE.namespace}/${LEASE.name}`)!;
    expect(stored.spec).toMatchObject({ holderIdentity: expect.stringMatching(/^spec-check@test\/spec-check\//), leaseDurationSeconds: 60 });
    expect(JSON.parse(stored.metadata.annotations!["tradeops.io/holder"]!)).toMatchObject({ runbook: "spec-check", pid: process.pid });
    await lock.release();
    expect(kube.leases.size).toBe(0);
  });
});
