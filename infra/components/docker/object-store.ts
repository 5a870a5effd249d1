/**
 * The dev stack's S3-compatible store (MinIO) holding the backup bucket, over TLS because
 * pgBackRest only speaks HTTPS to S3. A one-shot container makes a self-signed certificate for the
 * store's network alias (field notes: pgBackRest rejects IP-only certificates), a second one
 * creates the bucket.
 */
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import type { WorkloadLimits } from "../../config.ts";
import { publish, pullImage, serviceContainerArgs, upload, type DockerSite } from "./container-defaults.ts";

export interface DockerObjectStoreArgs {
  /** The stack network and port binding; the daemon is the provider in `opts`. */
  site: DockerSite;
  /**
   * @default "minio/minio:latest"
   * @example "minio/minio:RELEASE.2024-06-13T22-53-53Z"
   */
  image?: string;
  /**
   * MinIO client that creates the bucket.
   * @default "minio/mc:latest"
   */
  clientImage?: string;
  /**
   * Anything with `openssl` and `/bin/sh`, for the self-signed certificate.
   * @default "alpine/openssl:latest"
   */
  certImage?: string;
  /** @default { cpu: "500m", memory: "1Gi" } */
  limits?: WorkloadLimits;
  /**
   * @default "tradeops-backups"
   * @example "acme-tradeops-backups"
   */
  bucket?: string;
  /** Root credentials; also the keys pgBackRest uses. Secrets. */
  accessKey: pulumi.Input<string>;
  secretKey: pulumi.Input<string>;
  /** Host port of the S3 API. @example 16405 */
  hostPort: number;
  /**
   * Directory on the Docker host that receives the certificate (`public.crt`): containers mount it,
   * and runbooks on the host verify the store against it (the contract's `backup.caFile`).
   * @example "/home/me/tradeops/.tradeops/stacks/dev/s3-certs"
   */
  certificateDir: string;
}

/** The store as the containers on the stack network and the runbooks on the host see it. */
export const OBJECT_STORE = {
  /** Network alias; the certificate is issued for it and for `localhost` (runbooks on the host). */
  alias: "s3",
  port: 9000,
  region: "us-east-1",
  /** Where the certificate volume is mounted in clients (pgBackRest's `repo1-storage-ca-file`). */
  caMountPath: "/etc/pgbackrest/certs",
  caFile: "/etc/pgbackrest/certs/public.crt",
} as const;

/** One-shot containers (certificate, bucket) run to completion during `pulumi up`, then stay exited. */
const ONE_SHOT_CONTAINER = {
  mustRun: false,
  attach: true,
  logs: true,
  restart: "no",
  logDriver: "json-file",
  logOpts: { "max-size": "10m", "max-file": "1" },
  cpus: "0.5",
  memory: 128,
} satisfies Partial<docker.ContainerArgs>;

export class DockerObjectStore extends pulumi.ComponentResource {
  /** Host directory with `public.crt`; mount it at `OBJECT_STORE.caMountPath` to trust the store. */
  public readonly certificateDir: string;
  /** The certificate on the Docker host. */
  public readonly caFile: string;
  /** Done once the bucket exists; database nodes wait for it (their init creates the stanza). */
  public readonly bucketReady: docker.Container;
  public readonly container: docker.Container;
  public readonly bucket: string;

  constructor(name: string, args: DockerObjectStoreArgs, opts?: pulumi.ComponentResourceOptions) {
    super("tradeops:docker:ObjectStore", name, {}, opts);
    const childOpts = { parent: this };
    const spec = normalizeArgs();
    this.bucket = spec.bucket;

    this.certificateDir = args.certificateDir;
    this.caFile = `${args.certificateDir}/public.crt`;
    const dataVolume = createVolume(`${name}-data`);
    const certificate = issueCertificate();
    const store = startStore(dataVolume, certificate);
    this.container = store;
    this.bucketReady = createBucket(store);
    this.registerOutputs({ bucket: this.bucket, container: this.container.name });

    function normalizeArgs() {
      return {
        ...args,
        image: args.image ?? "minio/minio:latest",
        clientImage: args.clientImage ?? "minio/mc:latest",
        certImage: args.certImage ?? "alpine/openssl:latest",
        limits: args.limits ?? { cpu: "500m", memory: "1Gi" },
        bucket: args.bucket ?? "tradeops-backups",
      };
    }

    function createVolume(volumeName: string): docker.Volume {
      return new docker.Volume(volumeName, { name: `${args.site.namePrefix}-${volumeName}` }, { ...childOpts, retainOnDelete: false });
    }

    function issueCertificate(): docker.Container {
      const image = pullImage(`${name}-cert-image`, spec.certImage, childOpts);
      const script = [
        "test -s /certs/public.crt ||",
        `openssl req -x509 -newkey rsa:2048 -nodes -days 825 -subj /CN=${OBJECT_STORE.alias}`,
        `-addext subjectAltName=DNS:${OBJECT_STORE.alias},DNS:localhost`,
        "-keyout /certs/private.key -out /certs/public.crt",
        "&& chmod 600 /certs/private.key && chmod 644 /certs/public.crt",
      ].join(" ");
      return new docker.Container(
        `${name}-certificate`,
        {
          name: `${args.site.namePrefix}-${name}-certificate`,
          image: image.imageId,
          entrypoints: ["/bin/sh", "-c"],
          command: [script],
          volumes: [{ hostPath: args.certificateDir, containerPath: "/certs" }],
          ...ONE_SHOT_CONTAINER,
        },
        childOpts,
      );
    }

    function startStore(data: docker.Volume, certificate: docker.Container): docker.Container {
      const image = pullImage(`${name}-image`, spec.image, childOpts);
      const base = serviceContainerArgs({ site: args.site, role: OBJECT_STORE.alias, image: image.imageId, limits: spec.limits });
      // Credentials come from a file MinIO reads at start, not from the container's environment.
      const credentials = pulumi.interpolate`MINIO_ROOT_USER=${args.accessKey}\nMINIO_ROOT_PASSWORD=${args.secretKey}\n`;
      return new docker.Container(
        name,
        {
          ...base,
          command: ["server", "/data", "--address", `:${OBJECT_STORE.port}`, "--certs-dir", "/certs"],
          envs: ["MINIO_CONFIG_ENV_FILE=/etc/minio/config.env"],
          uploads: [upload("/etc/minio/config.env", pulumi.secret(credentials), "0600")],
          volumes: [
            { volumeName: data.name, containerPath: "/data" },
            { hostPath: args.certificateDir, containerPath: "/certs" },
          ],
          ports: [publish(args.site, args.hostPort, OBJECT_STORE.port)],
          healthcheck: {
            tests: ["CMD", "mc", "ready", "local", "--insecure"],
            interval: "10s",
            timeout: "5s",
            retries: 6,
            startPeriod: "10s",
          },
          wait: true,
          waitTimeout: 120,
        },
        { ...childOpts, dependsOn: [certificate] },
      );
    }

    function createBucket(store: docker.Container): docker.Container {
      const image = pullImage(`${name}-client-image`, spec.clientImage, childOpts);
      const aliasConfig = pulumi
        .all([args.accessKey, args.secretKey])
        .apply(([accessKey, secretKey]) =>
          JSON.stringify({
            version: "10",
            aliases: { tradeops: { url: `https://${OBJECT_STORE.alias}:${OBJECT_STORE.port}`, accessKey, secretKey, api: "s3v4", path: "auto" } },
          }),
        );
      return new docker.Container(
        `${name}-bucket`,
        {
          name: `${args.site.namePrefix}-${name}-bucket`,
          image: image.imageId,
          entrypoints: ["mc"],
          // The store's certificate is self-signed for the dev network: the client skips verification here only.
          command: ["--config-dir", "/tmp/mc", "--insecure", "mb", "--ignore-existing", `tradeops/${spec.bucket}`],
          uploads: [upload("/tmp/mc/config.json", pulumi.secret(aliasConfig), "0600")],
          networksAdvanced: [{ name: args.site.networkName }],
          ...ONE_SHOT_CONTAINER,
        },
        { ...childOpts, dependsOn: [store] },
      );
    }
  }
}
