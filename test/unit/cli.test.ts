import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { sampleOutputs } from "../support/sample-outputs.ts";

const home = mkdtempSync(join(tmpdir(), "tradeops-cli-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

function tradeops(...args: string[]) {
  const run = spawnSync(process.execPath, ["bin/tradeops.mjs", ...args], {
    encoding: "utf8",
    env: { ...process.env, TRADEOPS_HOME: home, PULUMI_BIN: join(home, "no-pulumi") },
  });
  return { code: run.status, stdout: run.stdout, stderr: run.stderr };
}

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");

/** Bad input: a usage exit code and exactly one readable line, never a stack trace. */
function expectOneLineError(result: ReturnType<typeof tradeops>, code: number, pattern: RegExp) {
  expect(result.code).toBe(code);
  const lines = result.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
  expect(result.stderr).not.toMatch(/\n\s+at /);
}

describe("tradeops CLI input errors", () => {
  it("--help lists the runbooks and exits 0", () => {
    const result = tradeops("--help");
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/health[\s\S]*diagnose[\s\S]*backup[\s\S]*sandbox/);
  });

  it("an unknown flag exits 2 with one line", () => {
    expectOneLineError(tradeops("health", "--frobnicate"), 2, /^tradeops: unknown option '--frobnicate'/);
  });

  it("an unknown command exits 2 with one line", () => {
    expectOneLineError(tradeops("failovr"), 2, /^tradeops: unknown command 'failovr'/);
  });

  it("a bad option value exits 2 naming it", () => {
    expectOneLineError(tradeops("backup", "--type", "weekly"), 2, /^tradeops: option '--type <type>' argument 'weekly' is invalid/);
    expectOneLineError(tradeops("diagnose", "--limit", "ten"), 2, /^tradeops: option '--limit <rows>' argument 'ten' is invalid\. expected a whole number\.$/);
    expectOneLineError(tradeops("diagnose", "--limit", "0"), 2, /^tradeops: diagnose: limit: Too small: expected number to be >=1$/);
  });

  it("a missing outputs file exits 2 and says how to get one", () => {
    expectOneLineError(tradeops("health"), 2, /^tradeops: cannot read outputs file .*sandbox\/outputs\.json \(not found\); run `tradeops sandbox up` first$/);
  });

  it("outputs that break the contract exit 2 naming the key", () => {
    const file = join(home, "broken.json");
    const broken = sampleOutputs();
    (broken.redis as { port: unknown }).port = "six";
    writeFileSync(file, JSON.stringify(broken));
    expectOneLineError(tradeops("health", "--outputs", file), 2, /^tradeops: outputs of .*broken\.json break the contract: redis\.port: /);
  });

  it("a stack without the pulumi CLI exits 2 and points to --outputs", () => {
    expectOneLineError(tradeops("health", "--stack", "prod"), 2, /pulumi CLI is not installed.*--outputs FILE/);
  });

  it("--json keeps stdout one JSON document even for errors", () => {
    const result = tradeops("health", "--json");
    expect(result.code).toBe(2);
    expect(JSON.parse(result.stdout)).toMatchObject({ exitCode: 2, error: expect.stringMatching(/outputs file/) });
  });

  it("--dry-run of a mutating runbook against unreachable hosts prints the plan and touches nothing", () => {
    const file = join(home, "outputs.json");
    writeFileSync(file, JSON.stringify(sampleOutputs({ platform: { kind: "sandbox", dir: join(home, "state"), osUser: "postgres", pgBinDir: "/usr/lib/postgresql/15/bin" } })));
    const result = tradeops("backup", "--dry-run", "--outputs", file);
    expect(result.code).toBe(0);
    expect(result.stdout).toMatch(/^Plan for 'backup' on stack 'unit' \(dry run: nothing will be changed\)\n1\. Check the backup repository/);
    expect(existsSync(join(home, "state"))).toBe(false);
  });
});

describe("what a new user meets (#6)", () => {
  it("S3: sandbox status on a home with no sandbox exits 3 saying there is none", () => {
    expectOneLineError(tradeops("sandbox", "status"), 3, /^tradeops: refused: no sandbox at .*\/sandbox \(next: start one with `tradeops sandbox up`/);
    expect(existsSync(join(home, "sandbox"))).toBe(false);
  });

  it("sandbox up --help shows the default base port and where the sandbox goes", () => {
    const result = tradeops("sandbox", "up", "--help");
    expect(result.code).toBe(0);
    expect(result.stdout.replace(/\s+/g, " ")).toContain("(default: 15400 for a new sandbox; an existing one keeps its own)");
    expect(result.stdout.replace(/\s+/g, " ")).toContain("(default: the active sandbox, else $TRADEOPS_HOME/sandbox)");
  });

  it("every feature ID that --help and the README show is defined in docs/features.md", () => {
    const defined = new Set([...readFileSync("docs/features.md", "utf8").matchAll(/^\| ([ZSCIT]\d+) \|/gm)].map((m) => m[1]));
    const shown = [tradeops("--help").stdout, tradeops("sandbox", "--help").stdout, readFileSync("README.md", "utf8")]
      .flatMap((text) => [...text.matchAll(/\b([ZSCIT]\d{1,2})\b/g)].map((m) => m[1]!));
    expect(shown.length).toBeGreaterThan(10);
    expect(shown.filter((id) => !defined.has(id))).toEqual([]);
  });
});

describe("inputs that could hang or flood the CLI are refused at once (#14)", () => {
  const timedRun = (...args: string[]) => {
    const startedAt = performance.now();
    const result = tradeops(...args);
    return { ...result, seconds: (performance.now() - startedAt) / 1000 };
  };

  it("--outputs naming a device, a FIFO, a directory or a 50 MiB file exits 2 within 1 s with one line", () => {
    const fifo = join(home, "outputs.fifo");
    spawnSync("mkfifo", [fifo]);
    const big = join(home, "big.json");
    writeFileSync(big, Buffer.alloc(50 * 1024 * 1024, 0x20));
    for (const [file, why] of [
      ["/dev/zero", "is a device, not a regular file"],
      [fifo, "is a FIFO (named pipe), not a regular file"],
      [home, "is a directory, not a regular file"],
      [big, "is 52428800 bytes, over the 1048576-byte limit"],
    ] as const) {
      const run = timedRun("health", "--outputs", file);
      expectOneLineError(run, 2, new RegExp(`^${escapeRegExp(`tradeops: outputs file ${file} ${why}`)}`));
      expect(run.seconds, file).toBeLessThan(1);
    }
  });

  it("TRADEOPS_HOME under /proc, empty, or not writable exits 2 within 1 s naming it", () => {
    const withHome = (value: string, ...args: string[]) => {
      const startedAt = performance.now();
      const run = spawnSync(process.execPath, ["bin/tradeops.mjs", ...args], { encoding: "utf8", env: { ...process.env, TRADEOPS_HOME: value } });
      return { code: run.status, stdout: run.stdout, stderr: run.stderr, seconds: (performance.now() - startedAt) / 1000 };
    };
    const proc = withHome("/proc/x", "backup");
    expectOneLineError(proc, 2, /^tradeops: TRADEOPS_HOME: \/proc\/x is under \/proc, not a real filesystem$/);
    expect(proc.seconds).toBeLessThan(1);
    expectOneLineError(withHome("", "health"), 2, /^tradeops: TRADEOPS_HOME is set but empty/);

    const locked = join(home, "read-only-home");
    mkdirSync(locked);
    // As root only the immutable flag makes a directory unwritable; as anyone else, its mode does.
    const root = process.getuid?.() === 0;
    if (root) expect(spawnSync("chattr", ["+i", locked]).status).toBe(0);
    else chmodSync(locked, 0o555);
    try {
      const run = withHome(join(locked, "home"), "sandbox", "up");
      expectOneLineError(run, 2, new RegExp(`^tradeops: TRADEOPS_HOME: ${locked} is not writable`));
      expect(run.seconds).toBeLessThan(1);
    } finally {
      if (root) spawnSync("chattr", ["-i", locked]);
    }
  });
});

describe("the small promises of the CLI (#17)", () => {
  const outputsFile = () => {
    const file = join(home, "unit-outputs.json");
    writeFileSync(file, JSON.stringify(sampleOutputs({ platform: { kind: "sandbox", dir: join(home, "state"), osUser: "postgres", pgBinDir: "/usr/lib/postgresql/15/bin" } })));
    return file;
  };

  it("--stack prod with --outputs of another stack (flag or TRADEOPS_STACK) exits 2 naming both, and acts on neither", () => {
    const file = outputsFile();
    expectOneLineError(tradeops("health", "--stack", "prod", "--outputs", file), 2, new RegExp(`^tradeops: --stack prod but ${escapeRegExp(file)} holds stack 'unit'`));
    const run = spawnSync(process.execPath, ["bin/tradeops.mjs", "health", "--outputs", file], { encoding: "utf8", env: { ...process.env, TRADEOPS_HOME: home, TRADEOPS_STACK: "prod" } });
    expectOneLineError({ code: run.status, stdout: run.stdout, stderr: run.stderr }, 2, /^tradeops: --stack prod but .* holds stack 'unit'/);
    expectOneLineError(tradeops("sandbox", "up", "--dry-run", "--stack", "prod"), 2, /^tradeops: --stack prod but `tradeops sandbox up` acts on stack 'sandbox'/);
  });

  it("--json prints one JSON document for flag-parsing errors too", () => {
    for (const args of [["backup", "--type", "bogus", "--json"], ["health", "--json", "--bogus"]]) {
      const run = tradeops(...args);
      expect(run.code).toBe(2);
      expect(JSON.parse(run.stdout)).toEqual({ exitCode: 2, error: expect.stringMatching(/argument 'bogus' is invalid|unknown option '--bogus'/) });
      expect(run.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  it("an outputs file with a UTF-8 byte-order mark is read like any other", () => {
    const file = join(home, "bom.json");
    writeFileSync(file, `\ufeff${readFileSync(outputsFile(), "utf8")}`);
    const run = tradeops("backup", "--dry-run", "--outputs", file);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(/^Plan for 'backup' on stack 'unit'/);
  });

  it("terminal escape codes in --stack are shown, never sent to the terminal", () => {
    const run = tradeops("health", "--stack", "\u001b[31mprod\u001b]0;pwned\u0007");
    expect(run.code).toBe(2);
    expect(run.stderr).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
    expect(run.stderr).toContain("\\u001b[31mprod");
  });
});

describe("positional arguments (#12)", () => {
  it("a required positional argument missing, or a value outside its choices, exits 2 with one line", () => {
    expectOneLineError(tradeops("redis", "clear-queue"), 2, /^tradeops: missing required argument 'name'$/);
    expectOneLineError(tradeops("redis", "clear-queue", "orders"), 2, /^tradeops: redis-clear-queue: queue: a queue: data-collection, data-collection:failed, /);
    expectOneLineError(tradeops("redis", "clear-queue", "notification", "extra"), 2, /^tradeops: too many arguments for 'clear-queue'/);
  });

  it("an optional positional argument shows as [name] in --help", () => {
    expect(tradeops("logs", "--help").stdout).toMatch(/^Usage: tradeops logs \[options\] \[component\]$/m);
    expect(tradeops("redis", "clear-queue", "--help").stdout).toMatch(/^Usage: tradeops redis clear-queue \[options\] <name>$/m);
  });
});
