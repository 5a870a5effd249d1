#!/usr/bin/env node
// The tradeops CLI runs its TypeScript through tsx: no build step between `npm ci` and `npx tradeops`.
import { register } from "tsx/esm/api";

register();
const { main } = await import("../runbooks/cli.ts");
await main();
