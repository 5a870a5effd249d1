/**
 * Durations on the command line (`--since 2h`, `--older-than 30d`), parsed by `ms` so every
 * command accepts the same spellings: `90s`, `15m`, `2h`, `7d`, `1y`.
 */
import ms from "ms";
import { z } from "zod";

/** A positive duration as `ms` spells it; the value is milliseconds. */
export const Duration = z.string().transform((text, ctx) => {
  const millis = ms(text as ms.StringValue);
  if (typeof millis !== "number" || !Number.isFinite(millis) || millis <= 0) {
    ctx.addIssue({ code: "custom", message: `${JSON.stringify(text)} is not a duration (e.g. 90s, 15m, 2h, 7d)` });
    return z.NEVER;
  }
  return millis;
});

/** "2 h", "30 d": a duration as the reports say it. */
export const spell = (millis: number): string => ms(millis, { long: true });
