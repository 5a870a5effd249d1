/**
 * Stack `dev`: the whole platform on one Docker host (S1), every port on 127.0.0.1 unless the
 * stack's `bindAddress` says otherwise. Start order follows Z4: object store → database pair →
 * traffic proxy and Redis → API and worker; observability alongside.
 */
import { join } from "node:path";
import * as docker from "@pulumi/docker";
import * as pulumi from "@pulumi/pulumi";
import { tradeopsHome } from "../../contract/home.ts";
import { secretOf, type DevConfig } from "../config.ts";
import { DockerApp } from "../components/docker/app.ts";
import type { DockerSite } from "../components/docker/container-defaults.ts";
import { DockerObjectStore, OBJECT_STORE } from "../components/docker/object-store.ts";
import { DockerObservability } from "../components/docker/observability.ts";
import { DockerRedis } from "../components/docker/redis.ts";
import { DockerTimescalePair, type DockerPgNode } from "../components/docker/timescale.ts";
import { DockerTrafficProxy } from "../components/docker/traffic-proxy.ts";
import { PG_PATHS } from "../components/rendered-files.ts";
import { PGBACKREST_PREFIX, alertReceiversOf, appReleaseOf, notificationsOf, replicationRoleOf, stackLockOf, type StackExports } from "./exports.ts";

/** Host ports: the sandbox's offsets from a base port, so `dev` and `sandbox` never collide. */
export function devHostPorts(base: number) {
  return {
    pgA: base + 1,
    pgB: base + 2,
    traffic: base + 3,
    redis: base + 4,
    s3: base + 5,
    api: base + 6,
    prometheus: base + 7,
    alertmanager: base + 8,
    grafana: base + 9,
  };
}

export function devStack(config: DevConfig): StackExports {
  const stack = pulumi.getStack();
  const ports = devHostPorts(config.hostPortBase);
  const secrets = {
    dbPassword: secretOf(config.dbPassword),
    replicationPassword: secretOf(config.replicationPassword),
    redisPassword: secretOf(config.redisPassword),
    jwtSecret: secretOf(config.jwtSecret),
    opsApiToken: secretOf(config.opsApiToken),
    grafanaAdminPassword: secretOf(config.grafanaAdminPassword),
    s3AccessKey: secretOf(config.s3AccessKey),
    s3SecretKey: secretOf(config.s3SecretKey),
  };

  const { site, daemon } = createSite();
  const store = new DockerObjectStore(
    "s3",
    {
      site,
      image: config.objectStoreImage,
      clientImage: config.objectStoreClientImage,
      certImage: config.certImage,
      limits: config.resources.objectStore,
      bucket: config.backupBucketName,
      accessKey: secrets.s3AccessKey,
      secretKey: secrets.s3SecretKey,
      hostPort: ports.s3,
      certificateDir: config.certificateDir ?? join(tradeopsHome(), "stacks", stack, "s3-certs"),
    },
    { provider: daemon },
  );
  const timescale = new DockerTimescalePair(
    "timescale",
    {
      site,
      image: config.timescaleImage,
      limits: config.resources.timescale,
      dbName: config.dbName,
      dbUser: config.dbUser,
      dbPassword: secrets.dbPassword,
      replicationUser: config.replicationUser,
      replicationPassword: secrets.replicationPassword,
      replicationMode: config.replicationMode,
      hostPorts: { primary: ports.pgA, standby: ports.pgB },
      clientNetwork: config.networkSubnet,
      stanza: config.stanza,
      repository: pulumi.all([secrets.s3AccessKey, secrets.s3SecretKey]).apply(([key, keySecret]) => ({
        endpoint: OBJECT_STORE.alias,
        port: OBJECT_STORE.port,
        bucket: config.backupBucketName,
        region: OBJECT_STORE.region,
        path: PGBACKREST_PREFIX,
        uriStyle: "path" as const,
        key,
        keySecret,
        caFile: OBJECT_STORE.caFile,
      })),
      retention: config.retention,
      certificateDir: store.certificateDir,
      after: [store.bucketReady],
    },
    { provider: daemon },
  );
  // The containers are declared as deployed (pg-a initdb'd, pg-b cloned it): after a failover only the
  // roles change, so a deploy replaces no database container. Their data decides how each starts.
  const roles = rolesOf(timescale, config.primaryNode);
  const traffic = new DockerTrafficProxy(
    "traffic",
    {
      site,
      image: config.haproxyImage,
      limits: config.resources.proxy,
      // Both nodes keep their place; only which one is enabled follows tradeops:primaryNode.
      servers: [timescale.primary, timescale.standby].map((node) => ({ name: node.name, enabled: node === roles.primary })),
      hostPort: ports.traffic,
      dependsOn: [timescale.primary.container, timescale.standby.container],
    },
    { provider: daemon },
  );
  const redis = new DockerRedis(
    "redis",
    {
      site,
      image: config.redisImage,
      limits: config.resources.redis,
      password: secrets.redisPassword,
      maxmemory: config.redisMaxMemory,
      maxmemoryPolicy: config.redisMaxMemoryPolicy,
      hostPort: ports.redis,
    },
    { provider: daemon },
  );
  const appEnv = {
    DATABASE_HOST: traffic.internalHost,
    DATABASE_PORT: String(traffic.internalPort),
    DATABASE_NAME: config.dbName,
    DATABASE_USER: config.dbUser,
    REDIS_HOST: redis.internalHost,
    REDIS_PORT: String(redis.internalPort),
    PORT: String(config.apiPort),
  };
  const appSecrets = {
    DATABASE_PASSWORD: secrets.dbPassword,
    REDIS_PASSWORD: secrets.redisPassword,
    JWT_SECRET: secrets.jwtSecret,
    OPS_API_TOKEN: secrets.opsApiToken,
  };
  const api = new DockerApp(
    "api",
    {
      site,
      role: "api",
      image: config.apiImage,
      limits: config.resources.api,
      env: appEnv,
      secretFiles: appSecrets,
      containerPort: config.apiPort,
      hostPort: ports.api,
      dependsOn: [traffic.container, redis.container],
    },
    { provider: daemon },
  );
  const worker = new DockerApp(
    "worker",
    { site, role: "worker", image: config.workerImage, limits: config.resources.worker, env: appEnv, secretFiles: appSecrets, dependsOn: [traffic.container, redis.container] },
    { provider: daemon },
  );
  new DockerObservability(
    "observability",
    {
      site,
      images: { prometheus: config.prometheusImage, alertmanager: config.alertmanagerImage, grafana: config.grafanaImage, pgExporter: config.pgExporterImage },
      resources: config.resources,
      apiTarget: `api:${config.apiPort}`,
      database: { host: traffic.internalHost, port: traffic.internalPort, name: config.dbName, user: config.dbUser, password: secrets.dbPassword },
      grafanaAdminPassword: secrets.grafanaAdminPassword,
      receivers: pulumi.secret(alertReceiversOf(config, { url: `http://api:${config.apiPort}/api/alerts/kill-switch`, bearerToken: secrets.opsApiToken })),
      hostPorts: { prometheus: ports.prometheus, alertmanager: ports.alertmanager, grafana: ports.grafana },
    },
    { provider: daemon },
  );

  // Runbooks run on the Docker host: a wildcard bind is still reached on loopback.
  const host = config.bindAddress === "0.0.0.0" ? "127.0.0.1" : config.bindAddress;
  const pgNode = (node: DockerPgNode, role: "primary" | "standby") => ({ name: node.name, host, port: node.hostPort, role, dataDir: PG_PATHS.dataDir });
  return {
    contractVersion: 1,
    stack,
    platform: {
      kind: "docker",
      containers: {
        primary: roles.primary.container.name,
        standby: roles.standby.container.name,
        redis: redis.container.name,
        api: api.container.name,
        worker: worker.container.name,
      },
    },
    database: {
      name: config.dbName,
      user: config.dbUser,
      password: secrets.dbPassword,
      primary: pgNode(roles.primary, "primary"),
      standby: pgNode(roles.standby, "standby"),
      homePrimary: timescale.primary.name,
      // The standby streams through a slot named after it, as in the sandbox: pg_b (the pair's), pg_a once pg-b is primary.
      replication: { mode: config.replicationMode, slot: roles.standby.name.replaceAll("-", "_"), ...replicationRoleOf(config.replicationUser, secrets.replicationPassword) },
      traffic: { host, port: ports.traffic },
    },
    redis: { host, port: ports.redis, password: secrets.redisPassword },
    opsApi: { url: `http://${host}:${ports.api}`, token: secrets.opsApiToken },
    app: appReleaseOf(config.apiImage),
    backup: {
      type: "s3",
      // The certificate names `localhost` too, for pgBackRest or the AWS SDK run on the host.
      endpoint: "localhost",
      port: ports.s3,
      region: OBJECT_STORE.region,
      bucket: config.backupBucketName,
      prefix: PGBACKREST_PREFIX,
      uriStyle: "path",
      accessKeyId: secrets.s3AccessKey,
      secretAccessKey: secrets.s3SecretKey,
      caFile: store.caFile,
      stanza: config.stanza,
      // Runbooks run pgBackRest inside the database containers (docker exec), with this file.
      configFile: PG_PATHS.pgbackrestConf,
    },
    // In the MinIO bucket, like every non-sandbox stack's.
    lock: stackLockOf(config.stanza),
    monitoring: { prometheusUrl: `http://${host}:${ports.prometheus}`, alertmanagerUrl: `http://${host}:${ports.alertmanager}` },
    notifications: notificationsOf(config),
    retention: config.retention,
  };

  /** Which declared node is primary now: `tradeops:primaryNode`, else the home primary pg-a. */
  function rolesOf(pair: DockerTimescalePair, primaryNode: string | undefined): { primary: DockerPgNode; standby: DockerPgNode } {
    return (primaryNode ?? pair.primary.name) === pair.primary.name ? { primary: pair.primary, standby: pair.standby } : { primary: pair.standby, standby: pair.primary };
  }

  /** The Docker provider (components get it as `{ provider }` in their opts) and the stack network. */
  function createSite(): { site: DockerSite; daemon: docker.Provider } {
    const daemon = new docker.Provider("docker", config.dockerHost ? { host: config.dockerHost } : {});
    const network = new docker.Network(
      "network",
      { name: `${pulumi.getProject()}-${stack}`, driver: "bridge", ipamConfigs: [{ subnet: config.networkSubnet }] },
      { provider: daemon },
    );
    return { site: { networkName: network.name, namePrefix: `${pulumi.getProject()}-${stack}`, bindAddress: config.bindAddress }, daemon };
  }
}
