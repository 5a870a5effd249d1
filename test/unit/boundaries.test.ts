/**
 * The house rules of imports (issue #6): the sandbox is a platform of its own, reached by the
 * runbooks only through its one interface; the shared clients and the contract depend on neither.
 * Read from the source with TypeScript's own import scanner (static and dynamic imports alike).
 */
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = resolve(import.meta.dirname, "..", "..");

function sourceFiles(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile() && entry.name.endsWith(".ts"))
    .map((entry) => relative(root, join(entry.parentPath, entry.name)));
}

/** Every relative import of a file, as a path from the repo root. */
function importsOf(file: string): string[] {
  const { importedFiles } = ts.preProcessFile(readFileSync(join(root, file), "utf8"), true, true);
  return importedFiles
    .map((imported) => imported.fileName)
    .filter((specifier) => specifier.startsWith("."))
    .map((specifier) => relative(root, resolve(root, dirname(file), specifier)));
}

/** `file → import` pairs of `folder` whose import breaks `allowed`. */
function violations(folder: string, allowed: (target: string) => boolean): string[] {
  return sourceFiles(folder).flatMap((file) => importsOf(file).filter((target) => !allowed(target)).map((target) => `${file} → ${target}`));
}

const inFolder = (target: string, ...folders: string[]) => folders.some((folder) => target.startsWith(`${folder}/`));

describe("import boundaries", () => {
  it("the runbooks reach the sandbox only through sandbox/index.ts", () => {
    expect(violations("runbooks", (target) => !inFolder(target, "sandbox") || target === "sandbox/index.ts")).toEqual([]);
  });

  it("the sandbox never imports the runbooks", () => {
    expect(violations("sandbox", (target) => !inFolder(target, "runbooks"))).toEqual([]);
  });

  it("the shared clients import only each other and the contract", () => {
    expect(violations("clients", (target) => inFolder(target, "clients", "contract"))).toEqual([]);
  });

  it("the contract imports nothing of ours but itself", () => {
    expect(violations("contract", (target) => inFolder(target, "contract"))).toEqual([]);
  });

  it("the Pulumi program imports neither the runbooks nor the sandbox", () => {
    expect(violations("infra", (target) => !inFolder(target, "runbooks", "sandbox"))).toEqual([]);
  });

  it("catches a forbidden import when one is added (the check itself works)", () => {
    const imports = importsOf("sandbox/components/redis.ts");
    expect(imports).toContain("clients/redis.ts");
    expect(imports.filter((target) => inFolder(target, "runbooks"))).toEqual([]);
    // The scanner sees dynamic imports too: the interface loads its implementation lazily.
    expect(importsOf("sandbox/index.ts")).toContain("sandbox/sandbox.ts");
  });
});
