/**
 * A worker as the seed's are: it blocks on one Redis list (BRPOP) and takes its jobs, for ever.
 * argv: host port queue; the password comes in REDIS_PASSWORD (never on a command line).
 */
import { Redis } from "ioredis";

const [host, port, queue] = process.argv.slice(2);
const redis = new Redis({ host, port: Number(port), password: process.env.REDIS_PASSWORD || undefined });
process.stdout.write("consuming\n");
for (;;) await redis.brpop(queue!, 0);
