/**
 * `tradeops sandbox up | down | status`: the whole stack as real processes on 127.0.0.1, one step
 * per component, in the seed's start order (Z4: infrastructure first, then the API; S1's stack).
 *
 * The sandbox is reached through its one interface (sandbox/index.ts): these runbooks open it
 * (layout and secrets resolved once), wrap its tasks as engine steps, and remember which sandbox
 * is the active one, so `health`, `status` and `down` without `--dir` act on the one `up` started.
 */
import { z } from "zod";
import { DEFAULT_BASE_PORT, openSandbox, sandboxExistsAt, SandboxStateFileError, type ComponentStatus, type Sandbox, type SandboxTask } from "../sandbox/index.ts";
import { Refusal, StepFailure, UsageError, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type Target } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { table } from "./format.ts";
import { forgetActiveSandbox, recordActiveSandbox, sandboxDir, unusableDir } from "./state.ts";

const dir = flag(z.string().min(1).optional(), {
  description: "sandbox directory",
  defaultText: "the active sandbox, else $TRADEOPS_HOME/sandbox",
});

export const SandboxUpArgs = z.object({
  dir,
  basePort: flag(z.number().int().min(1024).max(65_528).optional(), {
    description: "first of the sandbox's ports (pg-a is base+1 … node-exporter base+11; a DR site base+12 … base+14)",
    placeholder: "port",
    defaultText: `${DEFAULT_BASE_PORT} for a new sandbox; an existing one keeps its own`,
  }),
  mode: flag(z.enum(["sync", "async"]).optional(), {
    description: "replication mode",
    switches: {
      sync: "synchronous replication (I5: RPO 0; the default for a new sandbox)",
      async: "asynchronous replication (without a flag an existing sandbox keeps its mode)",
    },
  }),
  withDr: flag(z.boolean().optional(), {
    description: "add a DR site (I5, I6): pg-dr restored from the repository and fed by archive-get, its API at pilot light, the site switch (ports base+12 … base+14); a sandbox that has one keeps it",
  }),
});
export type SandboxUpArgs = z.infer<typeof SandboxUpArgs>;

export interface SandboxTarget extends Target {
  sandbox: Sandbox;
}

/** The sandbox these args name; its damaged state files are a usage error naming file and remedy. */
export async function sandboxTarget(args: { dir?: string; basePort?: number; mode?: "sync" | "async"; withDr?: boolean }): Promise<SandboxTarget> {
  const dir = sandboxDir(args.dir);
  const problem = unusableDir(dir);
  if (problem) throw new UsageError(`${problem}: --dir must name the sandbox's directory`);
  try {
    const sandbox = await openSandbox({ dir, basePort: args.basePort, mode: args.mode, withDr: args.withDr });
    return { outputs: sandbox.outputs, sandbox };
  } catch (error) {
    throw new UsageError(oneLine(error));
  }
}

/** `status` and `down` of a dir that holds no sandbox: say so instead of listing eight "down". */
async function existingTarget(args: { dir?: string }): Promise<SandboxTarget> {
  const target = await sandboxTarget(args);
  if (!(await sandboxExistsAt(target.sandbox.dir))) {
    throw new Refusal(`no sandbox at ${target.sandbox.dir}`, "start one with `tradeops sandbox up` (or name its --dir)");
  }
  return target;
}

/** A sandbox task as an engine step: same name, plan, checks and undo. */
function stepOf(task: SandboxTask): Step {
  return {
    name: task.name,
    plan: task.plan,
    destructive: task.destructive,
    isDone: task.isDone && (() => task.isDone!()),
    precondition: task.precondition && (() => task.precondition!()),
    action: (ctx) => task.action((line) => ctx.log(line)),
    verify: task.verify && (() => task.verify!()),
    undo: task.undo && { plan: task.undo.plan, run: (ctx) => task.undo!.run((line) => ctx.log(line)) },
    onFailure: task.onFailure,
  };
}

// ---- up -------------------------------------------------------------------------------------------

export const sandboxUp = defineRunbook({
  command: ["sandbox", "up"],
  name: "sandbox-up",
  summary: "start PostgreSQL primary + standby, HAProxy, Redis, S3 store, pgBackRest, ops API, Prometheus",
  features: ["S1", "Z4", "I5", "I7", "S5", "S7"],
  mutates: true,
  args: SandboxUpArgs,
  target: (args) => sandboxTarget(args),
  steps(_args, { sandbox }) {
    let tasks: SandboxTask[];
    try {
      tasks = sandbox.upTasks();
    } catch (error) {
      // A damaged secrets.json: up would start processes with credentials nobody has.
      if (error instanceof SandboxStateFileError) throw new UsageError(error.message);
      throw error;
    }
    const [prepare, ...rest] = tasks.map(stepOf);
    const remember: Step = {
      ...prepare!,
      action: async (ctx) => {
        await prepare!.action(ctx);
        // From here on, commands without --dir act on this sandbox.
        recordActiveSandbox(sandbox.dir);
        ctx.record("sandboxDir", sandbox.dir);
        ctx.record("outputsFile", sandbox.outputsFile);
      },
    };
    return [remember, ...rest, statusStep(sandbox, "Check that every component answers", { requireUp: true })];
  },
  report: statusReport,
});

// ---- down -----------------------------------------------------------------------------------------

export const sandboxDown = defineRunbook({
  command: ["sandbox", "down"],
  name: "sandbox-down",
  summary: "stop every sandbox process (by PID); --purge also deletes its data",
  features: ["Z4", "S3"],
  mutates: true,
  args: z.object({
    dir,
    purge: flag(z.boolean().optional(), { description: "delete the sandbox directory and all its data (destructive)" }),
  }),
  target: (args) => existingTarget(args),
  steps({ purge }, { sandbox }) {
    const steps = sandbox.downTasks({ purge }).map(stepOf);
    if (!purge) return steps;
    const purgeStep = steps.at(-1)!;
    return [
      ...steps.slice(0, -1),
      {
        ...purgeStep,
        action: async (ctx) => {
          await purgeStep.action(ctx);
          forgetActiveSandbox(sandbox.dir);
        },
      },
    ];
  },
});

// ---- status ---------------------------------------------------------------------------------------

export const sandboxStatus = defineRunbook({
  command: ["sandbox", "status"],
  name: "sandbox-status",
  summary: "each sandbox process: pid, port, up or down",
  features: ["S3"],
  mutates: false,
  args: z.object({ dir }),
  target: (args) => existingTarget(args),
  steps: (_args, { sandbox }) => [statusStep(sandbox, "Check each sandbox component", { requireUp: false })],
  report: statusReport,
});

/** `requireUp`: fail naming every component that is down. */
function statusStep(sandbox: Sandbox, name: string, options: { requireUp: boolean }): Step {
  return {
    name,
    async action(ctx) {
      const { components, warning } = await sandbox.status();
      ctx.record("sandboxDir", sandbox.dir);
      ctx.record("components", components);
      if (warning) {
        ctx.log(warning);
        ctx.record("warning", warning);
      }
      const down = components.filter((component) => component.state === "down").map((component) => component.name);
      if (options.requireUp && down.length) {
        throw new StepFailure(`${down.join(", ")} ${down.length === 1 ? "is" : "are"} down after up`, `see their logs in ${sandbox.logsDir}`);
      }
    },
  };
}

function statusReport(facts: Record<string, unknown>): { text: string; json: unknown } {
  const components = (facts.components ?? []) as ComponentStatus[];
  const rows = components.map((c) => [c.name, c.state, c.pid ? String(c.pid) : "-", c.port ? String(c.port) : "-", c.detail ?? ""]);
  const text = components.length ? table(["COMPONENT", "STATE", "PID", "PORT", "DETAIL"], rows) : "no component status was taken";
  const warning = facts.warning ? `\nwarning: ${facts.warning}` : "";
  return {
    text: `${facts.sandboxDir ? `sandbox ${facts.sandboxDir}\n` : ""}${text}${warning}`,
    json: { dir: facts.sandboxDir, components, warning: facts.warning },
  };
}
