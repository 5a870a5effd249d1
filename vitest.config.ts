import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Pulumi mocks are process-global: a fresh fork per file. Each project runs one file at a time
    // (the integration files share one sandbox). vitest runs such projects one after another, so
    // `npm test` (test/run.ts) runs the integration project in one process and, beside it in a
    // second one, the unit project and the two integration projects with a sandbox of their own.
    pool: "forks",
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
          exclude: ["test/integration/dr.test.ts", "test/integration/interruptions.test.ts"],
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
          name: "integration-solo",
          include: ["test/integration/interruptions.test.ts"],
          fileParallelism: false,
          // A sandbox of its own: these tests kill its S3 store, its standby, pgBackRest mid-copy.
          globalSetup: ["test/integration/solo-setup.ts"],
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
