/**
 * The monitoring that pages people is a component too (#17, point 6): `health`'s Alertmanager probe
 * against a real Alertmanager (Debian's prometheus-alertmanager) — ready, then hung, then gone. The
 * sandbox runs no Alertmanager (the dev and prod stacks do), so this test starts its own.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { checkAlertmanager } from "../../runbooks/probes.ts";
import { INTEGRATION_BASE_PORT } from "./global-setup.ts";

const dir = mkdtempSync(join(tmpdir(), "tradeops-it-alertmanager-"));
const port = INTEGRATION_BASE_PORT + 60;
const url = `http://127.0.0.1:${port}`;
let alertmanager: ChildProcess;

beforeAll(async () => {
  writeFileSync(join(dir, "alertmanager.yml"), "route:\n  receiver: nobody\nreceivers:\n  - name: nobody\n");
  alertmanager = spawn(
    "prometheus-alertmanager",
    [`--config.file=${join(dir, "alertmanager.yml")}`, `--storage.path=${join(dir, "data")}`, `--web.listen-address=127.0.0.1:${port}`, "--cluster.listen-address="],
    { stdio: "ignore" },
  );
  for (let i = 0; i < 100; i++) {
    // Ready, and ours: another process on the port (a leftover of a killed run) would answer for it.
    if (alertmanager.exitCode !== null) throw new Error(`alertmanager exited (${alertmanager.exitCode}) before it was ready: is port ${port} taken?`);
    if (await checkAlertmanager(url, { timeoutMs: 500 }).then(() => true, () => false)) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`alertmanager did not become ready on ${url}`);
});
afterAll(() => {
  alertmanager?.kill("SIGKILL");
  rmSync(dir, { recursive: true, force: true });
});

describe("health probes Alertmanager (#17)", () => {
  it("S5: a ready Alertmanager is healthy; hung, it is named within the deadline; killed, it is refused", async () => {
    expect(await checkAlertmanager(url)).toBe("ready");

    expect(alertmanager.kill("SIGSTOP"), "the Alertmanager this test started is gone").toBe(true);
    try {
      const started = performance.now();
      await expect(checkAlertmanager(url, { timeoutMs: 1_000 })).rejects.toThrow(/no answer within 1 s/);
      expect(performance.now() - started).toBeLessThan(3_000);
    } finally {
      alertmanager.kill("SIGCONT");
    }

    alertmanager.kill("SIGKILL");
    await new Promise((resolve) => alertmanager.once("exit", resolve));
    await expect(checkAlertmanager(url)).rejects.toThrow(/ECONNREFUSED|refused/);
  });
});
