/**
 * Readiness (Z1): probe each dependency under a hard time limit, so a dead or frozen PostgreSQL or
 * Redis turns into a prompt 503 naming it, never a hanging probe.
 */
import { performance } from "node:perf_hooks";
import { errorMessage } from "./log.ts";
import type { ProbedComponent, ReadyReport } from "../../contract/ops-api.ts";

// The seed's health script gives the whole check 5 s (`curl --max-time 5`); both probes run in parallel well within it.
const PROBE_TIMEOUT_MS = 1_000;

export interface ReadinessProbes {
  database(): Promise<void>;
  redis(): Promise<void>;
}

export async function readinessReport(probes: ReadinessProbes): Promise<ReadyReport> {
  const [database, redis] = await Promise.all([probe(probes.database), probe(probes.redis)]);
  const healthy = database.status === "healthy" && redis.status === "healthy";
  return {
    status: healthy ? "healthy" : "unhealthy",
    timestamp: new Date().toISOString(),
    components: { database, redis, exchange: { status: "healthy", mode: "simulated" } },
  };
}

async function probe(check: () => Promise<void>): Promise<ProbedComponent> {
  const started = performance.now();
  const latency = () => Math.round((performance.now() - started) * 100) / 100;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${PROBE_TIMEOUT_MS} ms`)), PROBE_TIMEOUT_MS);
  });
  try {
    await Promise.race([check(), deadline]);
    return { status: "healthy", latency_ms: latency() };
  } catch (error) {
    return { status: "unhealthy", latency_ms: latency(), error: errorMessage(error) };
  } finally {
    clearTimeout(timer);
  }
}
