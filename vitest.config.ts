import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Pulumi mocks are process-global: a fresh fork per file. Each project runs one file at a time
    // (the integration files share one sandbox); the projects run side by side — the DR file has a
    // sandbox of its own, and the unit files start none.
    pool: "forks",
    // One worker per project (each keeps its files one at a time): the default would be one in all on two cores.
    maxWorkers: 3,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], fileParallelism: false, testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          exclude: ["test/integration/dr.test.ts"],
          fileParallelism: false,
          // Starts one real sandbox (PostgreSQL pair, HAProxy, Redis, S3 store, ops API, Prometheus) for the run.
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 90_000,
          hookTimeout: 180_000,
        },
      },
      {
        extends: true,
        test: {
          name: "integration-dr",
          include: ["test/integration/dr.test.ts"],
          fileParallelism: false,
          // The DR site's own sandbox (`sandbox up --with-dr`): its tests kill the whole primary site.
          globalSetup: ["test/integration/dr-setup.ts"],
          testTimeout: 120_000,
          hookTimeout: 240_000,
        },
      },
    ],
  },
});
