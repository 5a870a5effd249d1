/**
 * The sandbox's credentials: minted once with node:crypto when a sandbox is first opened, saved to
 * `<dir>/secrets.json` (mode 0600) by the first `up`, and read back by everything after it, so
 * data dirs, clients and outputs agree.
 */
import { randomBytes } from "node:crypto";
import { chmodSync, existsSync, mkdirSync, writeFileSync } from "node:fs";
import { z } from "zod";
import type { SandboxLayout } from "./layout.ts";
import { readStateFile } from "./state-file.ts";

/** s3rver accepts only its built-in key pair (s3rver/lib/models/account.js). */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" } as const;

const secretValue = z.string().min(16);
export const SandboxSecrets = z.object({
  /** The ops role `tradeops` (superuser, scram-sha-256). */
  pgPassword: secretValue,
  /** The `replicator` role pg-b streams as. */
  replicatorPassword: secretValue,
  redisPassword: secretValue,
  opsApiToken: secretValue,
  /** I1: forced kill-switch deactivation. */
  killSwitchAdminKey: secretValue,
});
export type SandboxSecrets = z.infer<typeof SandboxSecrets>;

/** URL-safe, so the values go into postgres:// and redis:// URLs and config files unquoted. */
function mintSecret(): string {
  return randomBytes(24).toString("base64url");
}

export function mintSecrets(): SandboxSecrets {
  return {
    pgPassword: mintSecret(),
    replicatorPassword: mintSecret(),
    redisPassword: mintSecret(),
    opsApiToken: mintSecret(),
    killSwitchAdminKey: mintSecret(),
  };
}

/**
 * The sandbox's secrets, or undefined when it was never brought up. A damaged file throws
 * `SandboxStateFileError`: its data dirs and clients were set up with the lost values, so minting
 * new ones in its place would lock the operator out of their own sandbox.
 */
export function readSecrets(layout: SandboxLayout): SandboxSecrets | undefined {
  return readStateFile(layout.files.secrets, SandboxSecrets, secretsRemedy(layout));
}

export function secretsRemedy(layout: SandboxLayout): string {
  return (
    `restore it from a copy (the databases and Redis use the credentials it held), or delete the sandbox ` +
    `and its data with \`tradeops sandbox down --purge --yes --dir ${layout.dir}\` and run \`sandbox up\` again`
  );
}

/**
 * Persists the secrets `up` runs with (0600), once: an existing file is never overwritten, so the
 * values the data dirs were initialised with are never replaced.
 */
export function saveSecrets(layout: SandboxLayout, secrets: SandboxSecrets): void {
  if (existsSync(layout.files.secrets)) return;
  mkdirSync(layout.dir, { recursive: true, mode: 0o755 });
  writeFileSync(layout.files.secrets, `${JSON.stringify(secrets, null, 2)}\n`, { mode: 0o600, flag: "wx" });
  chmodSync(layout.files.secrets, 0o600);
}
