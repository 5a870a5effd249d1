/**
 * Configuration of the reference ops API, read from the environment (main.ts) or built by tests.
 */
import { z } from "zod";

const secretValue = z.string().min(16, "must be at least 16 characters");

/** The environment the process reads; the keys are the variable names so errors can name them. */
export const OpsApiEnv = z
  .object({
    OPS_API_HOST: z.string().min(1).default("127.0.0.1"),
    /** 0 picks a free port; the real one is in the `listening` log line. */
    OPS_API_PORT: z
      .string()
      .regex(/^\d{1,5}$/, "must be a port number (0-65535)")
      .transform(Number)
      .refine((port) => port <= 65535, "must be a port number (0-65535)"),
    DATABASE_URL: z.url({ protocol: /^postgres(ql)?$/, error: "must be a postgres:// URL" }),
    REDIS_URL: z.url({ protocol: /^rediss?$/, error: "must be a redis:// or rediss:// URL" }),
    OPS_API_TOKEN: secretValue,
    KILL_SWITCH_ADMIN_KEY: secretValue,
    OPS_API_VERSION: z.string().min(1).default("sandbox"),
    /** I4: numbered up/down SQL files; at start the API migrates up (never down) to OPS_API_SCHEMA_VERSION. */
    OPS_API_MIGRATIONS_DIR: z.string().min(1).optional(),
    OPS_API_SCHEMA_VERSION: z.string().regex(/^\d{1,6}$/, "must be a whole number").transform(Number).optional(),
    /** I4: the live model set (files + a VERSION file), read at start and on POST /api/model/reload. */
    OPS_API_MODEL_DIR: z.string().min(1).optional(),
    /** Drills only: `api-500` answers 500 to every /api/* request (a broken release whose readiness stays green). */
    OPS_API_FAULT: z.enum(["none", "api-500"]).default("none"),
  })
  // I1: the admin key is the bypass of last resort; if it equaled the token, any API caller could force-deactivate.
  .refine((env) => env.KILL_SWITCH_ADMIN_KEY !== env.OPS_API_TOKEN, {
    path: ["KILL_SWITCH_ADMIN_KEY"],
    message: "must differ from OPS_API_TOKEN",
  });

export interface OpsApiConfig {
  host: string;
  /** 0 picks a free port. */
  port: number;
  databaseUrl: string;
  redisUrl: string;
  /** Bearer token every `/api/*` request must carry. */
  token: string;
  /** I1: the key that force-deactivates a kill switch without its confirmation code. */
  killSwitchAdminKey: string;
  /** Reported by `/health`. */
  version: string;
  /** Migrate up to `schemaVersion` at start (I4). */
  migrations?: { dir: string; schemaVersion: number };
  /** The live model set's dir (I4). */
  modelDir?: string;
  fault?: "none" | "api-500";
  /** Where JSON log lines go; stdout by default. Tests pass a collector. */
  logSink?: (line: string) => void;
}

export type EnvResult = { ok: true; config: OpsApiConfig } | { ok: false; variables: string[]; message: string };

/** Parses the environment; on failure names every bad variable (never its value, which may be a secret). */
export function configFromEnv(env: NodeJS.ProcessEnv): EnvResult {
  const parsed = OpsApiEnv.safeParse(env, {
    error: (issue) => (issue.input === undefined ? "is required" : undefined),
  });
  if (!parsed.success) {
    const problems = parsed.error.issues.map((issue) => ({ variable: String(issue.path[0]), problem: issue.message }));
    const message = problems.map(({ variable, problem }) => `${variable}: ${problem}`).join("; ");
    return { ok: false, variables: problems.map(({ variable }) => variable), message };
  }
  const values = parsed.data;
  return {
    ok: true,
    config: {
      host: values.OPS_API_HOST,
      port: values.OPS_API_PORT,
      databaseUrl: values.DATABASE_URL,
      redisUrl: values.REDIS_URL,
      token: values.OPS_API_TOKEN,
      killSwitchAdminKey: values.KILL_SWITCH_ADMIN_KEY,
      version: values.OPS_API_VERSION,
      migrations: values.OPS_API_MIGRATIONS_DIR && values.OPS_API_SCHEMA_VERSION !== undefined ? { dir: values.OPS_API_MIGRATIONS_DIR, schemaVersion: values.OPS_API_SCHEMA_VERSION } : undefined,
      modelDir: values.OPS_API_MODEL_DIR,
      fault: values.OPS_API_FAULT,
    },
  };
}
