import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { delimiter, join } from "node:path";
import { expect, test } from "vitest";

/** The minimum major Node, read the way bin/tradeops.mjs reads it: the first number of engines.node. */
const engines: string = JSON.parse(readFileSync("package.json", "utf8")).engines.node;
const minimum = Number(/\d+/.exec(engines)![0]);
const major = (version: string) => Number(version.replace(/^v/, "").split(".")[0]);

test(`the tests run on Node ${process.version}, which engines "${engines}" allows`, () => {
  expect(major(process.versions.node)).toBeGreaterThanOrEqual(minimum);
});

/** An older node on this machine (the system one when CI fetched a newer one), if any. */
function olderNode(): { bin: string; version: string } | undefined {
  const candidates = ["/usr/local/bin/node", "/usr/bin/node", ...(process.env.PATH ?? "").split(delimiter).map((dir) => join(dir, "node"))];
  for (const bin of new Set(candidates)) {
    if (!existsSync(bin)) continue;
    const run = spawnSync(bin, ["-p", "process.version"], { encoding: "utf8" });
    if (run.status === 0 && major(run.stdout.trim()) < minimum) return { bin, version: run.stdout.trim() };
  }
  return undefined;
}

// The real old binary where the machine has one; else this Node told it is v20 before the bin loads.
const old = olderNode();
const SIMULATE_V20 = `data:text/javascript,Object.defineProperty(process,"versions",{value:{...process.versions,node:"20.0.0"}});Object.defineProperty(process,"version",{value:"v20.0.0"});`;

test(`an older Node (${old ? `${old.version} at ${old.bin}` : "simulated v20.0.0"}) gets a one-line refusal naming the version needed, exit 2`, () => {
  const started = performance.now();
  const run = old
    ? spawnSync(old.bin, ["bin/tradeops.mjs", "health"], { encoding: "utf8" })
    : spawnSync(process.execPath, ["--import", SIMULATE_V20, "bin/tradeops.mjs", "health"], { encoding: "utf8" });
  expect(run.status).toBe(2);
  expect(run.stdout).toBe("");
  const lines = run.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(new RegExp(`^tradeops: needs Node\\.js ${minimum} LTS or newer \\(engines "${engines.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}"\\), this is ${old?.version ?? "v20.0.0"} `));
  expect(lines[0]).toContain(`nvm install ${minimum}`);
  expect(lines[0]).toContain(`node@${minimum}`);
  // Refused before tsx and the runbooks load: no stack trace, and quickly.
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(performance.now() - started).toBeLessThan(5_000);
});
