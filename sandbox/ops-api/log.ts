/**
 * JSON-lines logging (Z2): one `{"time","level","msg",...}` object per line, secrets redacted.
 */

export type LogLevel = "info" | "warn" | "error";
export type LogFields = Record<string, unknown>;

export interface Logger {
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
}

const REDACTED = "***";

const writeToStdout = (line: string): void => {
  process.stdout.write(`${line}\n`);
};

/**
 * A logger that replaces every occurrence of `secrets` in the serialized line, as a net under the
 * rule that code never logs them: a driver's error message quoting a connection string would
 * otherwise leak its password (Z3, T2: secrets never logged).
 */
export function createLogger(secrets: readonly string[], sink: (line: string) => void = writeToStdout): Logger {
  // The raw, JSON-escaped and URL-encoded spellings: all three can end up in a serialized line.
  const spellings = secrets
    .filter((secret) => secret.length > 0)
    .flatMap((secret) => [secret, JSON.stringify(secret).slice(1, -1), encodeURIComponent(secret)]);
  const redactable = [...new Set(spellings)];
  const emit = (level: LogLevel, msg: string, fields: LogFields = {}): void => {
    let line = JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields });
    for (const secret of redactable) line = line.split(secret).join(REDACTED);
    sink(line);
  };
  return {
    info: (msg, fields) => emit("info", msg, fields),
    warn: (msg, fields) => emit("warn", msg, fields),
    error: (msg, fields) => emit("error", msg, fields),
  };
}

/** `postgres://ops:s3cret@host/db` → `postgres://ops:***@host/db`; unparsable input is fully masked. */
export function maskUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = REDACTED;
    return parsed.toString();
  } catch {
    return REDACTED;
  }
}

/** The password inside a connection URL, so the logger can redact it wherever it shows up. */
export function urlPassword(url: string): string {
  try {
    return decodeURIComponent(new URL(url).password);
  } catch {
    return "";
  }
}

/** An error's message without its stack: log lines stay one line and readable. */
export function errorMessage(error: unknown): string {
  if (error instanceof AggregateError && error.errors.length > 0) return errorMessage(error.errors[0]);
  if (error instanceof Error) return error.message || error.name;
  return String(error);
}
