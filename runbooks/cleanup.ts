/**
 * `tradeops cleanup results|logs --older-than DURATION` — C4, C7, S12: result files of the
 * analysis worker and rotated log files past their age. The files are listed when the plan is
 * made: the dry run names them, the real run deletes exactly the files its plan named (`--yes`).
 */
import { existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { z } from "zod";
import type { StackOutputs } from "../contract/outputs.ts";
import { Duration, spell } from "./durations.ts";
import { Refusal } from "./engine/errors.ts";
import { defineRunbook, type Step } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { bytes } from "./format.ts";
import { loadOutputs } from "./outputs.ts";

interface OldFile {
  path: string;
  bytes: number;
  modified: string;
}

function filesOlderThan(dir: string, cutoff: number, keep: (name: string) => boolean = () => false): OldFile[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) return filesOlderThan(path, cutoff, keep);
    if (!entry.isFile() || keep(entry.name)) return [];
    const stat = statSync(path);
    return stat.mtimeMs < cutoff ? [{ path, bytes: stat.size, modified: stat.mtime.toISOString() }] : [];
  });
}

const MAX_LISTED = 50;

/** One destructive step that deletes exactly the files found when the plan was made. */
function deleteStep(what: string, dir: string, files: OldFile[], olderThan: number): Step {
  const total = files.reduce((sum, f) => sum + f.bytes, 0);
  const listed = files.slice(0, MAX_LISTED).map((f) => f.path);
  return {
    name: `Delete ${what} older than ${spell(olderThan)} under ${dir}`,
    plan: files.length
      ? `rm ${listed.join(" ")}${files.length > MAX_LISTED ? ` … and ${files.length - MAX_LISTED} more` : ""} (${files.length} files, ${bytes(total)})`
      : "no file is that old: nothing to delete",
    destructive: files.length > 0,
    action: async (ctx) => {
      let deleted = 0;
      for (const file of files) {
        // A file rewritten since the plan was made is young again: it stays.
        if (existsSync(file.path) && statSync(file.path).mtime.toISOString() === file.modified) {
          rmSync(file.path);
          deleted++;
        }
      }
      ctx.record(`deleted ${dir}`, { files: deleted, bytes: total, paths: files.map((f) => f.path) });
    },
  };
}

const olderThan = flag(Duration, { description: "files last modified longer ago than this, e.g. 30d", placeholder: "duration" });

export const cleanupResults = defineRunbook({
  command: ["cleanup", "results"],
  name: "cleanup-results",
  summary: "delete result files older than DURATION (C4, C7); --dry-run lists them",
  features: ["C4", "C7"],
  mutates: true,
  args: z.object({
    olderThan,
    dir: flag(z.string().min(1).optional(), { description: "the results dir", placeholder: "dir", defaultText: "<sandbox dir>/results on the sandbox" }),
  }),
  async target(args, source) {
    const outputs = await loadOutputs(source);
    const dir = args.dir ?? resultsDirOf(outputs);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Refusal(`no results dir at ${dir}`, "name it with --dir");
    return { outputs, dir, files: filesOlderThan(dir, Date.now() - args.olderThan) };
  },
  steps: (args, { dir, files }) => [deleteStep("result files", dir, files, args.olderThan)],
  report: (facts) => deletedReport(facts),
});

/** Live logs (`<component>.log`, `current`) are never touched: only rotated copies (`.1`, `.gz`, dated). */
const isLiveLog = (name: string) => /\.log$/.test(name) || name === "current";

export const cleanupLogs = defineRunbook({
  command: ["cleanup", "logs"],
  name: "cleanup-logs",
  summary: "delete rotated log files older than DURATION (S12); live logs stay; --dry-run lists them",
  features: ["S12", "Z2"],
  mutates: true,
  args: z.object({ olderThan }),
  async target(args, source) {
    const outputs = await loadOutputs(source);
    if (outputs.platform.kind !== "sandbox") {
      throw new Refusal(`on ${outputs.platform.kind} the runtime rotates and deletes logs (Z2: max-size 100m, max-file 5): nothing for tradeops to delete`);
    }
    const dirs = [join(outputs.platform.dir, "logs"), join(outputs.platform.dir, "pgbackrest", "log")].filter((d) => existsSync(d));
    const cutoff = Date.now() - args.olderThan;
    return { outputs, dirs: dirs.map((dir) => ({ dir, files: filesOlderThan(dir, cutoff, isLiveLog) })) };
  },
  steps: (args, { dirs }) => dirs.map(({ dir, files }) => deleteStep("rotated logs", dir, files, args.olderThan)),
  report: (facts) => deletedReport(facts),
});

/** Where the analysis worker saves result files (C4): on the sandbox `<dir>/results`; other outputs name none yet. */
export function resultsDirOf(outputs: StackOutputs): string {
  if (outputs.platform.kind === "sandbox") return join(outputs.platform.dir, "results");
  throw new Refusal(`the ${outputs.platform.kind} stack's outputs name no results dir`, "name it with --dir (a path on this machine)");
}

function deletedReport(facts: Record<string, unknown>) {
  const runs = Object.entries(facts).filter(([key]) => key.startsWith("deleted ")).map(([, value]) => value as { files: number; bytes: number; paths: string[] });
  const files = runs.reduce((sum, r) => sum + r.files, 0);
  const total = runs.reduce((sum, r) => sum + r.bytes, 0);
  return { text: `deleted ${files} files (${bytes(total)})`, json: { files, bytes: total, paths: runs.flatMap((r) => r.paths) } };
}
