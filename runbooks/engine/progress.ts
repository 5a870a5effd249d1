/**
 * Progress of a run, on stderr so stdout stays the report (or the --json document).
 * On a TTY a live line per step with a running clock; otherwise plain lines that read well in CI
 * logs and `script` captures.
 */
import type { Writable } from "node:stream";
import type { z } from "zod";
import type { StepOutcome as StepOutcomeSchema } from "./document.ts";

export type StepOutcome = z.infer<typeof StepOutcomeSchema>;

const SYMBOL: Record<StepOutcome, string> = { ok: "✔", skipped: "↷", refused: "⊘", failed: "✖", interrupted: "⏹" };

export interface Progress {
  start(index: number, total: number, name: string): void;
  log(line: string): void;
  end(index: number, total: number, name: string, outcome: StepOutcome, durationMs: number, detail?: string): void;
}

export function seconds(ms: number): string {
  return ms < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`;
}

export function createProgress(stream: Writable & { isTTY?: boolean }, quiet = false): Progress {
  if (quiet) return { start() {}, log() {}, end() {} };
  return stream.isTTY ? new LiveProgress(stream) : new PlainProgress(stream);
}

class PlainProgress implements Progress {
  private readonly stream: Writable;
  constructor(stream: Writable) {
    this.stream = stream;
  }
  start(index: number, total: number, name: string): void {
    this.stream.write(`[${index}/${total}] ${name} ...\n`);
  }
  log(line: string): void {
    this.stream.write(`      ${line}\n`);
  }
  end(index: number, total: number, name: string, outcome: StepOutcome, durationMs: number, detail?: string): void {
    const suffix = detail ? `: ${detail}` : "";
    this.stream.write(`[${index}/${total}] ${name}: ${outcome} (${seconds(durationMs)})${suffix}\n`);
  }
}

class LiveProgress implements Progress {
  private current?: { label: string; startedAt: number };
  private timer?: NodeJS.Timeout;
  private readonly stream: Writable;

  constructor(stream: Writable) {
    this.stream = stream;
  }

  start(index: number, total: number, name: string): void {
    this.current = { label: `[${index}/${total}] ${name}`, startedAt: performance.now() };
    this.render();
    this.timer = setInterval(() => this.render(), 100);
    this.timer.unref();
  }
  log(line: string): void {
    this.stream.write(`\r\x1b[K      ${line}\n`);
    this.render();
  }
  end(index: number, total: number, name: string, outcome: StepOutcome, durationMs: number, detail?: string): void {
    clearInterval(this.timer);
    this.current = undefined;
    const suffix = detail ? ` — ${detail}` : "";
    this.stream.write(`\r\x1b[K${SYMBOL[outcome]} [${index}/${total}] ${name} (${seconds(durationMs)})${suffix}\n`);
  }
  private render(): void {
    if (!this.current) return;
    const elapsed = seconds(performance.now() - this.current.startedAt);
    this.stream.write(`\r\x1b[K▸ ${this.current.label} … ${elapsed}`);
  }
}
