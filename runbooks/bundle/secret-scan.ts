/**
 * The support bundle's last line of defence (T5, C9): every file that goes into the archive is
 * searched for every secret value of the stack outputs, in the spellings a secret takes in logs
 * and config files (raw, JSON-escaped, URL-encoded). `support-bundle` refuses to write an archive
 * with a hit, and the tests check a written bundle with this same code.
 */
import { readdirSync, readFileSync } from "node:fs";
import { join, relative } from "node:path";
import { secretValues, type StackOutputs } from "../../contract/outputs.ts";

export interface NamedSecret {
  /** Where the outputs hold it, e.g. `database.password`: what a hit names (never the value). */
  name: string;
  value: string;
}

export interface SecretHit {
  /** The file, relative to the scanned dir: `logs/ops-api.log`. */
  file: string;
  secret: string;
}

/** Every secret value of the outputs (as the contract marks them), with the key that holds it. */
export function namedSecrets(outputs: StackOutputs): NamedSecret[] {
  const values = new Set(secretValues(outputs));
  const found: NamedSecret[] = [];
  const walk = (node: unknown, path: string[]): void => {
    if (typeof node === "string" && values.has(node)) found.push({ name: path.join("."), value: node });
    else if (node && typeof node === "object") for (const [key, child] of Object.entries(node)) walk(child, [...path, key]);
  };
  walk(outputs, []);
  return found;
}

const spellings = (value: string) => [...new Set([value, JSON.stringify(value).slice(1, -1), encodeURIComponent(value)])].map((s) => Buffer.from(s));

/** Every (file, secret) pair where a file under `dir` contains a spelling of a secret. */
export function scanForSecrets(dir: string, secrets: NamedSecret[]): SecretHit[] {
  const needles = secrets.filter((s) => s.value.length > 0).map((s) => ({ name: s.name, spellings: spellings(s.value) }));
  const hits: SecretHit[] = [];
  for (const file of filesUnder(dir)) {
    const content = readFileSync(file);
    for (const needle of needles) {
      if (needle.spellings.some((spelling) => content.includes(spelling))) hits.push({ file: relative(dir, file), secret: needle.name });
    }
  }
  return hits;
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesUnder(path);
    return entry.isFile() ? [path] : [];
  });
}
