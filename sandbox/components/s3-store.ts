/**
 * The S3-compatible backup store: s3rver as its own node process, over TLS with a self-signed
 * certificate for DNS:localhost (field notes: pgBackRest 2.45 rejects IP-only certificates).
 */
import { chmodSync, existsSync, mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import type { SandboxComponent } from "../component.ts";
import type { SandboxLayout } from "../layout.ts";
import {
  assertPortFree,
  httpsStatus,
  livePid,
  notReady,
  runOrThrow,
  spawnDaemon,
  stopDaemon,
  waitUntil,
} from "../processes.ts";

const READY_TIMEOUT_MS = 20_000;

/** s3rver's own CLI (it has no `exports` map, so its bin resolves by path). */
function s3rverBin(): string {
  const require = createRequire(import.meta.url);
  return join(dirname(require.resolve("s3rver/package.json")), "bin", "s3rver.js");
}

const url = (layout: SandboxLayout) => `https://localhost:${layout.ports.s3}/`;

async function answers(layout: SandboxLayout): Promise<boolean> {
  return existsSync(layout.s3.cert) && (await httpsStatus(url(layout), layout.s3.cert)) !== undefined;
}

export const s3Store: SandboxComponent = {
  name: "s3",
  startStep: (layout) => `Start the S3 store (s3rver over TLS) with bucket ${layout.s3.bucket}`,
  stopStep: () => "Stop the S3 store",
  port: (layout) => layout.ports.s3,
  // The TLS certificate is minted with openssl on the first start; s3rver itself comes from npm ci.
  requires: () => [{ binary: "openssl", debianPackage: "openssl" }],
  logFile: (layout) => layout.s3.log,
  pid: (layout) => livePid(layout.s3.pidFile, layout.dir),
  isUp: async (layout) => livePid(layout.s3.pidFile, layout.dir) !== undefined && (await answers(layout)),

  async start({ layout, log }) {
    await assertPortFree(layout.host, layout.ports.s3, "the S3 store");
    // The TLS dir must stay traversable: pgBackRest (as postgres) reads the CA file in it.
    mkdirSync(layout.s3.tlsDir, { recursive: true, mode: 0o755 });
    mkdirSync(layout.s3.dataDir, { recursive: true, mode: 0o700 });
    if (!existsSync(layout.s3.cert)) await mintCertificate(layout, log);
    spawnDaemon(layout, {
      name: "s3",
      command: process.execPath,
      args: [
        // s3rver encrypts the continuation token of listings over 1000 keys (a backup's files) with
        // DES, which OpenSSL 3 keeps in its legacy provider: without it those listings fail with 500.
        "--openssl-legacy-provider",
        "--require", join(import.meta.dirname, "s3rver-prefixes.cjs"),
        s3rverBin(),
        "--directory", layout.s3.dataDir,
        "--address", layout.host,
        "--port", String(layout.ports.s3),
        "--key", layout.s3.key,
        "--cert", layout.s3.cert,
        "--no-vhost-buckets",
        "--configure-bucket", layout.s3.bucket,
      ],
      log: layout.s3.log,
      pidFile: layout.s3.pidFile,
    });
    if (!(await waitUntil(() => answers(layout), READY_TIMEOUT_MS))) {
      throw notReady("the S3 store", `answer HTTPS on port ${layout.ports.s3}`, READY_TIMEOUT_MS, layout.s3.log);
    }
  },

  async verify({ layout }) {
    // Unsigned requests are refused (403), which proves TLS with our CA and a live S3 front.
    const status = await httpsStatus(`${url(layout)}${layout.s3.bucket}`, layout.s3.cert);
    if (status === undefined) throw new Error(`the S3 store does not answer on ${url(layout)} with CA ${layout.s3.cert}`);
  },

  stop: (layout) => stopDaemon(layout, layout.s3),
};

/** Self-signed; the certificate is its own CA file (readable by pgBackRest as postgres). */
async function mintCertificate(layout: SandboxLayout, log: (line: string) => void): Promise<void> {
  log(`openssl: self-signed certificate for DNS:localhost in ${layout.s3.tlsDir}`);
  await runOrThrow(
    layout,
    [
      "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-sha256", "-days", "3650",
      "-subj", "/CN=localhost",
      "-addext", "subjectAltName=DNS:localhost",
      "-addext", "basicConstraints=critical,CA:TRUE",
      "-keyout", layout.s3.key, "-out", layout.s3.cert,
    ],
    { what: "openssl req (sandbox TLS certificate)" },
  );
  chmodSync(layout.s3.key, 0o600);
  chmodSync(layout.s3.cert, 0o644);
}
