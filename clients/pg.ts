/**
 * PostgreSQL sessions for runbooks and the sandbox: one connection per use, always closed, under a
 * deadline (clients/deadline.ts). A hung server costs the deadline, never the process.
 */
import type { Socket } from "node:net";
import type pg from "pg";
import { withDeadline, type CallOptions } from "./deadline.ts";

export interface PgTarget {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Connect + SCRAM auth answers in milliseconds here; a server that takes longer is not healthy. */
export const PG_CONNECT_TIMEOUT_MS = 3_000;
/** The whole session (connect, every query, close) unless the caller says otherwise. */
export const PG_SESSION_TIMEOUT_MS = 10_000;
/** A clean goodbye (Terminate) gets this long before the socket is destroyed. */
const GOODBYE_MS = 500;

export interface PgCallOptions extends CallOptions {
  /** Server-side `statement_timeout` of the session. @default the session's deadline */
  statementTimeoutMs?: number;
  applicationName?: string;
}

/** Opens a session to `target`, runs `use`, always closes it, all within the deadline. */
export async function withPg<T>(target: PgTarget, use: (client: pg.Client) => Promise<T>, options: PgCallOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? PG_SESSION_TIMEOUT_MS;
  // Loaded on first use: `tradeops --help` and plans never pay for the driver.
  const { default: driver } = await import("pg");
  const client = new driver.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database: target.database,
    application_name: options.applicationName ?? "tradeops",
    statement_timeout: options.statementTimeoutMs ?? timeoutMs,
  });
  // A server dying mid-session emits 'error' on the client; the pending query rejects anyway.
  client.on("error", () => {});
  const destroy = () => socketOf(client)?.destroy();
  // A hung server accepts the TCP connection (the kernel does) and never answers the startup
  // packet: the connect gets its own, shorter deadline, so "no answer within 3 s" names it.
  const connectTimeoutMs = Math.min(PG_CONNECT_TIMEOUT_MS, timeoutMs);
  try {
    return await withDeadline(
      { ...options, timeoutMs },
      async (signal) => {
        await withDeadline({ signal, timeoutMs: connectTimeoutMs }, () => client.connect(), destroy);
        return use(client);
      },
      destroy,
    );
  } finally {
    await goodbye(client, destroy);
  }
}

/** Terminate politely (no "unexpected EOF" in the server log), but never wait on a hung server. */
async function goodbye(client: pg.Client, destroy: () => void): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([client.end().catch(() => {}), new Promise((done) => (timer = setTimeout(done, GOODBYE_MS)))]);
  clearTimeout(timer);
  destroy();
}

function socketOf(client: pg.Client): Socket | undefined {
  return (client as unknown as { connection?: { stream?: Socket } }).connection?.stream;
}
