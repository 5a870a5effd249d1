/**
 * Local HTTP fakes of the three chat APIs alerts and notifications go to, on one port, speaking
 * enough of each protocol for Alertmanager and `tradeops notify` to succeed:
 *
 *   Telegram  POST /bot<token>/sendMessage   JSON or form {chat_id, text, …} → {"ok":true,"result":{…}}
 *   Slack     POST /slack/<path>             JSON {text | attachments}      → 200 "ok"
 *   Discord   POST /discord/<path>           JSON {content | embeds}        → 204
 *
 * Every request is recorded (path, headers, parsed body) for the test to check its shape.
 */
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";

export type ChatApi = "telegram" | "slack" | "discord";

export interface ChatRequest {
  api: ChatApi;
  path: string;
  contentType: string;
  body: Record<string, unknown>;
  at: number;
}

export interface FakeChatApis {
  url: string;
  requests: ChatRequest[];
  /** Resolves with the first recorded request that matches, waiting up to `timeoutMs`. */
  waitFor(match: (request: ChatRequest) => boolean, timeoutMs: number): Promise<ChatRequest>;
  close(): Promise<void>;
}

function apiOf(path: string): ChatApi | undefined {
  if (/^\/bot[^/]+\/sendMessage$/.test(path)) return "telegram";
  if (path.startsWith("/slack/")) return "slack";
  if (path.startsWith("/discord/")) return "discord";
  return undefined;
}

function parseBody(text: string, contentType: string): Record<string, unknown> {
  if (contentType.includes("application/x-www-form-urlencoded")) return Object.fromEntries(new URLSearchParams(text));
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    return { unparsed: text };
  }
}

export async function startFakeChatApis(port = 0): Promise<FakeChatApis> {
  const requests: ChatRequest[] = [];
  const waiters = new Set<() => void>();
  const server: Server = createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      const path = new URL(request.url ?? "/", "http://fake").pathname;
      const api = apiOf(path);
      if (request.method !== "POST" || !api) {
        response.writeHead(404, { "content-type": "application/json" }).end('{"ok":false,"description":"Not Found"}');
        return;
      }
      const contentType = request.headers["content-type"] ?? "";
      requests.push({ api, path, contentType, body: parseBody(Buffer.concat(chunks).toString("utf8"), contentType), at: performance.now() });
      for (const wake of waiters) wake();
      if (api === "telegram") {
        const chat = Number(requests.at(-1)!.body.chat_id ?? 0);
        response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ ok: true, result: { message_id: requests.length, date: Math.floor(Date.now() / 1000), chat: { id: chat, type: "group" }, text: "" } }));
      } else if (api === "slack") {
        response.writeHead(200, { "content-type": "text/plain" }).end("ok");
      } else {
        response.writeHead(204).end();
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    requests,
    waitFor(match, timeoutMs) {
      return new Promise((resolve, reject) => {
        const check = () => {
          const found = requests.find(match);
          if (!found) return false;
          clearTimeout(timer);
          waiters.delete(wake);
          resolve(found);
          return true;
        };
        const wake = () => void check();
        const timer = setTimeout(() => {
          waiters.delete(wake);
          reject(new Error(`no matching chat request within ${timeoutMs} ms (got ${requests.length}: ${requests.map((r) => r.api).join(", ")})`));
        }, timeoutMs);
        waiters.add(wake);
        check();
      });
    },
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}
