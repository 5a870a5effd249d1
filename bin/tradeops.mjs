#!/usr/bin/env node
// The tradeops CLI runs its TypeScript with no build step between `npm ci` and `npx tradeops`.
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

// Node 24 strips the types itself (the code keeps to erasable syntax: tsconfig's
// erasableSyntaxOnly), and its compile cache keeps the compiled modules between runs: `--help` in
// ~150 ms instead of ~300 ms through tsx. Node never strips files under node_modules, so an
// installed copy (or a Node without type stripping) goes through tsx.
const { enableCompileCache } = await import("node:module");
enableCompileCache?.();
if (!process.features.typescript || import.meta.dirname.split("/").includes("node_modules")) {
  const { register } = await import("tsx/esm/api");
  register();
}
const { main } = await import("../runbooks/cli.ts");
await main();
