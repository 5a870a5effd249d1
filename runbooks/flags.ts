/**
 * A runbook's command-line flags, derived from its zod `args`: each key is a `--kebab-case`
 * option; booleans are switches, enums list their choices, numbers are whole numbers, defaults
 * come from `.default()`. What the schema cannot say (a help text, a placeholder, a default that
 * depends on state) is attached with `flag()`.
 *
 *   limit: flag(z.number().int().min(1).default(10), { description: "rows per view", placeholder: "rows" })
 *     → --limit <rows>   rows per view (default: 10)
 *   mode: flag(z.enum(["sync", "async"]).optional(), { switches: { sync: "…", async: "…" } })
 *     → --sync | --async
 */
import { Argument, InvalidArgumentError, Option } from "commander";
import { z } from "zod";

export interface FlagMeta {
  description: string;
  /** `--limit <rows>`. @default the flag's own name */
  placeholder?: string;
  /** The default as --help says it when the schema has none (it depends on state). */
  defaultText?: string;
  /** An enum as one switch per value (`--sync`, `--async`), each with its help text. */
  switches?: Record<string, string>;
  /** A positional argument instead of a flag: `tradeops redis clear-queue <name>` (optional schemas: `[name]`). */
  positional?: boolean;
  /** `--models [dir]`: the value may be left out; the arg is then `true` (the schema accepts it). */
  optionalValue?: boolean;
}

export const flagMeta = z.registry<FlagMeta>();

/** Attaches the help text (and more) of one flag to its schema. */
export function flag<S extends z.ZodType>(schema: S, meta: FlagMeta): S {
  flagMeta.add(schema, meta);
  return schema;
}

/** `--reason TEXT` of the runbooks that pause trading around a change (failover, restore, the DR moves…). */
export const pauseReasonFlag = flag(z.string().trim().min(1).max(500).optional(), { description: "why: goes to the audit log and to the ops API's pause", placeholder: "text" });

const kebab = (key: string) => key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`);

type Def = { type: string; innerType?: z.ZodType; defaultValue?: unknown; entries?: Record<string, string> };
const defOf = (schema: z.ZodType) => (schema as unknown as { def: Def }).def;

/** The schema under `.optional()` / `.default()`, and the default when there is one. */
function unwrap(schema: z.ZodType): { core: z.ZodType; defaultValue?: unknown } {
  let core = schema;
  let defaultValue: unknown;
  for (let def = defOf(core); def.type === "optional" || def.type === "default" || def.type === "nullable"; def = defOf(core)) {
    if (def.type === "default") defaultValue = def.defaultValue;
    core = def.innerType!;
  }
  return { core, defaultValue };
}

function wholeNumber(value: string): number {
  if (!/^\d+$/.test(value)) throw new InvalidArgumentError("expected a whole number.");
  return Number(value);
}

/** The commander options of one runbook's args. */
export function optionsOf(args: z.ZodType): Option[] {
  const shape = (defOf(args) as Def & { shape?: Record<string, z.ZodType> }).shape ?? {};
  return Object.entries(shape).flatMap(([key, schema]) => {
    const meta = flagMeta.get(schema);
    if (!meta) throw new Error(`runbook flag ${key} has no help text: wrap its schema in flag()`);
    if (meta.positional) return [];
    const { core, defaultValue } = unwrap(schema);
    const def = defOf(core);
    if (meta.switches) {
      const values = Object.keys(meta.switches);
      return values.map((value) =>
        new Option(`--${value}`, meta.switches![value]).conflicts(values.filter((other) => other !== value)),
      );
    }
    const name = `--${kebab(key)}`;
    // commander prints a default only when it has a value; a state-dependent one goes in the text.
    const description = meta.defaultText ? `${meta.description} (default: ${meta.defaultText})` : meta.description;
    const value = meta.optionalValue ? `[${meta.placeholder ?? kebab(key)}]` : `<${meta.placeholder ?? kebab(key)}>`;
    const option = def.type === "boolean" ? new Option(name, description) : new Option(`${name} ${value}`, description);
    if (def.type === "enum") option.choices(Object.values(def.entries!));
    if (def.type === "number") option.argParser(wholeNumber);
    if (defaultValue !== undefined) option.default(defaultValue);
    return [option];
  });
}

/** The positional arguments of one runbook's args, in declaration order, with their keys. */
export function argumentsOf(args: z.ZodType): { key: string; argument: Argument }[] {
  const shape = (defOf(args) as Def & { shape?: Record<string, z.ZodType> }).shape ?? {};
  return Object.entries(shape).flatMap(([key, schema]) => {
    const meta = flagMeta.get(schema);
    if (!meta?.positional) return [];
    const name = meta.placeholder ?? kebab(key);
    return [{ key, argument: new Argument(schema.safeParse(undefined).success ? `[${name}]` : `<${name}>`, meta.description) }];
  });
}

/** The runbook's raw args from commander's parsed options: switches fold back into their enum key. */
export function argsFromOptions(args: z.ZodType, options: Record<string, unknown>): Record<string, unknown> {
  const shape = (defOf(args) as Def & { shape?: Record<string, z.ZodType> }).shape ?? {};
  const raw: Record<string, unknown> = {};
  for (const [key, schema] of Object.entries(shape)) {
    const switches = flagMeta.get(schema)?.switches;
    if (switches) {
      const chosen = Object.keys(switches).find((value) => options[value] === true);
      if (chosen !== undefined) raw[key] = chosen;
    } else if (options[key] !== undefined) {
      raw[key] = options[key];
    }
  }
  return raw;
}
