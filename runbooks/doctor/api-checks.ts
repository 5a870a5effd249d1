/**
 * The trading API's scenarios of the troubleshooting seed (T2, S9, C6): it does not start (port in
 * use, missing env, DB refused, OOM), its dependencies, the circuit breaker, latency, 429s, 401s,
 * memory — and the signals the sandbox's bot does not have (exchange, websocket, CORS).
 */
import { httpRequest } from "../../clients/http.ts";
import { opsApiRequest, parseAnswer } from "../../clients/ops-api.ts";
import { CIRCUIT_BREAKER_RESET_TIMEOUT_S, CircuitBreakerStatus, LivenessReport, ReadyReport } from "../../contract/ops-api.ts";
import { oneLine } from "../engine/errors.ts";
import { bytes } from "../format.ts";
import { NotAvailable } from "../platform/host.ts";
import { type DoctorCheck, type Finding, type Reach, fail, findingOfError, notAvailable, ok, warn } from "./check.ts";
import type { Metrics } from "./metrics.ts";

const apiPort = (reach: Reach) => {
  const url = new URL(reach.outputs.opsApi.url);
  return Number(url.port || (url.protocol === "https:" ? 443 : 80));
};
const RESTART = "`tradeops sandbox up` (sandbox) or restart the API container/deployment, then `tradeops doctor --only api`";

/** T2 "API won't start": answer on /health, else find out why from the port's holder and the API's last start in its log. */
export const apiStarts: DoctorCheck = {
  name: "api",
  features: ["T2", "S9", "Z1"],
  async run(reach) {
    const url = new URL("/health", reach.outputs.opsApi.url);
    const answer = await httpRequest(url, { signal: reach.signal, timeoutMs: reach.timeoutMs }).catch((error: unknown) => error as Error);
    if (!(answer instanceof Error) && answer.status === 200 && LivenessReport.safeParse(answer.body).success) {
      const live = LivenessReport.parse(answer.body);
      return ok(`answers /health: version ${live.version}, up ${live.uptime_s} s`);
    }
    const port = apiPort(reach);
    const holder = await reach.host.listenerOn(port).catch((error: unknown) => (error instanceof NotAvailable ? undefined : Promise.reject(error)));
    if (holder) {
      const what = answer instanceof Error ? "does not answer HTTP" : `answers /health with ${answer.status}, not as the API`;
      return fail(
        `port ${port} ${what}`,
        `port ${port} is in use by another process: pid ${holder.pid} (${holder.command})`,
        `stop pid ${holder.pid} (\`kill ${holder.pid}\`) or move the API to a free port, then ${RESTART}`,
      );
    }
    const why = await lastStartFailure(reach);
    return fail(`nothing answers on ${url.host}${answer instanceof Error ? ` (${oneLine(answer)})` : ""}`, why.cause, why.fix);
  },
};

/** The reason the API's last start gave in its log, as the seed's scenarios name them. */
async function lastStartFailure(reach: Reach): Promise<{ cause: string; fix: string }> {
  const component = (await reach.logs.components()).find((c) => c === "ops-api" || c === "api");
  const lines = component ? await reach.logs.read(component, { maxBytes: 256 * 1024, signal: reach.signal }).catch(() => []) : [];
  const starts = lines.map((line, i) => (/"msg":"starting"|invalid environment/.test(line) ? i : -1));
  const lastStart = Math.max(-1, ...starts);
  const attempt = lastStart >= 0 ? lines.slice(lastStart) : lines.slice(-50);
  const text = attempt.join("\n");
  const where = component ? reach.logs.where(component) : "the API's log";
  const missing = /invalid environment: ([^"]*)/.exec(text)?.[1] ?? /\b([A-Z][A-Z0-9_]{2,})\b[^\n]{0,40}\b(is required|not set|is missing|must be set)/.exec(text)?.[0];
  if (missing) {
    const names = [...missing.matchAll(/\b([A-Z][A-Z0-9_]{2,}): is required/g)].map((m) => m[1]);
    return {
      cause: names.length ? `missing required env ${names.join(", ")} (${where})` : `bad environment: ${missing} (${where})`,
      fix: `set ${names.length ? names.join(", ") : "the variable"} in the API's env file / secret, then ${RESTART}`,
    };
  }
  if (/EADDRINUSE/.test(text)) return { cause: `port in use when it started (${where}); the holder has gone since`, fix: RESTART };
  if (/heap out of memory|OOMKilled|Killed/i.test(text)) return { cause: `out of memory (${where})`, fix: "raise the memory limit (Z7: 2 GiB) or find the growth with `tradeops doctor --only memory`" };
  if (/ECONNREFUSED/.test(text) && /database|postgres/i.test(text)) return { cause: `the database refused its connections at start (${where})`, fix: "`tradeops health`: the primary and the traffic endpoint must be up" };
  return { cause: `the API process is not running and its log gives no reason (${where}); killed (OOM?) or stopped`, fix: RESTART };
}

/** Z1: the API's own view of PostgreSQL and Redis. */
export const apiDependencies: DoctorCheck = {
  name: "api-dependencies",
  features: ["Z1", "S9"],
  async run(reach) {
    const answer = await httpRequest(new URL("/health/ready", reach.outputs.opsApi.url), { signal: reach.signal, timeoutMs: reach.timeoutMs }).catch(() => undefined);
    const report = answer && ReadyReport.safeParse(answer.body);
    if (!report?.success) return notAvailable("the API does not answer /health/ready: see check api");
    const sick = Object.entries(report.data.components).filter(([, c]) => c.status !== "healthy") as [string, { error?: string }][];
    if (!sick.length) return ok("the API sees its database and Redis healthy");
    const [name, component] = sick[0]!;
    return fail(
      `the API reports ${sick.map(([n, c]) => `${n} unhealthy (${c.error ?? "?"})`).join("; ")}`,
      /recovery|read-only/i.test(component.error ?? "")
        ? "the traffic endpoint reaches a standby: writes fail"
        : `the API cannot use its ${name === "database" ? "database (DB refused or pool exhausted)" : "Redis"}`,
      name === "database" ? "`tradeops doctor --only db-connections,replication`; `tradeops health`" : "`tradeops doctor --only redis`",
    );
  },
};

/** T2, I2: Closed / Open / HalfOpen, with the time it half-opens (30 s reset). */
export const circuitBreaker: DoctorCheck = {
  name: "circuit-breaker",
  features: ["T2", "I2"],
  async run(reach) {
    const path = "/api/circuit-breaker/status";
    try {
      const answer = await opsApiRequest(reach.outputs.opsApi, path, { signal: reach.signal, timeoutMs: reach.timeoutMs });
      if (answer.status !== 200) return fail(`${path} answered ${answer.status}`, answer.status === 401 ? "the stack's API token is refused" : "the API cannot read the breaker (Redis?)", "`tradeops doctor --only redis,api`");
      const status = parseAnswer(path, answer, CircuitBreakerStatus);
      if (status.state === "CLOSED") return ok(`CLOSED (${status.failures} trips since the last reset)`);
      const openedAt = status.opened_at ? new Date(status.opened_at) : undefined;
      const halfOpenAt = openedAt ? new Date(openedAt.getTime() + CIRCUIT_BREAKER_RESET_TIMEOUT_S * 1000).toISOString() : "?";
      const saw = `${status.state} since ${status.opened_at ?? "?"}${status.reason ? ` (reason: ${status.reason})` : ""}; ${status.failures} trips`;
      const fix = `find the failing calls: \`tradeops logs --errors --since 15m\`; once fixed, POST ${path.replace("status", "reset")}`;
      if (status.state === "HALF_OPEN") return warn(saw, "the breaker is letting a trial request through after its 30 s reset timeout", fix);
      return fail(saw, `the breaker tripped after repeated failures: the bot stops calling out until it half-opens at ${halfOpenAt}`, fix);
    } catch (error) {
      return findingOfError(error, "the ops API", "`tradeops doctor --only api`");
    }
  },
};

const SLOW_P95_S = 1; // T2: slow API is > 1 s
const WARN_P95_S = 0.5; // S4: p95 < 500 ms

/** T2 slow API: p95 per route from the API's own histogram. */
export const apiLatency: DoctorCheck = {
  name: "api-latency",
  features: ["T2", "T3", "S4"],
  run: (reach) =>
    onMetrics(reach, (metrics) => {
      const p95 = [...metrics.quantileBy("http_request_duration_seconds", "route", 0.95)].filter(([route]) => route !== "unmatched").sort((a, b) => b[1].seconds - a[1].seconds);
      if (!p95.length) return ok("no request served yet");
      const [route, worst] = p95[0]!;
      const saw = `p95 ${route} ${worst.seconds.toFixed(3)} s over ${worst.count} requests since the API started`;
      const fix = "`tradeops doctor --only slow-statements,db-connections,cache-hits`; `tradeops maintenance slow-queries`";
      if (worst.seconds > SLOW_P95_S) return fail(saw, "requests wait on the database (slow statements, locks, an exhausted pool) or on the exchange", fix);
      if (worst.seconds > WARN_P95_S) return warn(saw, "above the S4 target of 500 ms", fix);
      return ok(saw);
    }),
};

/** `use` on the API's metrics; no metrics is "not available" here (check api says why the API is silent). */
async function onMetrics(reach: Reach, use: (metrics: Metrics) => Finding | Promise<Finding>): Promise<Finding> {
  const metrics = await reach.metrics().catch((error: unknown) => error as Error);
  if (metrics instanceof Error) return notAvailable(`no metrics from the API: ${oneLine(metrics)}`);
  return use(metrics);
}

/** Requests answered with `status` since the API started, against all requests. */
function statusCount(metrics: Metrics, status: string) {
  const counts = metrics.select("http_request_duration_seconds_count");
  const total = counts.reduce((sum, s) => sum + s.value, 0);
  const hits = counts.filter((s) => s.labels.status === status).reduce((sum, s) => sum + s.value, 0);
  return { total, hits };
}

/** T2: 429 answers (the Retry-After header is not in the metrics). */
export const rateLimits: DoctorCheck = {
  name: "rate-limits",
  features: ["T2"],
  run: (reach) =>
    onMetrics(reach, (metrics) => {
      const counts = statusCount(metrics, "429");
      if (!counts.hits) return ok(`no 429 among ${counts.total} requests since the API started`);
      return warn(
        `${counts.hits} of ${counts.total} requests answered 429 since the API started`,
        "clients exceed the rate limit (their Retry-After is in the response headers, not in the metrics)",
        "`tradeops logs --rate-limits --since 1h`: find the caller; slow it down or raise its limit",
      );
    }),
};

/** T2: 401 spikes — a JWT secret that differs between issuer and API, or expired tokens. */
export const authFailures: DoctorCheck = {
  name: "auth-failures",
  features: ["T2"],
  run: (reach) =>
    onMetrics(reach, (metrics) => {
      const counts = statusCount(metrics, "401");
      const share = counts.total ? counts.hits / counts.total : 0;
      const saw = `${counts.hits} of ${counts.total} requests answered 401 since the API started`;
      if (counts.hits >= 10 && share > 0.1) {
        return warn(saw, "callers hold a token signed with another secret (JWT secret rotated on one side) or an expired one", "compare the secret of the token issuer and the API; `tradeops logs --grep 401`");
      }
      return ok(saw);
    }),
};

const MEMORY_LIMIT_BYTES = 2 * 1024 ** 3; // Z7: vertical limit 2 GiB

/** T2, T3, C6: resident memory against the 2 GiB limit, and OOM kills. */
export const memory: DoctorCheck = {
  name: "memory",
  features: ["T2", "T3", "C6", "Z7"],
  run: (reach) =>
    onMetrics(reach, async (metrics) => {
      const rss = metrics.value("process_resident_memory_bytes");
      if (rss === undefined) return notAvailable("the API exports no process_resident_memory_bytes");
      const holder = await reach.host.listenerOn(apiPort(reach)).catch(() => undefined);
      let kills: number | string = "?";
      try {
        kills = holder ? reach.host.oomKills(holder.pid) : "?";
      } catch (error) {
        kills = `n/a: ${oneLine(error)}`;
      }
      const saw = `API resident memory ${bytes(rss)} of the ${bytes(MEMORY_LIMIT_BYTES)} limit; OOM kills in its cgroup: ${kills}`;
      if (typeof kills === "number" && kills > 0) return fail(saw, "the kernel killed processes of the API's group for memory", "raise the limit or find the leak (`tradeops logs --since 1h --summary`)");
      if (rss > 0.8 * MEMORY_LIMIT_BYTES) return warn(saw, "close to the 2 GiB limit: the next spike is an OOM kill", "restart the API off-peak, look for growth over time");
      return ok(saw);
    }),
};

/** Scenarios whose signal the sandbox's bot does not have: said so, never passed. */
export const exchange: DoctorCheck = {
  name: "exchange",
  features: ["T2"],
  async run(reach) {
    const answer = await httpRequest(new URL("/health/ready", reach.outputs.opsApi.url), { signal: reach.signal, timeoutMs: reach.timeoutMs }).catch(() => undefined);
    const report = answer && ReadyReport.safeParse(answer.body);
    if (report?.success && report.data.components.exchange.mode === "simulated") {
      return notAvailable("the bot trades a simulated exchange: no connection errors to classify (bad key, IP allow-list, permissions, testnet mismatch)");
    }
    return notAvailable("the API reports no exchange connection state");
  },
};

export const websocket: DoctorCheck = {
  name: "websocket",
  features: ["T2"],
  run: async () => notAvailable("the API serves no websocket and exports no disconnect count (ping 30 s, proxy timeouts)"),
};

export const cors: DoctorCheck = {
  name: "cors",
  features: ["T2"],
  run: async () => notAvailable("the stack outputs name no CORS origins to compare with the front end's"),
};
