/**
 * The S3 client for the backup repository (runbooks, the sandbox, tests): TLS with the stack's CA
 * file where it has one, no retries, and request timeouts that really end the request
 * (`throwOnRequestTimeout`) instead of the SDK's warning and a wait of minutes.
 */
import { readFileSync } from "node:fs";
import { Agent } from "node:https";
import type { S3Client } from "@aws-sdk/client-s3";
import type { BackupRepository } from "../contract/outputs.ts";

export const S3_CONNECT_TIMEOUT_MS = 3_000;
export const S3_REQUEST_TIMEOUT_MS = 10_000;

export type S3Target = Pick<BackupRepository, "endpoint" | "port" | "region" | "uriStyle" | "accessKeyId" | "secretAccessKey" | "caFile">;

/**
 * Callers `destroy()` it when done: its sockets would otherwise keep the process alive. The SDK is
 * loaded on first use (150 ms that `tradeops --help` and plans never pay).
 */
export async function s3Client(repo: S3Target, options: { requestTimeoutMs?: number } = {}): Promise<S3Client> {
  const { S3Client: Client } = await import("@aws-sdk/client-s3");
  const httpsAgent = new Agent({ ca: repo.caFile ? readFileSync(repo.caFile) : undefined, keepAlive: false });
  return new Client({
    region: repo.region,
    endpoint: `https://${repo.endpoint}:${repo.port}`,
    forcePathStyle: repo.uriStyle === "path",
    credentials: { accessKeyId: repo.accessKeyId, secretAccessKey: repo.secretAccessKey },
    requestHandler: {
      httpsAgent,
      connectionTimeout: S3_CONNECT_TIMEOUT_MS,
      requestTimeout: options.requestTimeoutMs ?? S3_REQUEST_TIMEOUT_MS,
      throwOnRequestTimeout: true,
    },
    maxAttempts: 1,
  });
}
