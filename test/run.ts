/**
 * `npm test` after the type-check: two vitest processes side by side. The shared-sandbox
 * integration files must run one at a time, and vitest runs every project whose files run one at a
 * time in a single sequence; the unit files and the integration files with a sandbox of their own
 * (interruptions, the DR site) need not wait for them, so they run in a second process. Each line is prefixed with its process; the exit code
 * is the worse of the two. With arguments (`npm test -- test/unit/cli.test.ts`), one vitest gets them.
 */
import { spawn } from "node:child_process";
import { createInterface } from "node:readline";

const vitest = ["node_modules/vitest/vitest.mjs", "run"];

if (process.argv.length > 2) {
  const child = spawn(process.execPath, [...vitest, ...process.argv.slice(2)], { stdio: "inherit" });
  child.on("close", (code) => process.exit(code ?? 1));
} else {
  const runs = [
    { label: "integration", projects: ["integration"] },
    { label: "unit+own", projects: ["unit", "integration-solo", "integration-dr"] },
  ].map(({ label, projects }) => run(label, projects.flatMap((project) => ["--project", project])));
  const codes = await Promise.all(runs);
  process.exit(Math.max(...codes));
}

function run(label: string, args: string[]): Promise<number> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [...vitest, ...args], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, FORCE_COLOR: process.stdout.isTTY ? "1" : "0" } });
    for (const stream of [child.stdout, child.stderr]) {
      createInterface({ input: stream }).on("line", (line) => process.stdout.write(`[${label}] ${line}\n`));
    }
    child.on("close", (code) => done(code ?? 1));
  });
}
