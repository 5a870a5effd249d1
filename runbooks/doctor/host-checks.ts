/**
 * The machine under the components (T2, C6): free space of every data dir, the results dir.
 */
import { accessSync, constants, existsSync } from "node:fs";
import { userInfo } from "node:os";
import type { PgNode } from "../../contract/outputs.ts";
import { resultsDirOf } from "../cleanup.ts";
import { oneLine } from "../engine/errors.ts";
import { bytes } from "../format.ts";
import { NotAvailable } from "../platform/host.ts";
import { type DoctorCheck, fail, notAvailable, ok, warn } from "./check.ts";

const MIN_FREE = 0.2; // T2 "disk full": act before 80 % used
const WARN_FREE = 0.3;

/** T2 disk full, C6 results not saved: free space of each data dir. */
export const disk: DoctorCheck = {
  name: "disk",
  features: ["T2", "C6", "S6"],
  async run(reach) {
    const { database, platform } = reach.outputs;
    const dirs = [database.primary, database.standby].filter((n): n is PgNode => n !== undefined).map((n) => ({ what: `${n.name} data dir`, path: n.dataDir }));
    if (platform.kind === "sandbox") dirs.push({ what: "sandbox (logs, Redis, backups spool)", path: platform.dir });
    const rows: { what: string; path: string; free: number; total: number }[] = [];
    for (const dir of dirs) {
      try {
        const { freeBytes, totalBytes } = reach.host.freeSpace(dir.path);
        rows.push({ ...dir, free: freeBytes, total: totalBytes });
      } catch (error) {
        if (error instanceof NotAvailable) return notAvailable(error.message);
        return fail(`${dir.what} ${dir.path}: ${oneLine(error)}`, "the data dir is missing or unreadable", "check the volume is mounted");
      }
    }
    const describe = (r: (typeof rows)[number]) => `${r.what} ${r.path}: ${bytes(r.free)} free of ${bytes(r.total)} (${Math.round((100 * r.free) / r.total)} %)`;
    const low = rows.filter((r) => r.free < MIN_FREE * r.total);
    const fix = "free space: `tradeops maintenance retention`, `tradeops cleanup results --older-than 30d`, old WAL (`tradeops diagnose`: replication slots), or grow the volume";
    if (low.length) return fail(low.map(describe).join("; "), "less than 20 % free: PostgreSQL stops at 0 (PANIC: could not write), result files fail to save", fix);
    const tight = rows.filter((r) => r.free < WARN_FREE * r.total);
    if (tight.length) return warn(tight.map(describe).join("; "), "less than 30 % free", fix);
    return ok(rows.map(describe).join("; "));
  },
};

/** C6 "result files not saved": the results dir `cleanup results` uses must be writable and have room. */
export const resultFiles: DoctorCheck = {
  name: "result-files",
  features: ["C6", "C7"],
  async run(reach) {
    let dir: string;
    try {
      dir = resultsDirOf(reach.outputs);
    } catch (error) {
      return notAvailable(oneLine(error));
    }
    if (!existsSync(dir)) return notAvailable(`no results dir at ${dir}: nothing saves result files here`);
    try {
      accessSync(dir, constants.W_OK);
    } catch {
      return fail(`${dir} is not writable by ${userInfo().username}`, "result files cannot be saved: the dir's owner or mode", `\`chown\`/\`chmod\` ${dir} for the worker's user`);
    }
    const { freeBytes, totalBytes } = reach.host.freeSpace(dir);
    const saw = `${dir}: writable, ${bytes(freeBytes)} free of ${bytes(totalBytes)}`;
    if (freeBytes < MIN_FREE * totalBytes) return fail(saw, "less than 20 % free: saving result files fails", "`tradeops cleanup results --older-than 30d`");
    return ok(saw);
  },
};

