#!/usr/bin/env node
// The tradeops CLI runs its TypeScript through tsx: no build step between `npm ci` and `npx tradeops`.
//
// First, in plain JS and before tsx or any dependency loads (they may not even parse on an old
// Node): refuse a Node older than package.json's engines with one line, exit 2 (usage/input error).
import { readFileSync } from "node:fs";

const engines = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")).engines.node;
const needed = Number(/\d+/.exec(engines)[0]);
if (Number(process.versions.node.split(".")[0]) < needed) {
  process.stderr.write(
    `tradeops: needs Node.js ${needed} LTS or newer (engines "${engines}"), this is ${process.version} (${process.execPath}); ` +
      `get it with \`nvm install ${needed}\` or \`npm install -g --prefix ~/.local node@${needed}\` and ~/.local/bin first on PATH (README, "On a fresh machine")\n`,
  );
  process.exit(2);
}

const { register } = await import("tsx/esm/api");
register();
const { main } = await import("../runbooks/cli.ts");
await main();
