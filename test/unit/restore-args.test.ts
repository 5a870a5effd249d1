/** `tradeops restore`'s inputs (#7): what --to-time accepts, and the flag combinations it refuses (exit 2). */
import { describe, expect, it } from "vitest";
import { RestoreArgs, parseTargetTime } from "../../runbooks/restore.ts";
import { snapshotId } from "../../runbooks/redis-snapshots.ts";

describe("restore inputs (#7)", () => {
  it("#7: --to-time takes ISO 8601 instants with a zone and nothing else", () => {
    expect(parseTargetTime("2026-12-05T16:45:00Z")?.toISOString()).toBe("2026-12-05T16:45:00.000Z");
    expect(parseTargetTime("2026-12-05 16:45:00.250+09:00")?.toISOString()).toBe("2026-12-05T07:45:00.250Z");
    expect(parseTargetTime("2026-12-05 16:45:00-0530")?.toISOString()).toBe("2026-12-05T22:15:00.000Z");
    expect(parseTargetTime("2026-12-05T16:45:00.123456+00")?.toISOString()).toBe("2026-12-05T16:45:00.123Z");
    for (const bad of ["2026-12-05T16:45:00", "2026-12-05", "16:45:00Z", "2026-02-30T10:00:00Z", "2026-13-01T10:00:00Z", "yesterday", "2026-12-05T25:00:00Z"]) {
      expect(parseTargetTime(bad), bad).toBeUndefined();
    }
  });

  it("#7: one target at most, something to restore, --db and --redis in separate runs", () => {
    expect(RestoreArgs.safeParse({ db: "latest", toTime: "2026-12-05T16:45:00Z" }).success).toBe(true);
    expect(RestoreArgs.safeParse({ db: "20261205-164500F_20261205-170000I" }).success).toBe(true);
    expect(RestoreArgs.safeParse({ redis: "latest" }).success).toBe(true);
    expect(RestoreArgs.safeParse({ redis: snapshotId(new Date("2026-12-05T17:01:02.123Z")) }).success).toBe(true);
    for (const bad of [{}, { db: "latest", toLsn: "0/1", toName: "x" }, { db: "latest", redis: "latest" }, { redis: "latest", toTime: "2026-12-05T16:45:00Z" }, { db: "yesterday" }, { db: "latest", toLsn: "zz" }]) {
      expect(RestoreArgs.safeParse(bad).success, JSON.stringify(bad)).toBe(false);
    }
  });
});
