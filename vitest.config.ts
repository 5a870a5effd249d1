import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Pulumi mocks are process-global and the integration files share one sandbox: a fresh fork
    // per file, one file at a time.
    pool: "forks",
    fileParallelism: false,
    projects: [
      {
        extends: true,
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], testTimeout: 30_000 },
      },
      {
        extends: true,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts"],
          // Starts one real sandbox (PostgreSQL pair, HAProxy, Redis, S3 store, ops API, Prometheus) for the run.
          globalSetup: ["test/integration/global-setup.ts"],
          testTimeout: 90_000,
          hookTimeout: 180_000,
        },
      },
    ],
  },
});
