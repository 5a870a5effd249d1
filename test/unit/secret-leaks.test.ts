/**
 * No secret fragment in any error (issue #17): every secret of the contract is planted into every
 * kind of damaged file tradeops reads — an outputs file, the sandbox's secrets.json — unquoted,
 * truncated right after it, or of the wrong type; stdout, stderr (--json and text) and the audit
 * log are then scanned for any 4-character piece of it.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { secretValues, StackOutputs } from "../../contract/outputs.ts";
import { sampleOutputs } from "../support/sample-outputs.ts";

const home = mkdtempSync(join(tmpdir(), "tradeops-leaks-"));
afterAll(() => rmSync(home, { recursive: true, force: true }));

/** Secrets over an alphabet no message, path or key name of ours uses four of in a row. */
function plantedSecret(index: number): string {
  const alphabet = "QZXJVKWq";
  let value = "";
  for (let i = 0, n = index * 7919 + 17; i < 28; i++, n = (n * 48271) % 2147483647) value += alphabet[n % alphabet.length];
  return value;
}

/**
 * Every secret field of the contract filled, each with its own planted value; `planted` is what to
 * look for (a webhook URL's secret is its token, not the public host in front of it).
 */
function outputsWithEverySecret(): { text: string; secrets: string[]; planted: string[] } {
  let index = 0;
  const planted: string[] = [];
  const next = () => {
    planted.push(plantedSecret(++index));
    return planted.at(-1)!;
  };
  const outputs = sampleOutputs({
    notifications: {
      telegram: { botToken: next(), chatId: "42" },
      discord: { webhookUrl: `https://discord.example/${next()}` },
      slack: { webhookUrl: `https://hooks.slack.example/${next()}` },
    },
  });
  outputs.database.password = next();
  outputs.database.replication.password = next();
  outputs.redis.password = next();
  outputs.opsApi.token = next();
  outputs.opsApi.killSwitchAdminKey = next();
  outputs.backup.accessKeyId = next();
  outputs.backup.secretAccessKey = next();
  const parsed = StackOutputs.parse(outputs);
  return { text: JSON.stringify(outputs, null, 2), secrets: secretValues(parsed), planted };
}

/** The three damages of one secret's JSON string in `text`. */
function damaged(text: string, secret: string): Record<string, string> {
  const quoted = JSON.stringify(secret);
  const at = text.indexOf(quoted);
  return {
    unquoted: text.replace(quoted, secret),
    truncated: text.slice(0, at + quoted.length - 1),
    "wrong type": text.replace(quoted, `[${quoted}]`),
  };
}

function run(args: string[]): Promise<{ code: number | null; out: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, ["bin/tradeops.mjs", ...args], { env: { ...process.env, TRADEOPS_HOME: home } });
    let out = "";
    child.stdout.on("data", (chunk) => (out += chunk));
    child.stderr.on("data", (chunk) => (out += chunk));
    child.on("close", (code) => done({ code, out }));
  });
}

/** Runs `jobs` four at a time (2 cores: the CLI start is the cost). */
async function pooled<T>(jobs: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < jobs.length; i += 4) results.push(...(await Promise.all(jobs.slice(i, i + 4).map((job) => job()))));
  return results;
}

/** Every 4-character piece of `secret` found in `text`. */
function fragments(secret: string, text: string): string[] {
  const found = new Set<string>();
  for (let i = 0; i + 4 <= secret.length; i++) if (text.includes(secret.slice(i, i + 4))) found.add(secret.slice(i, i + 4));
  return [...found];
}

function auditLog(): string {
  const stacks = join(home, "stacks");
  if (!existsSync(stacks)) return "";
  return readdirSync(stacks).map((stack) => (existsSync(join(stacks, stack, "audit.jsonl")) ? readFileSync(join(stacks, stack, "audit.jsonl"), "utf8") : "")).join("");
}

describe("no secret fragment in any error (#17)", () => {
  it("an outputs file damaged at any secret (unquoted, truncated after it, wrong type): nothing of it in stdout, stderr, --json or the audit log", async () => {
    const { text, secrets, planted } = outputsWithEverySecret();
    // Every secret() field of the contract is planted (a new one must be added here).
    expect(secrets).toHaveLength(10);
    expect(planted).toHaveLength(10);
    const cases = secrets.flatMap((secret, i) =>
      Object.entries(damaged(text, secret)).map(([kind, body]) => {
        const file = join(home, `outputs-${i}-${kind.replace(" ", "-")}.json`);
        writeFileSync(file, body);
        return { secret: planted.find((token) => secret.includes(token))!, kind, file };
      }),
    );
    const runs = await pooled(cases.flatMap(({ file }) => [() => run(["--outputs", file, "health", "--json"]), () => run(["--outputs", file, "backup"])]));
    expect(runs.map((r) => r.code)).toEqual(runs.map(() => 2));
    const everything = runs.map((r) => r.out).join("\n") + auditLog();
    for (const { secret } of cases) expect(fragments(secret, everything), secret).toEqual([]);
    // The errors still say where: the file, and the line/column or the key.
    expect(everything).toMatch(/is not valid JSON: line \d+, column \d+, at database\.password/);
    expect(everything).toMatch(/break the contract: database\.password: /);
  }, 180_000);

  it("a sandbox secrets.json damaged at any secret: status (text and --json), up and down leak nothing of it", async () => {
    const keys = ["pgPassword", "replicatorPassword", "redisPassword", "opsApiToken", "killSwitchAdminKey"];
    const secrets = Object.fromEntries(keys.map((key, i) => [key, plantedSecret(100 + i)]));
    const text = JSON.stringify(secrets, null, 2);
    const cases = keys.flatMap((key) =>
      Object.entries(damaged(text, secrets[key]!)).map(([kind, body]) => {
        const dir = join(home, "sandboxes", `${key}-${kind.replace(" ", "-")}`);
        mkdirSync(dir, { recursive: true });
        writeFileSync(join(dir, "secrets.json"), body, { mode: 0o600 });
        return { secret: secrets[key]!, dir };
      }),
    );
    const runs = await pooled(
      cases.flatMap(({ dir }) => [
        () => run(["sandbox", "status", "--dir", dir]),
        () => run(["sandbox", "status", "--dir", dir, "--json"]),
        () => run(["sandbox", "up", "--dir", dir, "--base-port", "29400"]),
        () => run(["sandbox", "down", "--dir", dir]),
      ]),
    );
    const everything = runs.map((r) => r.out).join("\n") + auditLog();
    for (const { secret } of cases) expect(fragments(secret, everything), secret).toEqual([]);
    expect(everything).toMatch(/secrets\.json is damaged \(not valid JSON: line \d+, column \d+, at pgPassword\)/);
    expect(everything).toMatch(/secrets\.json is damaged \(pgPassword: /);
  }, 180_000);
});
