/**
 * `tradeops kill-switch on|off|status` — I1, the IFTB seed's emergency stop, its three methods in
 * the seed's order:
 *
 *   1. the API: POST /api/kill-switch {reason}; it pauses trading and issues a confirmation code
 *   2. the API does not answer: stop the bot (the platform adapter)
 *   3. and, so it stays stopped when someone restarts it, the flag row in `kill_switch_events`
 *      straight into the database (the bot reads it at start; only a forced deactivation lifts it)
 *
 * Deactivation takes the code issued at activation, or `--force` with the admin key — from a file
 * or the outputs, never from the command line, where it would land in shell history.
 */
import { readFileSync } from "node:fs";
import { z } from "zod";
import {
  KillSwitchActivated,
  KillSwitchDeactivated,
  KillSwitchStatus,
  KillSwitchConflict,
  TradingStatus,
} from "../contract/ops-api.ts";
import type { StackOutputs } from "../contract/outputs.ts";
import { onPg } from "./connect.ts";
import { StepFailure, UsageError, oneLine } from "./engine/errors.ts";
import { defineRunbook, type StepContext } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { ApiUnavailable, apiReadingRunbook, callOpsApi } from "./ops-api.ts";
import { loadOutputs } from "./outputs.ts";
import { appPlatformOf } from "./platform/app.ts";

const readStatus = async (outputs: StackOutputs, ctx: Pick<StepContext, "signal">) =>
  (await callOpsApi(outputs, "/api/kill-switch/status", { 200: KillSwitchStatus }, ctx)).body;

export type KillSwitchPath = "api" | "already active" | "fallback: app stopped + flag row" | "fallback: flag row (the app could not be stopped)" | "fallback: app stopped (no flag row)";

export const killSwitchOn = defineRunbook({
  command: ["kill-switch", "on"],
  name: "kill-switch-on",
  summary: "stop all trading now: through the API, else stop the app and set the flag row in the database",
  features: ["I1", "I9"],
  mutates: true,
  args: z.object({ reason: flag(z.string().trim().min(1).max(500), { description: "why: goes to the API, the flag row and the audit log", placeholder: "text" }) }),
  steps: ({ reason }, { outputs }) => {
    let apiFailure: string | undefined;
    let appStopped = false;
    return [
      {
        name: "Activate the kill switch through the ops API",
        plan: `POST /api/kill-switch {reason: ${JSON.stringify(reason)}}: trading pauses, the API issues the confirmation code`,
        action: async (ctx) => {
          ctx.record("startedAt", Date.now());
          try {
            const answer = await callOpsApi<KillSwitchActivated | KillSwitchStatus>(outputs, "/api/kill-switch", { 201: KillSwitchActivated, 409: KillSwitchConflict }, ctx, { reason });
            if (answer.status === 201) {
              const activated = answer.body as KillSwitchActivated;
              ctx.record("confirmationCode", activated.confirmation_code);
              ctx.record("activatedAt", activated.activated_at);
              ctx.record("path", "api" satisfies KillSwitchPath);
            } else {
              const active = answer.body as KillSwitchStatus;
              ctx.log(`already active since ${active.activated_at} (${active.reason}): no new code is issued`);
              ctx.record("activatedAt", active.activated_at);
              ctx.record("path", "already active" satisfies KillSwitchPath);
            }
          } catch (error) {
            if (!(error instanceof ApiUnavailable)) throw error;
            apiFailure = oneLine(error);
            ctx.record("apiFailure", apiFailure);
            ctx.log(`${apiFailure}: taking the fallbacks`);
          }
        },
      },
      {
        name: "Fallback 1 (only when the API did not answer): stop the app",
        plan: "the seed's method 2: stop the bot through the platform, so it places no order",
        action: async (ctx) => {
          if (!apiFailure) return ctx.log("not needed: the API activated the kill switch");
          try {
            const stop = await (await appPlatformOf(outputs)).stopApp((line) => ctx.log(line));
            appStopped = true;
            ctx.record("appStop", stop);
          } catch (error) {
            ctx.record("appStopFailure", oneLine(error));
            ctx.log(`could not stop the app (${oneLine(error)}): the flag row is the last resort`);
          }
        },
      },
      {
        name: "Fallback 2 (only when the API did not answer): insert the flag row into kill_switch_events",
        plan: "the seed's method 3: INSERT INTO kill_switch_events (reason) through the traffic endpoint; the bot reads it at start, and only a forced deactivation lifts it",
        action: async (ctx) => {
          if (!apiFailure) return ctx.log("not needed: the API activated the kill switch");
          try {
            const activatedAt = await insertFlagRow(outputs, reason, ctx);
            ctx.record("activatedAt", activatedAt);
            ctx.record("path", (appStopped ? "fallback: app stopped + flag row" : "fallback: flag row (the app could not be stopped)") satisfies KillSwitchPath);
          } catch (error) {
            if (!appStopped) throw new StepFailure(`no method worked: ${apiFailure}; the app could not be stopped; the flag row could not be written (${oneLine(error)})`, "stop the bot's process by hand NOW, then find out why the database does not answer");
            ctx.record("path", "fallback: app stopped (no flag row)" satisfies KillSwitchPath);
            ctx.log(`the flag row could not be written (${oneLine(error)}): the app is stopped; do not start it before the database answers and the kill switch is set`);
          }
        },
      },
      {
        name: "Verify that no order can be placed",
        plan: "the API reports the kill switch active and trading paused; on the fallback path, the app is not running",
        readOnly: true,
        action: async (ctx) => {
          if (apiFailure) {
            if (appStopped && (await (await appPlatformOf(outputs)).appRunning())) throw new StepFailure("the app runs again", "stop it by hand");
          } else {
            const status = (await callOpsApi(outputs, "/api/trading/status", { 200: TradingStatus }, ctx)).body;
            if (!status.kill_switch_active || !status.paused) throw new StepFailure("the API does not report the kill switch active", "read the app's log; stop the app by hand");
          }
          ctx.record("refusingOrdersAt", Date.now());
        },
      },
    ];
  },
  report: (facts) => {
    const path = facts.path as KillSwitchPath | undefined;
    const code = facts.confirmationCode as string | undefined;
    const lines = [`kill switch: ACTIVE (${path ?? "path unknown"})${facts.activatedAt ? ` since ${facts.activatedAt}` : ""}`];
    if (code) lines.push(`confirmation code: ${code}  (deactivate with: tradeops kill-switch off --code ${code})`);
    if (path === "already active") lines.push("it was already active: the code was issued at that activation");
    if (path?.startsWith("fallback")) {
      lines.push(`the API did not answer (${String(facts.apiFailure)}); no confirmation code exists: lift it with \`tradeops kill-switch off --force --admin-key-file FILE\` once the app is back`);
    }
    const elapsed = typeof facts.refusingOrdersAt === "number" && typeof facts.startedAt === "number" ? facts.refusingOrdersAt - facts.startedAt : undefined;
    if (elapsed !== undefined) lines.push(`first step → orders refused: ${(elapsed / 1000).toFixed(3)} s`);
    // `issuedCode`: the masker hides credential-looking keys (`code`, `confirmationCode`), and this one the operator must see.
    return { text: lines.join("\n"), json: { path: path ?? null, issuedCode: code ?? null, activatedAt: facts.activatedAt ?? null, apiFailure: facts.apiFailure ?? null, appStop: facts.appStop ?? null, elapsedMs: elapsed ?? null } };
  },
});

async function insertFlagRow(outputs: StackOutputs, reason: string, ctx: StepContext): Promise<string> {
  return onPg(
    outputs,
    outputs.database.traffic,
    async (client) => {
      const { rows } = await client.query<{ activated_at: Date }>("INSERT INTO kill_switch_events (reason) VALUES ($1) RETURNING activated_at", [`${reason} (set by tradeops: the API did not answer)`]);
      return rows[0]!.activated_at.toISOString();
    },
    { signal: ctx.signal, timeoutMs: 5_000 },
  );
}

const OffArgs = z
  .object({
    code: flag(z.string().trim().min(1).max(64).optional(), { description: "the confirmation code `kill-switch on` printed", placeholder: "CODE" }),
    force: flag(z.boolean().optional(), { description: "lift it with the admin key instead of the code (audited)" }),
    adminKeyFile: flag(z.string().min(1).optional(), { description: "file holding the admin key for --force (default: the outputs' opsApi.killSwitchAdminKey)", placeholder: "file" }),
  })
  .superRefine((args, issues) => {
    if (!args.code && !args.force) issues.addIssue({ code: "custom", path: ["code"], message: "pass --code CODE (printed at activation) or --force with the admin key" });
    if (args.code && args.force) issues.addIssue({ code: "custom", path: ["force"], message: "--code and --force exclude each other" });
    if (args.adminKeyFile && !args.force) issues.addIssue({ code: "custom", path: ["adminKeyFile"], message: "--admin-key-file goes with --force" });
  });
type OffArgs = z.infer<typeof OffArgs>;

export const killSwitchOff = defineRunbook({
  command: ["kill-switch", "off"],
  name: "kill-switch-off",
  summary: "lift the kill switch with its confirmation code, or --force with the admin key; trading stays paused",
  features: ["I1"],
  mutates: true,
  args: OffArgs,
  target: async (args, source) => ({ outputs: withAdminKey(await loadOutputs(source), args) }),
  steps: ({ code, force }, { outputs }) => [
    {
      name: force ? "Force-deactivate the kill switch with the admin key" : "Deactivate the kill switch with its confirmation code",
      plan: force ? "POST /api/kill-switch/force-deactivate {admin_key}: the emergency bypass, on the audit record" : "POST /api/kill-switch/deactivate {confirmation_code}; a wrong code is refused (exit 3)",
      isDone: async (ctx) => !(await readStatus(outputs, ctx)).active,
      action: async (ctx) => {
        const path = force ? "/api/kill-switch/force-deactivate" : "/api/kill-switch/deactivate";
        const body = force ? { admin_key: outputs.opsApi.killSwitchAdminKey } : { confirmation_code: code };
        const { body: done } = await callOpsApi(outputs, path, { 200: KillSwitchDeactivated }, ctx, body);
        ctx.record("deactivated", done);
      },
      verify: async (ctx) => {
        if ((await readStatus(outputs, ctx)).active) throw new StepFailure("the API still reports the kill switch active", "read the app's log");
      },
    },
  ],
  report: (facts) => {
    const done = facts.deactivated as KillSwitchDeactivated | undefined;
    const text = done
      ? `kill switch: off (by ${done.deactivated_by === "admin_key" ? "the admin key" : "its confirmation code"} at ${done.deactivated_at}); trading stays PAUSED: \`tradeops trading resume\` when ready`
      : "kill switch: was not active; nothing was done";
    return { text, json: { deactivated: done ?? null } };
  },
});

/** --force's key: the file named by --admin-key-file, else the outputs' own; it joins the outputs so every mask knows it. */
function withAdminKey(outputs: StackOutputs, args: OffArgs): StackOutputs {
  if (!args.force) return outputs;
  if (!args.adminKeyFile) {
    if (!outputs.opsApi.killSwitchAdminKey) throw new UsageError("--force needs the admin key: --admin-key-file FILE (the outputs name none)");
    return outputs;
  }
  let key: string;
  try {
    key = readFileSync(args.adminKeyFile, "utf8").trim();
  } catch (error) {
    throw new UsageError(`--admin-key-file ${args.adminKeyFile}: cannot read it (${(error as NodeJS.ErrnoException).code ?? oneLine(error)})`);
  }
  if (!key || key.includes("\n")) throw new UsageError(`--admin-key-file ${args.adminKeyFile}: expected the key alone on one line`);
  return { ...outputs, opsApi: { ...outputs.opsApi, killSwitchAdminKey: key } };
}

export const killSwitchStatus = apiReadingRunbook({
  command: ["kill-switch", "status"],
  summary: "is the kill switch active, since when and why",
  features: ["I1"],
  step: "Read the kill switch",
  path: "/api/kill-switch/status",
  schema: KillSwitchStatus,
  fact: "killSwitch",
  report: (status) => ({
    text: status.active
      ? `kill switch: ACTIVE since ${status.activated_at}${status.reason ? ` — ${status.reason}` : ""}${status.has_confirmation_code === false ? " (set without a code: lift it with --force)" : ""}`
      : "kill switch: off",
  }),
});
