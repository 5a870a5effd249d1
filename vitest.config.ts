import { defineConfig } from "vitest/config";

export default defineConfig({
  test: {
    // Pulumi mocks are process-global and the integration files share one sandbox: a fresh fork
    // per file, one file at a time.
    pool: "forks",
    // The AWS SDK's "Node 22 after January 2027" notice, once per process; the README says it once.
    env: { AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: "true" },
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
