/**
 * What one sandbox component is: how to tell it is up, start it (and wait until it is really
 * ready), verify it, and stop it. The `sandbox up|down|status` runbooks turn each into a step.
 */
import type { ComponentName, SandboxLayout } from "./layout.ts";
import type { SandboxSecrets } from "./secrets.ts";

/** What `up` works with: where everything is, the credentials, and a progress line sink. */
export interface ComponentContext {
  layout: SandboxLayout;
  secrets: SandboxSecrets;
  log(line: string): void;
}

export type ComponentState = "up" | "down";

/** An executable a component runs, and the Debian package that installs it (named when it is missing). */
export interface RequiredBinary {
  /** A bare name looked up on PATH, or an absolute path (PostgreSQL's, under pgBinDir). */
  binary: string;
  debianPackage: string;
}

export interface ComponentStatus {
  name: ComponentName;
  state: ComponentState;
  pid?: number;
  port?: number;
  /** e.g. "standby, streaming, sync". */
  detail?: string;
}

export interface SandboxComponent {
  name: ComponentName;
  /** Step sentence for `up`: "Start the PostgreSQL primary pg-a". */
  startStep(layout: SandboxLayout): string;
  /** Step sentence for `down`; absent when there is nothing to stop (the pgBackRest stanza). */
  stopStep?(layout: SandboxLayout): string;
  port?(layout: SandboxLayout): number;
  /** What it runs: `up` refuses, before changing anything, when one of these is missing. */
  requires?(layout: SandboxLayout): RequiredBinary[];
  /** Where to look when it fails (named in every error and `onFailure` line). */
  logFile(layout: SandboxLayout): string;
  /** The live pid of the component (verified to be this sandbox's), if it has a process. */
  pid?(layout: SandboxLayout): number | undefined;
  /** Running and answering. */
  isUp(layout: SandboxLayout): Promise<boolean>;
  /** Up and configured as this `up` asks (defaults to `isUp`); true makes the step a skip. */
  isDone?(sandbox: ComponentContext): Promise<boolean>;
  /** Starts it and returns once it is ready, or throws one line naming it with its log's tail. */
  start(sandbox: ComponentContext): Promise<void>;
  /** Read-only proof that it does its job (a PING, a query, an HTTP 200). */
  verify(sandbox: ComponentContext): Promise<void>;
  /** Stops it and everything it started; resolves once the processes are gone. */
  stop?(layout: SandboxLayout, log: (line: string) => void): Promise<void>;
  /** One phrase for `status` beyond up/down (role, replication state…). */
  describe?(layout: SandboxLayout): Promise<string | undefined>;
}
