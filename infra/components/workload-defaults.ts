/**
 * Defaults the Docker and Kubernetes twins of a workload share — the same images, limits and
 * database/Redis settings on both platforms — applied here once. Each component documents them in
 * its Args (`@default`) and applies them in its `normalizeArgs` step through these functions.
 */
import type * as pulumi from "@pulumi/pulumi";
import type { Resources, WorkloadLimits } from "../config.ts";
import type { AlertReceivers } from "./rendered-files.ts";

/** S4/S5: LowDatabaseConnections needs postgres_exporter's metrics. */
export const PG_EXPORTER_IMAGE = "prometheuscommunity/postgres-exporter:v0.15.0";

export interface TimescaleSettings {
  image?: string;
  limits?: WorkloadLimits;
  dbName?: string;
  dbUser?: string;
  replicationUser?: string;
  replicationMode?: "sync" | "async";
  stanza?: string;
  retention?: { pgFullDays?: number; walDays?: number };
}

export function timescaleDefaults(args: TimescaleSettings) {
  return {
    image: args.image ?? "timescale/timescaledb-ha:pg15",
    limits: args.limits ?? { cpu: "2", memory: "4Gi" },
    dbName: args.dbName ?? "trading",
    dbUser: args.dbUser ?? "tradeops",
    replicationUser: args.replicationUser ?? "replicator",
    replicationMode: args.replicationMode ?? "sync",
    stanza: args.stanza ?? "trading",
    // I7: full backups 30 days, WAL 7.
    retention: { pgFullDays: args.retention?.pgFullDays ?? 30, walDays: args.retention?.walDays ?? 7 },
  };
}

export interface RedisSettings {
  image?: string;
  limits?: WorkloadLimits;
  maxmemory?: string;
  maxmemoryPolicy?: string;
}

export function redisDefaults(args: RedisSettings) {
  return {
    image: args.image ?? "redis:7.2",
    // S7: the limit leaves fork headroom above maxmemory (BGSAVE, AOF rewrite).
    limits: args.limits ?? { cpu: "1", memory: "3Gi" },
    maxmemory: args.maxmemory ?? "2gb",
    maxmemoryPolicy: args.maxmemoryPolicy ?? "allkeys-lru",
  };
}

export interface ObservabilitySettings {
  images?: { prometheus?: string; alertmanager?: string; grafana?: string };
  resources?: Partial<Pick<Resources, "prometheus" | "alertmanager" | "grafana">>;
  receivers?: pulumi.Input<AlertReceivers>;
}

export function observabilityDefaults(args: ObservabilitySettings) {
  return {
    images: {
      prometheus: args.images?.prometheus ?? "prom/prometheus:v2.53.0",
      alertmanager: args.images?.alertmanager ?? "prom/alertmanager:v0.27.0",
      grafana: args.images?.grafana ?? "grafana/grafana:11.1.0",
    },
    resources: {
      prometheus: args.resources?.prometheus ?? { cpu: "1", memory: "2Gi" },
      alertmanager: args.resources?.alertmanager ?? { cpu: "250m", memory: "256Mi" },
      grafana: args.resources?.grafana ?? { cpu: "500m", memory: "512Mi" },
    },
    // No channels: alerts are grouped and dropped.
    receivers: args.receivers ?? {},
  };
}
