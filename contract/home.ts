/**
 * Where tradeops keeps local state on the operator's machine: `$TRADEOPS_HOME`, by default
 * `<project>/.tradeops`. The runbooks keep audit logs and the active sandbox's location there, and
 * the `dev` stack its generated certificates; both sides read the location from here.
 */
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The project root: Pulumi.yaml, package.json, node_modules. */
export const projectRoot = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** An empty TRADEOPS_HOME is no home at all (the CLI refuses it before anything runs). */
export function tradeopsHome(): string {
  return resolve(process.env.TRADEOPS_HOME || join(projectRoot, ".tradeops"));
}
