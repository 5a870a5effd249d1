/**
 * Reading a JSON file we are handed (`--outputs`) or keep (the sandbox's secrets.json,
 * sandbox.json), the one careful way: a regular file (never a FIFO, a device or a directory, which
 * would block or read without end), at most `maxBytes`, a UTF-8 byte-order mark tolerated. Errors
 * name the file and where it is broken — never a fragment of its content, which may be a secret.
 */
import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";
import { createRequire } from "node:module";

/** Outputs and state files are a few kB; a megabyte is already a mistake. */
export const MAX_JSON_FILE_BYTES = 1024 * 1024;

export class JsonFileError extends Error {
  override name = "JsonFileError";
  readonly file: string;
  /** `missing`: the file is not there (callers often treat that as "nothing yet"). */
  readonly kind: "missing" | "unreadable" | "not-json";
  /** What is wrong, without the file name: "is not valid JSON: line 2, column 17, at pgPassword". */
  readonly reason: string;
  constructor(file: string, kind: JsonFileError["kind"], reason: string) {
    super(`${file} ${reason}`);
    this.file = file;
    this.kind = kind;
    this.reason = reason;
  }
}

export function readJsonFile(file: string, maxBytes = MAX_JSON_FILE_BYTES): unknown {
  return parseJson(file, readBounded(file, maxBytes));
}

function readBounded(file: string, maxBytes: number): string {
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO nobody writes returns at once instead of waiting for a writer.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") throw new JsonFileError(file, "missing", "not found");
    throw new JsonFileError(file, "unreadable", `cannot be read (${code})`);
  }
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new JsonFileError(file, "unreadable", `is ${kindOf(stats)}, not a regular file`);
    if (stats.size > maxBytes) {
      throw new JsonFileError(file, "unreadable", `is ${stats.size} bytes, over the ${maxBytes}-byte limit for a JSON file of ours`);
    }
    const buffer = Buffer.alloc(stats.size);
    let read = 0;
    while (read < stats.size) {
      const n = readSync(fd, buffer, read, stats.size - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.subarray(0, read).toString("utf8");
  } finally {
    closeSync(fd);
  }
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return "a directory";
  if (stats.isFIFO()) return "a FIFO (named pipe)";
  if (stats.isCharacterDevice() || stats.isBlockDevice()) return "a device";
  if (stats.isSocket()) return "a socket";
  return "not a regular file";
}

function parseJson(file: string, text: string): unknown {
  // Editors on Windows save a byte-order mark; JSON.parse refuses it.
  const body = text.charCodeAt(0) === 0xfeff ? text.slice(1) : text;
  try {
    return JSON.parse(body);
  } catch {
    throw new JsonFileError(file, "not-json", `is not valid JSON: ${whereBroken(body)}`);
  }
}

/**
 * "line 3, column 12, at pgPassword": V8's own message quotes the text around the
 * error, which is exactly what must not be printed; jsonc-parser (VS Code's) gives the offset and
 * the key path without content. Loaded only when a file is broken.
 */
function whereBroken(text: string): string {
  if (text.trim() === "") return "the file is empty";
  const { getLocation, parse } = createRequire(import.meta.url)("jsonc-parser") as typeof import("jsonc-parser");
  const errors: import("jsonc-parser").ParseError[] = [];
  parse(text, errors, { disallowComments: true, allowTrailingComma: false, allowEmptyContent: false });
  const offset = errors[0]?.offset ?? text.length;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - before.lastIndexOf("\n");
  const path = getLocation(text, offset).path.filter((part) => part !== "");
  return `line ${line}, column ${column}${path.length ? `, at ${path.join(".")}` : ""}`;
}
