/**
 * The CLI's commands and flags, read from the real `tradeops … --help` output, against what they
 * were before the registry (issue #6): nothing an operator or a script uses was lost or renamed.
 */
import { spawnSync } from "node:child_process";
import { describe, expect, it } from "vitest";
import { COMMANDS } from "../../runbooks/registry.ts";

/** Every command and its long flags before the registry (tradeops 0.1.0, commit 212add5). */
const BEFORE: Record<string, string[]> = {
  "": ["--dry-run", "--json", "--outputs", "--stack", "--yes"],
  health: [],
  diagnose: ["--limit"],
  backup: ["--type"],
  sandbox: [],
  "sandbox up": ["--async", "--base-port", "--dir", "--sync"],
  "sandbox down": ["--dir", "--purge"],
  "sandbox status": ["--dir"],
};
/** What came since, each with the issue that added it. */
const ADDED: Record<string, string[]> = {
  drill: ["--async", "--base-port", "--cycles", "--dir", "--report", "--site", "--sync", "--with-dr"], // #6: `npm run drill -- --dir DIR`; #8: the failover drill; #9: --site
  unlock: ["--force"], // #16: the human way out of a stale lock
  failover: ["--force", "--max-lag", "--reason"], // #8
  switchover: ["--reason"], // #8
  failback: ["--reason"], // #8
  backup: ["--from", "--models", "--redis", "--tables", "--type"], // #7: --redis snapshots, --tables dumps, --models sets, --from standby
  restore: ["--db", "--dump", "--models", "--reason", "--redis", "--skip-verify", "--tables", "--to-lsn", "--to-name", "--to-time"], // #7
  backups: [], // #7
  "backups list": [], // #7
  doctor: ["--only"], // #12
  logs: ["--errors", "--grep", "--orders", "--rate-limits", "--since", "--strategy", "--summary", "--tail"], // #12
  "support-bundle": ["--out", "--since"], // #12
  maintenance: [], // #12
  "maintenance vacuum": ["--table"], // #12
  "maintenance retention": [], // #12
  "maintenance terminate": ["--idle-in-transaction-older-than"], // #12
  "maintenance create-index": ["--columns", "--concurrently", "--name", "--table"], // #12
  redis: [], // #12
  "redis clear-queue": [], // #12
  "kill-switch on": ["--reason"], // #10: I1
  "kill-switch off": ["--admin-key-file", "--code", "--force"], // #10
  "kill-switch status": [], // #10
  "trading pause": ["--reason"], // #10: I9
  "trading resume": [], // #10
  "trading status": [], // #10
  "positions list": [], // #10: I3
  "positions close-all": ["--reason"], // #10
  "circuit-breaker status": [], // #10: I2
  "circuit-breaker reset": [], // #10
  stop: ["--close-positions"], // #10: Z4, I9
  start: [], // #10
  "rollback app": ["--schema-version", "--to", "--with-migrations", "--with-model"], // #10: I4
  "rollback migration": ["--steps", "--to"], // #10
  "rollback model": ["--to"], // #10
  "upgrade app": ["--skip-backup", "--to", "--watch"], // #10: Z7
  "sandbox up": ["--async", "--base-port", "--dir", "--sync", "--with-dr"], // #9: the DR site
  dr: [], // #9
  "dr status": [], // #9: I5, I6
  "dr activate": ["--force", "--max-lag-seconds", "--reason"], // #9
  "dr failback": ["--reason"], // #9
};

function help(command: string): { commands: string[]; flags: string[] } {
  const run = spawnSync(process.execPath, ["bin/tradeops.mjs", ...command.split(" ").filter(Boolean), "--help"], { encoding: "utf8" });
  expect(run.status, run.stderr).toBe(0);
  const [options = "", commands = ""] = run.stdout.split(/^Commands:$/m);
  return {
    flags: [...new Set([...options.matchAll(/^\s+(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1]!))].filter((f) => f !== "--help").sort(),
    commands: [...commands.matchAll(/^ {2}([a-z][a-z-]*)/gm)].map((m) => m[1]!).filter((c) => c !== "help"),
  };
}

describe("CLI surface", () => {
  const expected = { ...BEFORE, ...ADDED };

  it("every --help lists the same commands and flags as before, plus the ones added since", () => {
    const actual = Object.fromEntries(Object.keys(expected).map((command) => [command, help(command).flags]));
    expect(actual).toEqual(Object.fromEntries(Object.entries(expected).map(([command, flags]) => [command, [...flags].sort()])));
  });

  it("tradeops --help and tradeops sandbox --help list every command of the registry", () => {
    const top = COMMANDS.map((entry) => entry.command[0]!).filter((word, i, all) => all.indexOf(word) === i);
    expect(help("").commands).toEqual(top);
    expect(help("sandbox").commands).toEqual(COMMANDS.filter((e) => e.command[0] === "sandbox").map((e) => e.command[1]));
  });
});
