/**
 * An S3 store that honours conditional writes, for the S3 lock's tests: s3rver (the sandbox's own
 * S3 store, real S3 protocol: SigV4, XML errors, ETags) over TLS, with the semantics of AWS S3's
 * conditional requests added in front of it, since s3rver 3.7 ignores them:
 *
 *   PUT    If-None-Match: *      412 PreconditionFailed when the key exists
 *   PUT    If-Match: <etag>      412 when the ETag differs, 404 NoSuchKey when the key is gone
 *   DELETE If-Match: <etag>      the same
 *
 * Requests on one key are serialised (a read is buffered whole before the next write), so racing
 * writers see exactly what they see at AWS — one 200, one 412 — and a read never sees a half
 * replaced object (s3rver streams the file a concurrent PUT is rewriting, and the socket breaks).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { join } from "node:path";
import type { BackupRepository } from "../../contract/outputs.ts";

export interface ConditionalS3 {
  repo: BackupRepository;
  close(): Promise<void>;
}

interface KoaContext {
  method: string;
  path: string;
  query: Record<string, string>;
  get(header: string): string;
  req: AsyncIterable<unknown>;
  status: number;
  type: string;
  body: unknown;
  store: { getMetadata(bucket: string, key: string): Promise<{ etag?: string } | undefined>; existsObject(bucket: string, key: string): Promise<boolean> };
}

export async function startConditionalS3(dir: string, bucket = "tradeops-backups"): Promise<ConditionalS3> {
  mkdirSync(join(dir, "data"), { recursive: true });
  const cert = join(dir, "cert.pem");
  const key = join(dir, "key.pem");
  execFileSync("openssl", ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "1", "-subj", "/CN=localhost", "-addext", "subjectAltName=DNS:localhost", "-keyout", key, "-out", cert], { stdio: "ignore" });
  const S3rver = createRequire(import.meta.url)("s3rver") as new (options: Record<string, unknown>) => {
    middleware: Array<(ctx: KoaContext, next: () => Promise<void>) => Promise<void>>;
    run(): Promise<{ port: number }>;
    close(): Promise<void>;
  };
  const { readFileSync } = await import("node:fs");
  const server = new S3rver({
    address: "127.0.0.1",
    port: 0,
    silent: true,
    directory: join(dir, "data"),
    key: readFileSync(key),
    cert: readFileSync(cert),
    vhostBuckets: false,
    configureBuckets: [{ name: bucket }],
  });
  server.middleware.unshift(conditionalRequests());
  const { port } = await server.run();
  return {
    repo: {
      type: "s3",
      endpoint: "localhost",
      port,
      region: "us-east-1",
      bucket,
      prefix: "/pgbackrest",
      uriStyle: "path",
      accessKeyId: "S3RVER",
      secretAccessKey: "S3RVER",
      caFile: cert,
      stanza: "trading",
    },
    close: () => server.close(),
  };
}

/** One promise chain per key: a conditional request is decided and written before the next starts. */
function conditionalRequests() {
  const chains = new Map<string, Promise<void>>();
  return async (ctx: KoaContext, next: () => Promise<void>) => {
    const ifNoneMatch = ctx.get("if-none-match");
    const ifMatch = ctx.get("if-match");
    const [, bucket, ...keyParts] = decodeURIComponent(ctx.path).split("/");
    const key = keyParts.join("/");
    const objectRequest = ["GET", "HEAD", "PUT", "DELETE"].includes(ctx.method) && bucket && key && !("uploadId" in ctx.query);
    if (!objectRequest) return next();
    const id = `${bucket}/${key}`;
    const previous = chains.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => (release = resolve));
    const link = previous.then(() => mine);
    chains.set(id, link);
    await previous;
    try {
      if (ifNoneMatch || ifMatch) {
        const exists = await ctx.store.existsObject(bucket, key);
        const etag = exists ? (await ctx.store.getMetadata(bucket, key))?.etag : undefined;
        if (ifNoneMatch === "*" && exists) return fail(ctx, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
        if (ifMatch && !exists) return fail(ctx, 404, "NoSuchKey", "The specified key does not exist.");
        if (ifMatch && ifMatch !== "*" && ifMatch !== etag) return fail(ctx, 412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold");
      }
      await next();
      // Koa sends a stream after the middleware returns: read it now, while the key is still ours.
      if (ctx.body && typeof (ctx.body as AsyncIterable<Buffer>)[Symbol.asyncIterator] === "function") {
        const chunks: Buffer[] = [];
        for await (const chunk of ctx.body as AsyncIterable<Buffer>) chunks.push(Buffer.from(chunk));
        ctx.body = Buffer.concat(chunks);
      }
    } finally {
      release();
      if (chains.get(id) === link) chains.delete(id);
    }
  };
}

/** The answer AWS gives; the request body is read first (answering mid-upload resets the client's socket). */
async function fail(ctx: KoaContext, status: number, code: string, message: string): Promise<void> {
  for await (const _chunk of ctx.req) {
    // drained
  }
  ctx.status = status;
  ctx.type = "application/xml";
  ctx.body = `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message></Error>`;
}
