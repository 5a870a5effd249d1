/**
 * Model sets in the stack's backup bucket (I4, I6, I7: per version, kept 90 d): the files of a
 * model dir under `models/<version>/files/…` and, written last, `models/<version>/manifest.json`
 * (every file's path, size and SHA-256). A set without its manifest is an interrupted upload:
 * never listed, never restored.
 *
 * A model dir is the app's own convention (contract/ops-api.ts): its files and a `VERSION` file.
 * Restoring one is the seed's ML model rollback: download, verify every checksum, put the set in
 * place (the live one kept aside: the undo), reload through the API, confirm the API reports it.
 */
import { createHash } from "node:crypto";
import { createReadStream, existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { dirname, join, relative, resolve, sep } from "node:path";
import { z } from "zod";
import { MODEL_VERSION_FILE, ModelStatus } from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { LivenessReport } from "../contract/ops-api.ts";
import { Refusal, StepFailure, UsageError, oneLine } from "./engine/errors.ts";
import type { Step, StepContext } from "./engine/runbook.ts";
import { bytes } from "./format.ts";
import { callOpsApi } from "./ops-api.ts";
import { checkBackupRepository } from "./probes.ts";
import { downloadObject, listManifests, putJson, uploadFile } from "./bucket-objects.ts";

export const MODELS_PREFIX = "models/";
export const ModelVersion = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, "a model version such as 2026.12.1 (letters, digits, '.', '_', '-')");

const ModelFile = z.object({ path: z.string().min(1), key: z.string().min(1), sizeBytes: z.number().int().nonnegative(), sha256: z.string().regex(/^[0-9a-f]{64}$/) });
export const ModelManifest = z.object({
  kind: z.literal("model-set"),
  version: ModelVersion,
  takenAt: z.string(),
  /** The dir it was taken from, on the machine that took it. */
  source: z.string(),
  files: z.array(ModelFile).min(1),
  totalBytes: z.number().int().nonnegative(),
});
export type ModelManifest = z.infer<typeof ModelManifest>;
type LocalFile = { path: string; sizeBytes: number; sha256: string };

const manifestKey = (version: string) => `${MODELS_PREFIX}${version}/manifest.json`;
const fileKey = (version: string, path: string) => `${MODELS_PREFIX}${version}/files/${path.split(sep).join("/")}`;

/** The model dir a command acts on: `--models DIR`, else the outputs' `app.models.dir`. */
export function modelDirOf(outputs: StackOutputs, dir?: string): string {
  const chosen = dir ?? outputs.app?.models?.dir;
  if (!chosen) throw new UsageError("name the model dir: --models DIR (the outputs name none in app.models.dir)");
  return resolve(chosen);
}

/** Every complete model set (with its manifest), oldest first. */
export async function listModelSets(outputs: StackOutputs, signal?: AbortSignal): Promise<ModelManifest[]> {
  return (await listManifests(outputs, MODELS_PREFIX, ModelManifest, signal)).sort((a, b) => a.takenAt.localeCompare(b.takenAt));
}

/** VERSION and every file of a model dir with its SHA-256. */
export async function readModelDir(dir: string): Promise<{ version: string; files: LocalFile[] }> {
  let version: string;
  try {
    version = readFileSync(join(dir, MODEL_VERSION_FILE), "utf8").trim();
  } catch (error) {
    throw new Refusal(`${dir} is not a model dir: no readable ${MODEL_VERSION_FILE} file (${(error as NodeJS.ErrnoException).code ?? oneLine(error)})`, `a model set is a dir of files with a ${MODEL_VERSION_FILE} file naming its version`);
  }
  const parsed = ModelVersion.safeParse(version);
  if (!parsed.success) throw new Refusal(`${join(dir, MODEL_VERSION_FILE)}: ${parsed.error.issues[0]!.message}`);
  const paths = readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)))
    .sort();
  const files: LocalFile[] = [];
  for (const path of paths) files.push({ path, ...(await hashFile(join(dir, path))) });
  return { version: parsed.data, files };
}

async function hashFile(file: string): Promise<{ sizeBytes: number; sha256: string }> {
  const hash = createHash("sha256");
  let sizeBytes = 0;
  for await (const chunk of createReadStream(file) as AsyncIterable<Buffer>) {
    hash.update(chunk);
    sizeBytes += chunk.length;
  }
  return { sizeBytes, sha256: hash.digest("hex") };
}

const sameFiles = (a: { path: string; sha256: string }[], b: { path: string; sha256: string }[]) =>
  a.length === b.length && a.every((file, i) => file.path === b[i]!.path && file.sha256 === b[i]!.sha256);

// ---- backup --models --------------------------------------------------------------------------------

/** `tradeops backup --models [DIR]`: the set in DIR, uploaded as one version with its manifest last. */
export function modelBackupSteps(outputs: StackOutputs, dirArg?: string): Step[] {
  const dir = modelDirOf(outputs, dirArg);
  let local: { version: string; files: LocalFile[] } | undefined;
  const uploaded: z.infer<typeof ModelFile>[] = [];
  const alreadyThere = async (ctx: StepContext) => {
    local ??= await readModelDir(dir);
    const existing = (await listModelSets(outputs, ctx.signal)).find((set) => set.version === local!.version);
    if (existing && !sameFiles(existing.files, local.files)) {
      throw new Refusal(`model version ${local.version} is already in the bucket with other files`, `a version names one set for good: write a new ${MODEL_VERSION_FILE} in ${dir}, then back it up`);
    }
    if (existing) ctx.record("modelSet", existing);
    return existing !== undefined;
  };
  return [
    {
      name: "Read the model set and check the backup bucket",
      plan: `${dir}: its ${MODEL_VERSION_FILE} and every file's SHA-256; s3://${outputs.backup.bucket}/${MODELS_PREFIX} answers`,
      readOnly: true,
      action: async (ctx) => {
        await checkBackupRepository(outputs, { signal: ctx.signal, timeoutMs: 3_000 }).catch((error: unknown) => {
          throw new Refusal(`backup repository does not answer: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        local = await readModelDir(dir);
        ctx.log(`version ${local.version}: ${local.files.length} file(s)`);
      },
    },
    {
      name: "Upload the model files",
      plan: `each file to models/<version>/files/ (multipart, SHA-256 computed on the way)`,
      isDone: alreadyThere,
      action: async (ctx) => {
        for (const file of local!.files) {
          const key = fileKey(local!.version, file.path);
          const sent = await uploadFile(outputs, join(dir, file.path), key, ctx.signal);
          if (sent.sha256 !== file.sha256) throw new StepFailure(`${file.path} changed while it was uploaded`, "let whatever writes the model dir finish, then re-run");
          uploaded.push({ path: file.path, key, ...sent });
        }
      },
    },
    {
      name: "Write the manifest (last: only a complete set is ever listed)",
      plan: "models/<version>/manifest.json: version, files, sizes, SHA-256s",
      isDone: alreadyThere,
      action: async (ctx) => {
        const manifest: ModelManifest = {
          kind: "model-set",
          version: local!.version,
          takenAt: new Date().toISOString(),
          source: dir,
          files: uploaded,
          totalBytes: uploaded.reduce((sum, file) => sum + file.sizeBytes, 0),
        };
        await putJson(outputs, manifestKey(manifest.version), manifest, ctx.signal);
        ctx.record("modelSet", manifest);
      },
      verify: async (ctx) => {
        if (!(await listModelSets(outputs, ctx.signal)).some((set) => set.version === local!.version)) throw new StepFailure(`model set ${local!.version} is not listed in the bucket`);
      },
    },
  ];
}

// ---- restore --models / rollback model -------------------------------------------------------------

/** The API's model version, from `/health`; undefined when it reports none or does not answer. */
export async function apiModelVersion(outputs: StackOutputs, ctx: Pick<StepContext, "signal">): Promise<string | undefined> {
  return (await callOpsApi(outputs, "/health", { 200: LivenessReport }, ctx).catch(() => undefined))?.body.model_version;
}

/**
 * `restore --models VERSION` and `rollback model --to VERSION`: download that set, verify every
 * checksum, put it in place (the live set kept aside), reload it through the API, confirm.
 */
export function modelRestoreSteps(outputs: StackOutputs, wanted: string | undefined): Step[] {
  const live = modelDirOf(outputs);
  const reloadPath = outputs.app?.models?.reloadPath ?? "/api/model/reload";
  let version = wanted ?? "";
  const staging = () => `${live}.incoming-${version}`;
  let manifest: ModelManifest | undefined;
  let aside: string | undefined;
  const inPlace = async (ctx: StepContext) => (await apiModelVersion(outputs, ctx)) === version && liveVersion(live) === version;
  return [
    {
      name: `Find model set ${wanted ?? "(the one backed up before the live one)"} in the backup bucket`,
      plan: `s3://${outputs.backup.bucket}/${MODELS_PREFIX}<version>/manifest.json must exist (a set without its manifest is incomplete)`,
      readOnly: true,
      action: async (ctx) => {
        const sets = await listModelSets(outputs, ctx.signal).catch((error: unknown) => {
          throw new Refusal(`cannot list the model sets: ${oneLine(error)}`, "run `tradeops health`: the S3 store must answer");
        });
        if (!wanted) {
          const current = liveVersion(live);
          const at = sets.findIndex((set) => set.version === current);
          if (at < 1) throw new Refusal(`no model set was backed up before the live one (${current ?? "none"})`, "name one: `tradeops backups list` shows the model versions");
          version = sets[at - 1]!.version;
          ctx.log(`the set backed up before ${current}: ${version}`);
        }
        manifest = sets.find((set) => set.version === version);
        if (!manifest) throw new Refusal(`no model set ${version} in the bucket (it has: ${sets.map((set) => set.version).join(", ") || "none"})`, "`tradeops backups list` shows the model versions");
        ctx.record("modelSet", { version, files: manifest.files.length, totalBytes: manifest.totalBytes });
      },
    },
    {
      name: "Download the set and verify every checksum",
      plan: `into ${live}.incoming-<version>; each file's SHA-256 and size must match the manifest, or nothing is put in place`,
      isDone: inPlace,
      action: async (ctx) => {
        // The step ran (it was not in place): the report must not call a failed restore a no-op.
        ctx.record("modelRestoreStarted", true);
        rmSync(staging(), { recursive: true, force: true });
        for (const file of manifest!.files) {
          const dest = join(staging(), file.path);
          if (!dest.startsWith(`${staging()}${sep}`)) throw new StepFailure(`the manifest names a path outside the model dir: ${file.path}`, "the set is not trustworthy: do not restore it");
          mkdirSync(dirname(dest), { recursive: true });
          const got = await downloadObject(outputs, file.key, dest, ctx.signal);
          if (got.sha256 !== file.sha256 || got.sizeBytes !== file.sizeBytes) {
            rmSync(staging(), { recursive: true, force: true });
            throw new StepFailure(`${file.path} does not match the manifest (SHA-256 ${got.sha256.slice(0, 12)}… vs ${file.sha256.slice(0, 12)}…)`, "the set in the bucket is damaged: restore another version");
          }
        }
        if (liveVersion(staging()) !== version) throw new StepFailure(`the downloaded set's ${MODEL_VERSION_FILE} does not say ${version}`, "the set in the bucket is damaged: restore another version");
      },
    },
    {
      name: "Put the model set in place",
      plan: `${live} is renamed to ${live}.before-<time> (kept: the undo); the verified set takes its place`,
      isDone: inPlace,
      action: async (ctx) => {
        // A re-run after the move: the verified set is already live.
        if (!existsSync(staging()) && liveVersion(live) === version) return;
        if (existsSync(live)) {
          aside = `${live}.before-${new Date().toISOString().replace(/[:.]/g, "-")}`;
          renameSync(live, aside);
          ctx.record("previousModelDir", aside);
        }
        renameSync(staging(), live);
      },
      undo: {
        plan: "put the previous set back",
        run: async () => {
          if (!aside) return;
          rmSync(live, { recursive: true, force: true });
          renameSync(aside, live);
        },
      },
    },
    {
      name: "Reload the model through the ops API and confirm the version",
      plan: `POST ${reloadPath}; the API must then report model version ${version} on /health`,
      isDone: inPlace,
      action: async (ctx) => {
        const { body } = await callOpsApi(outputs, reloadPath, { 200: ModelStatus }, ctx, {});
        if (body.version !== version) throw new StepFailure(`the API loaded model ${body.version}, not ${version}`, `check ${live}`);
      },
      verify: async (ctx) => {
        const reported = await apiModelVersion(outputs, ctx);
        ctx.record("modelVersion", reported ?? null);
        if (reported !== version) throw new StepFailure(`the API reports model ${reported ?? "none"}, not ${version}`, "read the app's log");
      },
    },
  ];
}

/** The report of `backup --models` (the manifest) and of `restore --models` (what the API reports). */
export function modelSetReport(facts: Record<string, unknown>): { text: string; json: unknown } {
  const set = facts.modelSet as { version: string; files: unknown[] | number; totalBytes: number };
  const files = Array.isArray(set.files) ? set.files.length : set.files;
  // A restore records the set it found as a count of files; a backup, the whole manifest.
  const restoring = typeof set.files === "number";
  if (restoring && facts.modelVersion === undefined) {
    if (facts.modelRestoreStarted) return { text: `model set ${set.version}: NOT restored (see the failed step)`, json: { restored: null, modelVersion: null, previousModelDir: facts.previousModelDir ?? null } };
    return { text: `model set ${set.version}: already in place and loaded by the API; nothing was done`, json: { restored: null, modelVersion: set.version, previousModelDir: null } };
  }
  if (facts.modelVersion !== undefined) {
    return { text: `model set ${set.version} in place (${files} file(s), ${bytes(set.totalBytes)}); the API reports model ${String(facts.modelVersion)}${facts.previousModelDir ? `; the previous set is kept in ${String(facts.previousModelDir)}` : ""}`, json: { restored: set.version, modelVersion: facts.modelVersion, previousModelDir: facts.previousModelDir ?? null } };
  }
  return { text: `model set ${set.version}: ${files} file(s), ${bytes(set.totalBytes)} in s3 under ${MODELS_PREFIX}${set.version}/`, json: set };
}

function liveVersion(dir: string): string | undefined {
  try {
    return readFileSync(join(dir, MODEL_VERSION_FILE), "utf8").trim();
  } catch {
    return undefined;
  }
}
