/**
 * `tradeops sandbox up | down | status`: the whole stack as real processes on 127.0.0.1, one step
 * per component, in the seed's start order (Z4: infrastructure first, then the API; S1's stack).
 *
 * `up` is idempotent and resumable: a component already running is a skipped step; what would stop
 * it half-way (a busy port, a missing binary, a dir PostgreSQL cannot reach) is refused before
 * anything is created. `down` stops by PID in reverse order and leaves nothing behind; `down
 * --purge` also deletes the data. `down` and `status` need no credentials, so a damaged
 * secrets.json never keeps a running sandbox from being stopped.
 */
import { existsSync } from "node:fs";
import { z } from "zod";
import { describeIssue, type StackOutputs } from "../contract/outputs.ts";
import type { ComponentStatus, Sandbox, SandboxComponent } from "../infra/sandbox/component.ts";
import type { SandboxLayout } from "../infra/sandbox/layout.ts";
import { sandboxOutputs, secretsOfOutputs } from "../infra/sandbox/outputs.ts";
import {
  SANDBOX_COMPONENTS,
  isPurged,
  prepareSandboxDirs,
  purgeSandbox,
  resolveSandboxLayout,
  sandboxProcesses,
  sandboxStatus as probeSandbox,
  sweepStrays,
  upBlockers,
  writeSandboxFiles,
} from "../infra/sandbox/sandbox.ts";
import { loadOrMintSecrets, mintSecrets, readSecrets, type SandboxSecrets } from "../infra/sandbox/secrets.ts";
import { SandboxStateFileError } from "../infra/sandbox/state-file.ts";
import { Refusal, StepFailure, UsageError, oneLine } from "./engine/errors.ts";
import { defineRunbook, type Step, type StepContext } from "./engine/runbook.ts";
import { table } from "./format.ts";

export const SandboxArgs = z.object({
  /** @default `$TRADEOPS_HOME/sandbox` */
  dir: z.string().min(1).optional(),
  /** Ports are base+1 … base+7 (infra/sandbox/layout.ts). @default 15400 */
  basePort: z.number().int().min(1024).max(65_528).optional(),
  /** I5: `sync` commits wait for pg-b (RPO 0). */
  mode: z.enum(["sync", "async"]).default("sync"),
  /** `down` only: delete the sandbox dir too. */
  purge: z.boolean().optional(),
});
export type SandboxArgs = z.infer<typeof SandboxArgs>;

/** The CLI's command options (`--async` / `--sync` flags or an explicit mode). */
export interface SandboxOutputsOptions {
  dir?: string;
  basePort?: number;
  mode?: "sync" | "async";
  async?: boolean;
}

/**
 * The stack outputs of the sandbox at `options.dir`, usable before outputs.json exists: the CLI's
 * runbook context for `sandbox up|down|status`. No side effects: secrets that were never minted are
 * minted in memory here and persisted by `up`'s first step from these very outputs. When
 * secrets.json is unreadable, in-memory placeholders stand in — `down` and `status` work by PID and
 * need no credential, and `up` refuses such a sandbox before any step (exit 2).
 */
export function sandboxStackOutputs(options: SandboxOutputsOptions = {}): StackOutputs {
  const parsed = SandboxArgs.safeParse({
    dir: options.dir,
    basePort: options.basePort,
    mode: options.mode ?? (options.async ? "async" : "sync"),
  });
  if (!parsed.success) throw new UsageError(`sandbox: ${describeIssue(parsed.error)}`);
  const layout = layoutOrUsageError(parsed.data);
  return sandboxOutputs(layout, inspectSecrets(layout).secrets ?? mintSecrets());
}

/** secrets.json as far as it is usable: its secrets (none before the first up), or why it cannot be used. */
function inspectSecrets(layout: SandboxLayout): { secrets?: SandboxSecrets; problem?: string } {
  try {
    return { secrets: readSecrets(layout) };
  } catch (error) {
    // The message names the file, why it is unusable, and the remedy.
    if (error instanceof SandboxStateFileError) return { problem: error.message };
    throw error;
  }
}

function layoutFor(args: SandboxArgs, outputs: StackOutputs): SandboxLayout {
  const dir = args.dir ?? (outputs.platform.kind === "sandbox" ? outputs.platform.dir : undefined);
  return layoutOrUsageError({ dir, basePort: args.basePort, mode: args.mode });
}

function layoutOrUsageError(options: Parameters<typeof resolveSandboxLayout>[0]): SandboxLayout {
  try {
    return resolveSandboxLayout(options);
  } catch (error) {
    throw new UsageError(oneLine(error));
  }
}

// ---- up -------------------------------------------------------------------------------------------

export const sandboxUp = defineRunbook<SandboxArgs>({
  name: "sandbox-up",
  summary: "Start the local sandbox: S3 store, PostgreSQL pair, pgBackRest, HAProxy, Redis, ops API, Prometheus",
  features: ["S1", "Z4", "I5", "I7", "S5", "S7"],
  mutates: true,
  args: SandboxArgs,
  steps(args, outputs) {
    const layout = layoutFor(args, outputs);
    // up starts processes with these credentials: a damaged file stops it before any step.
    const { problem } = inspectSecrets(layout);
    if (problem) throw new UsageError(problem);
    // Secrets exist once the first step ran; every later step reads them from secrets.json.
    const sandboxFor = (ctx: StepContext): Sandbox => ({ layout, secrets: loadOrMintSecrets(layout), log: (line) => ctx.log(line) });
    return [
      prepareStep(layout, outputs),
      ...SANDBOX_COMPONENTS.map((component) => startStep(layout, component, sandboxFor)),
      statusStep(layout, "Check that every component answers", { requireUp: true }),
    ];
  },
  report: statusReport,
});

function prepareStep(layout: SandboxLayout, outputs: StackOutputs): Step {
  return {
    name: `Prepare the sandbox directory ${layout.dir}`,
    plan:
      "check binaries, free ports and the postgres user's access first; create dirs (postgres-owned where PostgreSQL writes), " +
      "keep secrets.json (0600), write outputs.json and pgbackrest.conf",
    // Everything that would stop `up` half-way, before the first file is written: a refused up
    // leaves at most the engine's audit.jsonl behind.
    async precondition() {
      const blockers = await upBlockers(layout);
      if (blockers.length) {
        throw new Refusal(blockers.join("; "), "nothing was changed; fix the above, then re-run `tradeops sandbox up`");
      }
    },
    async action(ctx) {
      await prepareSandboxDirs(layout);
      // The secrets the CLI's outputs carry are the ones to keep: the masker and clients were handed them.
      const secrets = loadOrMintSecrets(layout, secretsOfOutputs(outputs));
      writeSandboxFiles({ layout, secrets, log: (line) => ctx.log(line) });
      ctx.record("sandboxDir", layout.dir);
      ctx.record("outputsFile", layout.files.outputs);
    },
    async verify() {
      if (!existsSync(layout.files.outputs)) throw new Error(`${layout.files.outputs} was not written`);
    },
    onFailure: "fix the cause above (or pick another --dir), then re-run `tradeops sandbox up`",
  };
}

function startStep(layout: SandboxLayout, component: SandboxComponent, sandboxFor: (ctx: StepContext) => Sandbox): Step {
  return {
    name: component.startStep(layout),
    async isDone(ctx) {
      return component.isDone ? component.isDone(sandboxFor(ctx)) : component.isUp(layout);
    },
    async action(ctx) {
      await component.start(sandboxFor(ctx));
      const pid = component.pid?.(layout);
      if (pid !== undefined) ctx.record(`${component.name}.pid`, pid);
    },
    verify: (ctx) => component.verify(sandboxFor(ctx)),
    undo: component.stop && component.stopStep && {
      plan: component.stopStep(layout),
      run: (ctx) => component.stop!(layout, (line) => ctx.log(line)),
    },
    onFailure: `read ${component.logFile(layout)}, fix the cause, then re-run \`tradeops sandbox up\` (running components are skipped) or \`tradeops sandbox down\``,
  };
}

// ---- down -----------------------------------------------------------------------------------------

export const sandboxDown = defineRunbook<SandboxArgs>({
  name: "sandbox-down",
  summary: "Stop every sandbox process by PID, in reverse start order; --purge also deletes its data",
  features: ["Z4", "S3"],
  mutates: true,
  args: SandboxArgs,
  steps(args, outputs) {
    const layout = layoutFor(args, outputs);
    const stops = [...SANDBOX_COMPONENTS].reverse().flatMap((component) => (component.stop ? [stopStep(layout, component)] : []));
    return [...stops, sweepStep(layout), ...(args.purge ? [purgeStep(layout)] : [])];
  },
});

function stopStep(layout: SandboxLayout, component: SandboxComponent): Step {
  return {
    name: component.stopStep!(layout),
    isDone: async () => component.pid?.(layout) === undefined && !(await component.isUp(layout)),
    action: (ctx) => component.stop!(layout, (line) => ctx.log(line)),
    async verify() {
      const pid = component.pid?.(layout);
      if (pid !== undefined) throw new Error(`${component.name} (pid ${pid}) is still running`);
    },
    onFailure: `\`tradeops sandbox status --dir ${layout.dir}\` shows its pid; kill it by hand, then re-run \`tradeops sandbox down\``,
  };
}

function sweepStep(layout: SandboxLayout): Step {
  return {
    name: "Stop any stray sandbox process (left by a crashed up or a killed postmaster)",
    isDone: async () => sandboxProcesses(layout).length === 0,
    async action(ctx) {
      const strays = await sweepStrays(layout);
      ctx.log(`stopped pid(s) ${strays.join(", ")}`);
    },
    async verify() {
      const left = sandboxProcesses(layout);
      if (left.length) throw new Error(`pid(s) ${left.join(", ")} of the sandbox survived SIGKILL`);
    },
  };
}

/** The engine writes its closing audit line (and releases its lock) in the dir after this step. */
const ENGINE_FILES = ["audit.jsonl", "lock"];

function purgeStep(layout: SandboxLayout): Step {
  return {
    name: `Delete the sandbox directory ${layout.dir} and all its data`,
    plan: `delete data dirs, logs, secrets and outputs; only ${ENGINE_FILES.join(" and ")} remain`,
    destructive: true,
    isDone: async () => isPurged(layout, ENGINE_FILES),
    action: async () => purgeSandbox(layout, { keep: ENGINE_FILES }),
  };
}

// ---- status ---------------------------------------------------------------------------------------

export const sandboxStatus = defineRunbook<SandboxArgs>({
  name: "sandbox-status",
  summary: "Each sandbox component: state, pid, port",
  features: ["S3"],
  mutates: false,
  args: SandboxArgs,
  steps: (args, outputs) => [statusStep(layoutFor(args, outputs), "Check each sandbox component", { requireUp: false })],
  report: statusReport,
});

/** `requireUp`: fail naming every component that is down. */
function statusStep(layout: SandboxLayout, name: string, opts: { requireUp: boolean }): Step {
  return {
    name,
    async action(ctx) {
      const components = await probeSandbox(layout);
      ctx.record("sandboxDir", layout.dir);
      ctx.record("components", components);
      const warning = inspectSecrets(layout).problem;
      if (warning) {
        ctx.log(warning);
        ctx.record("warning", warning);
      }
      const down = components.filter((component) => component.state === "down").map((component) => component.name);
      if (opts.requireUp && down.length) {
        throw new StepFailure(`${down.join(", ")} ${down.length === 1 ? "is" : "are"} down after up`, `see their logs in ${layout.logsDir}`);
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

