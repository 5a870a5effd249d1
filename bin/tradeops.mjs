#!/usr/bin/env node
// The tradeops CLI runs its TypeScript through tsx: no build step between `npm ci` and `npx tradeops`.
import { register } from "tsx/esm/api";

// The AWS SDK warns on every run that its 2027 releases need Node 22; say it once in the README instead.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= "true";
register();
const { main } = await import("../runbooks/cli.ts");
await main();
