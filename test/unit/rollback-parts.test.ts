/**
 * The pure parts of rollback, upgrade and stop (I4, Z7, Z4): which tables a down migration
 * touches (what its logical backup keeps), which steps lack a down migration, the watch window, and
 * how the app's last log lines say its drain ended.
 */
import { describe, expect, it } from "vitest";
import { missingSteps, type MigrationSet } from "../../clients/migrations.ts";
import { drainFromLog } from "../../runbooks/platform/app.ts";
import { tablesTouched } from "../../runbooks/rollback.ts";
import { parseWindow } from "../../runbooks/upgrade.ts";
import { appReleaseOf } from "../../infra/stacks/exports.ts";

const set = (files: Array<[number, "do" | "undo"]>) => ({ postgrator: undefined as never, files: files.map(([version, action]) => ({ version, action, name: "x", filename: `${version}.${action}.x.sql` })) }) satisfies MigrationSet;

describe("rollback parts", () => {
  it("I4: the tables a down migration drops, alters or truncates are the ones backed up first", () => {
    expect(tablesTouched("DROP TABLE fills;\nALTER TABLE orders DROP COLUMN client_order_id;\nalter table if exists \"Audit\" add x int; truncate table only public.t1")).toEqual(["fills", "orders", "Audit", "public.t1"]);
    expect(tablesTouched("DROP INDEX orders_client; -- no table")).toEqual([]);
  });

  it("I4: a move down needs every undo file between the versions; a move up needs the do files", () => {
    const files = set([[1, "do"], [1, "undo"], [2, "do"], [3, "do"], [3, "undo"]]);
    expect(missingSteps(files, 3, 1)).toEqual([2]);
    expect(missingSteps(files, 3, 2)).toEqual([]);
    expect(missingSteps(files, 1, 3)).toEqual([]);
  });

  it("Z7: the watch window reads 60s, 2m, 500ms and a bare number of seconds; anything else is refused", () => {
    expect([parseWindow("60s"), parseWindow("2m"), parseWindow("500ms"), parseWindow("90")]).toEqual([60_000, 120_000, 500, 90_000]);
    expect(parseWindow("1h")).toBeUndefined();
    expect(parseWindow("soon")).toBeUndefined();
  });

  it("Z4: the app's last log lines say how its drain ended", () => {
    expect(drainFromLog('{"msg":"shutting down: refusing new requests"}\n{"msg":"shut down"}')).toBe("drained cleanly");
    expect(drainFromLog('{"msg":"drain exceeded its cap; exiting with requests still in flight"}')).toBe("drain hit the 30 s cap");
    expect(drainFromLog('{"msg":"shutting down: refusing new requests"}')).toBe("killed before it drained");
    expect(drainFromLog("")).toBe("unknown");
  });

  it("I4: a Pulumi stack exports its release as the API image's tag, and the config key rollback sets", () => {
    expect(appReleaseOf("ghcr.io/your-org/trading-api:1.4.2")).toEqual({ current: "1.4.2", image: "ghcr.io/your-org/trading-api", imageConfigKey: "tradeops:apiImage" });
    expect(appReleaseOf("registry:5000/trading-api")).toEqual({ current: "latest", image: "registry:5000/trading-api", imageConfigKey: "tradeops:apiImage" });
  });
});
