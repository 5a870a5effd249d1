/**
 * The drill's load: one client committing numbered rows through the traffic endpoint, as fast as
 * it can, and remembering every commit the database acknowledged (and when). After a failover the
 * new primary must hold every one of them (I5: RPO 0 in synchronous mode).
 */
import type pg from "pg";
import type { StackOutputs } from "../../contract/outputs.ts";

export interface Acknowledged {
  n: number;
  /** ms since the epoch (Date.now()) when the commit returned. */
  at: number;
}

/** A commit that errored is retried on a new connection after this long. */
const RECONNECT_AFTER_MS = 5;

export class DrillWriter {
  readonly acknowledged: Acknowledged[] = [];
  errors = 0;
  private running = false;
  private loop?: Promise<void>;
  private client?: pg.Client;
  private readonly outputs: StackOutputs;
  private readonly drill: string;
  private readonly cycle: number;

  constructor(outputs: StackOutputs, drill: string, cycle: number) {
    this.outputs = outputs;
    this.drill = drill;
    this.cycle = cycle;
  }

  /** The table the writes go to (once per drill). */
  static async prepare(outputs: StackOutputs): Promise<void> {
    const client = await connect(outputs);
    try {
      await client.query("create table if not exists tradeops_drill_writes (drill text not null, cycle int not null, n int not null, at timestamptz not null default clock_timestamp(), primary key (drill, cycle, n))");
    } finally {
      await client.end().catch(() => {});
    }
  }

  start(): void {
    this.running = true;
    this.loop = this.write();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await this.client?.end().catch(() => {});
  }

  private async write(): Promise<void> {
    let n = 0;
    while (this.running) {
      try {
        this.client ??= await connect(this.outputs);
        // A retried number may already be in (its commit's answer was lost): the row, not the answer, counts.
        await this.client.query("insert into tradeops_drill_writes (drill, cycle, n) values ($1, $2, $3) on conflict do nothing", [this.drill, this.cycle, n + 1]);
        n += 1;
        this.acknowledged.push({ n, at: Date.now() });
      } catch {
        this.errors += 1;
        const broken = this.client;
        this.client = undefined;
        broken?.end().catch(() => {});
        await new Promise((resolve) => setTimeout(resolve, RECONNECT_AFTER_MS));
      }
    }
  }
}

async function connect(outputs: StackOutputs): Promise<pg.Client> {
  const { default: driver } = await import("pg");
  const { database } = outputs;
  const client = new driver.Client({
    host: database.traffic.host,
    port: database.traffic.port,
    user: database.user,
    password: database.password,
    database: database.name,
    application_name: "tradeops drill writer",
    connectionTimeoutMillis: 1_000,
    query_timeout: 2_000,
  });
  client.on("error", () => {});
  await client.connect();
  return client;
}

/** The acknowledged numbers the database no longer has. */
export async function lostWrites(outputs: StackOutputs, drill: string, cycle: number, acknowledged: Acknowledged[]): Promise<number[]> {
  const client = await connect(outputs);
  try {
    const { rows } = await client.query<{ n: number }>("select n from tradeops_drill_writes where drill = $1 and cycle = $2", [drill, cycle]);
    const present = new Set(rows.map((row) => row.n));
    return acknowledged.filter((write) => !present.has(write.n)).map((write) => write.n);
  } finally {
    await client.end().catch(() => {});
  }
}
