/**
 * The CLI, the sandbox and the ops API run on Node's own type stripping (bin/tradeops.mjs): every
 * module they can load must be erasable TypeScript (tsconfig's erasableSyntaxOnly checks the
 * syntax) and must import types with `import type` (which only loading them proves). This loads
 * every one of them in a plain `node`, as the CLI would.
 */
import { spawnSync } from "node:child_process";
import { readdirSync } from "node:fs";
import { expect, it } from "vitest";

const ENTRY_POINTS = ["sandbox/ops-api/main.ts"]; // they start something when imported

it("every runtime module (runbooks, contract, clients, sandbox) loads under Node's own type stripping", () => {
  const files = readdirSync(".", { recursive: true, encoding: "utf8" })
    .filter((file) => /^(runbooks|contract|clients|sandbox)\/.*\.ts$/.test(file) && !ENTRY_POINTS.includes(file))
    .sort();
  expect(files.length).toBeGreaterThan(50);
  const script = `for (const file of ${JSON.stringify(files)}) {
    try { await import(new URL(file, "file://${process.cwd()}/").href); } catch (error) { console.log(file + ": " + String(error.message).split("\\n")[0]); }
  }`;
  const run = spawnSync(process.execPath, ["--input-type=module", "-e", script], { encoding: "utf8" });
  expect(run.status, run.stderr).toBe(0);
  expect(run.stdout.trim().split("\n").filter(Boolean)).toEqual([]);
  expect(run.stderr).not.toMatch(/Warning/);
});
