/**
 * What one doctor check is (T1: symptom → cause → fix) and what it reaches. A check reads live
 * signals only; it never changes anything. It answers with a finding: ok / warn / fail / n/a, what
 * it saw, the likely cause and the fix or the `tradeops` command to run.
 */
import type { Redis } from "ioredis";
import type pg from "pg";
import { NoAnswer } from "../../clients/deadline.ts";
import type { StackOutputs } from "../../contract/outputs.ts";
import { onPg, onRedis } from "../connect.ts";
import { oneLine } from "../engine/errors.ts";
import type { HostSignals } from "../platform/host.ts";
import { NotAvailable } from "../platform/host.ts";
import type { LogSource } from "../platform/logs.ts";
import type { Metrics } from "./metrics.ts";

export type Verdict = "ok" | "warn" | "fail" | "n/a";

export interface Finding {
  status: Verdict;
  /** What the check saw, with numbers: "97 of 100 connections in use". */
  saw: string;
  /** The likely cause, when not ok. */
  cause?: string;
  /** The fix, or the `tradeops` command to run. */
  fix?: string;
}

/** What every check reaches, under one deadline per check. */
export interface Reach {
  outputs: StackOutputs;
  signal: AbortSignal;
  timeoutMs: number;
  pg<T>(endpoint: { host: string; port: number }, use: (client: pg.Client) => Promise<T>): Promise<T>;
  redis<T>(use: (redis: Redis) => Promise<T>): Promise<T>;
  /** One scrape of the ops API's /metrics, shared by every check of the run. */
  metrics(): Promise<Metrics>;
  host: HostSignals;
  logs: LogSource;
}

export const DOCTOR_APPLICATION_NAME = "tradeops-doctor";

/** The backups check reads pgBackRest's repository and the bucket's listings. */
export const BACKUPS_CHECK_TIMEOUT_MS = 5_000;

export interface DoctorCheck {
  /** `--only` name: "redis", "db-connections". */
  name: string;
  /** Feature IDs of the seed scenario it recognises. */
  features: string[];
  run(reach: Reach): Promise<Finding>;
  /** A check that reads the backup repository gets longer than the default. */
  timeoutMs?: number;
}

export const ok = (saw: string): Finding => ({ status: "ok", saw });
export const warn = (saw: string, cause: string, fix: string): Finding => ({ status: "warn", saw, cause, fix });
export const fail = (saw: string, cause: string, fix: string): Finding => ({ status: "fail", saw, cause, fix });
export const notAvailable = (why: string): Finding => ({ status: "n/a", saw: `not available (${why})` });

/** A session on one endpoint, or a Redis connection, that a check's deadline and the run's signal bound. */
export function reachFor(outputs: StackOutputs, signal: AbortSignal, timeoutMs: number, shared: Pick<Reach, "metrics" | "host" | "logs">): Reach {
  return {
    outputs,
    signal,
    timeoutMs,
    // Named, so the connection check can tell the doctor's own sessions from the application's.
    pg: (endpoint, use) => onPg(outputs, endpoint, use, { signal, timeoutMs, applicationName: DOCTOR_APPLICATION_NAME }),
    redis: (use) => onRedis(outputs, use, { signal, timeoutMs, connectTimeoutMs: timeoutMs }),
    ...shared,
  };
}

/**
 * A check that threw: a missing signal is "not available"; anything else is a failure whose cause
 * is read from the error (the seed's usual suspects), never a stack trace.
 */
export function findingOfError(error: unknown, component: string, fix: string): Finding {
  if (error instanceof NotAvailable) return notAvailable(error.message);
  const message = oneLine(error);
  return fail(`${component}: ${message}`, causeOf(error, component), fix);
}

function causeOf(error: unknown, component: string): string {
  const message = oneLine(error);
  if (error instanceof NoAnswer) return `${component} accepts connections but does not answer (hung, overloaded or stopped with SIGSTOP)`;
  if (/too many clients|remaining connection slots/i.test(message)) return "connection pool exhausted: every PostgreSQL connection slot is taken";
  if (/ECONNREFUSED|connect.*refused/i.test(message)) return `${component} is not running: nothing listens on its port`;
  if (/password authentication failed|WRONGPASS|NOAUTH|invalid password/i.test(message)) return `${component} refuses the stack's credentials (password changed or wrong secret)`;
  if (/ENOTFOUND|EAI_AGAIN/i.test(message)) return `${component}'s host name does not resolve`;
  if (/ETIMEDOUT|EHOSTUNREACH/i.test(message)) return `${component} is unreachable on the network (firewall, security group, wrong host)`;
  return `${component} failed: ${message}`;
}
