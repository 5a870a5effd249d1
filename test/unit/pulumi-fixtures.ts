/** Stack configs the Pulumi unit tests share (the dr stack reads prod's outputs, so both use these). */

/** The dev stack's secrets (the alert channels' included). */
export const DEV_SECRETS = {
  dbPassword: "dev-db-Secret-5b1c",
  replicationPassword: "dev-repl-Secret-77aa",
  redisPassword: "dev-redis-Secret-0e9d",
  jwtSecret: "dev-jwt-Secret-2f3e4d5c6b7a8",
  opsApiToken: "dev-ops-Token-9c8b",
  grafanaAdminPassword: "dev-grafana-Secret-1a2b",
  s3AccessKey: "dev-s3-Access-4d4d",
  s3SecretKey: "dev-s3-Secret-6e6e",
  telegramBotToken: "123456:dev-telegram-Token",
  slackWebhookUrl: "https://hooks.slack.example/services/dev-Secret-slack",
};

/** Set as secrets: strong enough for S2 (no defaults, JWT ≥ 32 random characters). */
export const PROD_SECRETS = {
  dbPassword: "prod-db-Secret-8f7e6d5c",
  replicationPassword: "prod-repl-Secret-4b3a2918",
  redisPassword: "prod-redis-Secret-0a1b2c3d",
  jwtSecret: "q8Zr2LxV9mKc4TnB7wYe1HsD6gPa3JuF5oXi0QlM",
  opsApiToken: "prod-ops-Token-5e6f7a8b",
  grafanaAdminPassword: "prod-grafana-Secret-9c8d",
  slackWebhookUrl: "https://hooks.slack.example/services/prod-Secret-slack",
};

export const PROD_CONFIG = {
  ...PROD_SECRETS,
  apiImage: "ghcr.io/acme/trading-api:1.4.2",
  workerImage: "ghcr.io/acme/trading-worker:1.4.2",
  region: "eu-west-1",
  drRegion: "eu-central-1",
  backupBucketName: "acme-tradeops-backups",
  dnsZoneId: "Z0123456789ABC",
  dnsRecordName: "api.trading.example.com",
  apiHostname: "prod-api.trading.example.com",
  tlsSecretName: "api-tls",
  apiReplicas: "3",
  drStack: "organization/tradeops/dr",
};


/** What `pulumi stack output` of prod holds (as the prod mock test produces it), for the dr stack's StackReference. */
export const PROD_OUTPUTS = {
  contractVersion: 1,
  stack: "prod",
  platform: { kind: "kubernetes", namespace: "tradeops", deployments: { api: "api", worker: "worker" }, statefulSets: { database: "timescale", redis: "redis" } },
  database: {
    name: "trading",
    user: "tradeops",
    password: PROD_SECRETS.dbPassword,
    primary: { name: "timescale-0", host: "timescale-0.timescale-headless.tradeops.svc.cluster.local", port: 5432, role: "primary", dataDir: "/home/postgres/pgdata/data" },
    replication: { mode: "sync", slot: "timescale_1", user: "replicator", password: PROD_SECRETS.replicationPassword },
    traffic: { host: "timescale-rw.tradeops.svc.cluster.local", port: 5432 },
  },
  redis: { host: "redis.tradeops.svc.cluster.local", port: 6379, password: PROD_SECRETS.redisPassword },
  opsApi: { url: "https://prod-api.trading.example.com", token: PROD_SECRETS.opsApiToken },
  backup: {
    type: "s3",
    endpoint: "s3.eu-west-1.amazonaws.com",
    port: 443,
    region: "eu-west-1",
    bucket: "acme-tradeops-backups",
    prefix: "/pgbackrest",
    uriStyle: "host",
    accessKeyId: "AKIAPRODBACKUPWRITER",
    secretAccessKey: "prod-writer-Secret-3c4d5e6f",
    stanza: "trading",
  },
  dr: {
    name: "dr",
    region: "eu-central-1",
    stack: "organization/tradeops/dr",
    // The mocks give every site's load balancer the same name; a real prod one, so the dr test can tell the targets apart.
    dns: { zoneId: "Z0123456789ABC", recordName: "api.trading.example.com", healthCheckId: "hc-prod-1234", primaryTarget: "prod-lb.elb.eu-west-1.amazonaws.com", ttl: 60 },
  },
};

export const DR_SECRETS = {
  replicationPassword: "dr-repl-Secret-6a5b4c3d",
  jwtSecret: PROD_SECRETS.jwtSecret,
  kubeconfig: "apiVersion: v1\nkind: Config\nclusters: [{name: dr, cluster: {server: 'https://dr.k8s.example:6443'}}]\n# dr-kubeconfig-Secret-7f7f",
};

export const DR_CONFIG = {
  ...DR_SECRETS,
  apiImage: PROD_CONFIG.apiImage,
  workerImage: PROD_CONFIG.workerImage,
  region: "eu-central-1",
  backupBucketName: "acme-tradeops-backups-dr",
  prodStack: "organization/tradeops/prod",
  apiHostname: "dr-api.trading.example.com",
  tlsSecretName: "api-tls",
  namespace: "tradeops-dr",
  kubeContext: "dr-cluster",
  drActiveApiReplicas: "3",
};
