/**
 * The support bundle's secret scanner (T5, C9): every secret of the outputs, by the key that holds
 * it, in each spelling a secret takes in files (raw, JSON-escaped, URL-encoded).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { StackOutputs } from "../../contract/outputs.ts";
import { namedSecrets, scanForSecrets } from "../../runbooks/bundle/secret-scan.ts";
import { SECRETS, sampleOutputs } from "../support/sample-outputs.ts";

const outputs = StackOutputs.parse(sampleOutputs());
const dir = mkdtempSync(join(tmpdir(), "scan-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("secret scanner (T5, C9)", () => {
  it("C9: names every secret of the outputs by its key", () => {
    const names = namedSecrets(outputs).map((s) => s.name);
    expect(names).toEqual(expect.arrayContaining(["database.password", "opsApi.token", "backup.secretAccessKey"]));
    expect(namedSecrets(outputs).find((s) => s.name === "database.password")?.value).toBe(outputs.database.password);
  });

  it("C9: finds a secret raw, JSON-escaped or URL-encoded, naming the file and the key, and nothing in clean files", () => {
    const secret = { name: "database.password", value: 'p@ss"w/rd' };
    mkdirSync(join(dir, "logs"), { recursive: true });
    writeFileSync(join(dir, "logs", "raw.log"), `password=${secret.value}\n`);
    writeFileSync(join(dir, "logs", "json.log"), `${JSON.stringify({ url: `x ${secret.value}` })}\n`);
    writeFileSync(join(dir, "logs", "url.log"), `postgres://u:${encodeURIComponent(secret.value)}@h/db\n`);
    writeFileSync(join(dir, "clean.txt"), `password=****\n${Object.keys(SECRETS).join(" ")}\n`);
    expect(scanForSecrets(dir, [secret]).sort((a, b) => a.file.localeCompare(b.file))).toEqual([
      { file: "logs/json.log", secret: "database.password" },
      { file: "logs/raw.log", secret: "database.password" },
      { file: "logs/url.log", secret: "database.password" },
    ]);
  });
});
