/**
 * `tradeops drill` (`npm run drill`): bring the sandbox up and drill it end to end — health, a full
 * backup into the S3 repository, the diagnosis views — the first thing to run on a new machine.
 */
import { backup } from "./backup.ts";
import { diagnose } from "./diagnose.ts";
import { defineSequence } from "./engine/runbook.ts";
import { health } from "./health.ts";
import { SandboxUpArgs, sandboxUp } from "./sandbox.ts";

export const drill = defineSequence({
  command: ["drill"],
  name: "drill",
  summary: "bring the sandbox up and drill it: health, a full backup, diagnose",
  features: ["S1", "Z1", "Z6", "Z5"],
  args: SandboxUpArgs,
  target: (args, source) => sandboxUp.target!(args, source),
  runs: (args) => [
    { runbook: sandboxUp, args },
    { runbook: health, args: {} },
    { runbook: backup, args: { type: "full" } },
    { runbook: diagnose, args: {} },
  ],
});
