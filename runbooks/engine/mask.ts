/**
 * Secret masking for everything a runbook prints or stores: progress lines, audit lines,
 * --json results and support bundles. Two nets: the exact secret values the outputs contract marks
 * with `secret()`, and keys that look like credentials in argument objects.
 */
const CREDENTIAL_KEY = /pass(word)?|secret|token|api[-_]?key|admin[-_]?key|private|credential|webhook|confirmation[-_]?code|^code$/i;
const MASK = "****";

export class Masker {
  private readonly values: string[];

  constructor(secretValues: Iterable<string>) {
    // Longest first so a secret that contains another is masked whole.
    this.values = [...new Set(secretValues)].filter((v) => v.length >= 3).sort((a, b) => b.length - a.length);
  }

  /** Replaces every known secret value, and URL passwords (`postgres://u:pw@h`), in free text. */
  text(line: string): string {
    let masked = line;
    for (const value of this.values) masked = masked.split(value).join(MASK);
    return masked.replace(/(\b[a-z][a-z0-9+.-]*:\/\/[^:/@\s]+:)[^@\s]+@/gi, `$1${MASK}@`);
  }

  /** Deep copy with credential-looking keys replaced and every string passed through `text`. */
  value<T>(input: T): T {
    const walk = (node: unknown, key?: string): unknown => {
      if (key !== undefined && CREDENTIAL_KEY.test(key) && node !== undefined && node !== null && node !== "") return MASK;
      if (typeof node === "string") return this.text(node);
      if (Array.isArray(node)) return node.map((item) => walk(item));
      if (node && typeof node === "object") {
        return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, walk(v, k)]));
      }
      return node;
    };
    return walk(input) as T;
  }
}
