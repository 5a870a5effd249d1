/**
 * The reference API's releases in the sandbox (I4, Z7), so a rollback here is real: the catalogue
 * (sandbox/ops-api/releases.json), which release runs and which ran before (`release.json` in the
 * sandbox dir), its migrations (sandbox/ops-api/migrations) and its live model set
 * (`models/live` in the sandbox dir, seeded with a first set on the first start).
 */
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { z } from "zod";
import { MODEL_VERSION_FILE } from "../contract/ops-api.ts";
import type { AppRelease } from "../contract/outputs.ts";
import type { SandboxLayout } from "./layout.ts";
import { readStateFile } from "./state-file.ts";

const opsApiRoot = join(dirname(fileURLToPath(import.meta.url)), "ops-api");
export const MIGRATIONS_DIR = join(opsApiRoot, "migrations");
export const SEED_MODEL_VERSION = "2026.11.0";

const ReleaseEntry = z.object({ version: z.string().min(1), schemaVersion: z.number().int().nonnegative(), fault: z.enum(["api-500"]).optional() });
export type ReleaseEntry = z.infer<typeof ReleaseEntry>;
const ReleaseState = z.object({ current: z.string().min(1), previous: z.string().min(1).optional() });
export type ReleaseState = z.infer<typeof ReleaseState>;
const Catalogue = z.object({ releases: z.array(ReleaseEntry).min(1), initial: ReleaseState });

export function releaseCatalogue(): z.infer<typeof Catalogue> {
  return Catalogue.parse(JSON.parse(readFileSync(join(opsApiRoot, "releases.json"), "utf8")));
}

export function releaseNamed(version: string): ReleaseEntry {
  const entry = releaseCatalogue().releases.find((release) => release.version === version);
  if (!entry) throw new Error(`the sandbox has no release ${version} (it has ${releaseCatalogue().releases.map((r) => r.version).join(", ")})`);
  return entry;
}

const stateFile = (layout: SandboxLayout) => join(layout.dir, "release.json");
export const modelDir = (layout: SandboxLayout) => join(layout.dir, "models", "live");

export function releaseState(layout: SandboxLayout): ReleaseState {
  return readStateFile(stateFile(layout), ReleaseState, "it records which release of the reference API runs: delete it to go back to the initial one") ?? releaseCatalogue().initial;
}

/** `version` runs from now on; the one that ran becomes the previous (a redeploy of the same keeps both). */
export function recordRelease(layout: SandboxLayout, version: string): ReleaseState {
  releaseNamed(version);
  const now = releaseState(layout);
  const next = now.current === version ? now : { current: version, previous: now.current };
  const file = stateFile(layout);
  writeFileSync(`${file}.tmp`, `${JSON.stringify(next, null, 2)}\n`, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
  return next;
}

/** The environment the API process of the current release gets. */
export function releaseEnv(layout: SandboxLayout): Record<string, string> {
  const release = releaseNamed(releaseState(layout).current);
  seedModel(layout);
  return {
    OPS_API_VERSION: release.version,
    OPS_API_MIGRATIONS_DIR: MIGRATIONS_DIR,
    OPS_API_SCHEMA_VERSION: String(release.schemaVersion),
    OPS_API_MODEL_DIR: modelDir(layout),
    OPS_API_FAULT: release.fault ?? "none",
  };
}

/** The outputs' `app`: what rollback, upgrade and the model sets need. */
export function appOutputs(layout: SandboxLayout): AppRelease {
  const { current, previous } = releaseState(layout);
  return { current, previous, migrations: { dir: MIGRATIONS_DIR, table: "schemaversion" }, models: { dir: modelDir(layout), reloadPath: "/api/model/reload" } };
}

/** A first model set, so the API has a model version to report from its first start. */
function seedModel(layout: SandboxLayout): void {
  const dir = modelDir(layout);
  if (existsSync(join(dir, MODEL_VERSION_FILE))) return;
  mkdirSync(dir, { recursive: true });
  // 64 KiB of deterministic "weights": the same seed set in every sandbox.
  const weights = Buffer.concat(Array.from({ length: 2048 }, (_, i) => createHash("sha256").update(`${SEED_MODEL_VERSION}:${i}`).digest()));
  writeFileSync(join(dir, "weights.bin"), weights);
  writeFileSync(join(dir, "config.json"), `${JSON.stringify({ model: "signal-lgbm", features: 42, threshold: 0.61 }, null, 2)}\n`);
  writeFileSync(join(dir, MODEL_VERSION_FILE), `${SEED_MODEL_VERSION}\n`);
}
