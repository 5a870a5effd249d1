/**
 * `tradeops unlock --force --yes`: remove the stack lock of a run that is surely gone (its laptop
 * died mid-failover and the lock's TTL is not the wait anyone wants at 3 a.m.). A human decision:
 * `--force` says it was meant, `--yes` confirms the destructive step, and the audit log keeps who
 * removed whose lock. It never holds the lock itself.
 */
import { z } from "zod";
import { Refusal } from "./engine/errors.ts";
import { holderLine, type LockHolder } from "./engine/lock.ts";
import { defineRunbook } from "./engine/runbook.ts";
import { flag } from "./flags.ts";
import { lockFor } from "./locks/index.ts";

export const unlock = defineRunbook({
  command: ["unlock"],
  name: "unlock",
  summary: "remove the stack lock of a run that is gone (audited; needs --force and --yes)",
  features: ["I5", "I6"],
  mutates: true,
  takesLock: false,
  args: z.object({
    force: flag(z.boolean().optional(), { description: "yes, remove another run's lock (it must really be gone)" }),
  }),
  steps: ({ force }, { outputs }) => {
    const lock = lockFor(outputs);
    let holder: LockHolder | undefined;
    return [
      {
        name: `Read the stack lock ${lock.where}`,
        readOnly: true,
        precondition: async () => {
          if (!force) throw new Refusal("unlock removes another run's lock: pass --force (and --yes) once you know that run is gone", "check the holder first: `tradeops unlock --dry-run` shows where the lock is");
        },
        action: async (ctx) => {
          holder = await lock.holder();
          ctx.record("holder", holder ?? null);
          ctx.log(holder ? `held by ${holderLine(holder)}` : "nobody holds it");
        },
      },
      {
        name: `Remove the stack lock ${lock.where}`,
        destructive: true,
        isDone: async () => (await lock.holder()) === undefined,
        action: async (ctx) => {
          const removed = await lock.breakLock();
          ctx.record("removed", removed ?? null);
        },
        verify: async () => {
          const still = await lock.holder();
          if (still) throw new Refusal(`the lock is held again, by ${holderLine(still)}`, "another run took it: let it finish");
        },
      },
    ];
  },
  report: (facts) => {
    const removed = (facts.removed ?? facts.holder) as LockHolder | null | undefined;
    return { text: removed ? `removed the lock of ${holderLine(removed)}` : "the stack was not locked", json: { removed: removed ?? null } };
  },
});
