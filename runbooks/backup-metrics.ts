/**
 * Backup successes as a metric (I6, I7): `tradeops_backup_last_success_timestamp_seconds` in the
 * stack's node-exporter textfile-collector dir (`monitoring.textfileDir`), the input of the
 * BackupTooOld alert. Written whole and renamed into place, as the collector asks: a scrape never
 * reads half a file.
 */
import { renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StackOutputs } from "../contract/outputs.ts";

export const BACKUP_METRIC = "tradeops_backup_last_success_timestamp_seconds";

export function recordBackupSuccess(outputs: StackOutputs, kind: "pgbackrest", at: Date): string | undefined {
  const dir = outputs.monitoring?.textfileDir;
  if (!dir) return undefined;
  const file = join(dir, `tradeops_backup_${kind}.prom`);
  const text = [
    `# HELP ${BACKUP_METRIC} When the last backup of this kind succeeded (unix seconds).`,
    `# TYPE ${BACKUP_METRIC} gauge`,
    `${BACKUP_METRIC}{kind="${kind}",stack="${outputs.stack}"} ${Math.floor(at.getTime() / 1000)}`,
    "",
  ].join("\n");
  writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
  renameSync(`${file}.tmp`, file);
  return file;
}
