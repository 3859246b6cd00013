/**
 * Everything the config loader reads besides the config text: environment variables and key
 * files named by `*_env` and `*_file` keys, and the config file itself. Values read here are only
 * ever checked, never kept: Config holds names, so secrets stay out of it and out of logs.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { isAbsolute, resolve } from "node:path";
import { isMap, isScalar } from "yaml";
import {
  type ListRefine,
  type Node,
  reject,
  report,
  UnsetEnvironment,
  type Walk,
} from "./schema.ts";
import { envName, filePath, sha256, tolerant } from "./rules.ts";

// RFC 7518 section 3.2: an HMAC key at least as long as the hash output.
const HS_MIN_SECRET_BYTES: Readonly<Record<string, number>> = { HS256: 32, HS384: 48, HS512: 64 };
const MIN_API_KEY_CHARS = 16;
const PUBLIC_KEY_PEM = [
  "-----BEGIN PUBLIC KEY-----",
  "-----BEGIN CERTIFICATE-----",
  "-----BEGIN RSA PUBLIC KEY-----",
];
// PKCS#8, PKCS#1, SEC 1, encrypted and OpenSSH private keys all end their label this way.
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** The default {@linkcode Walk.env}: the process environment. */
export function readEnvironment(name: string): string | undefined {
  return Deno.env.get(name);
}

/** The default {@linkcode Walk.readFile}. */
export function readTextFile(absolutePath: string): string {
  return Deno.readTextFileSync(absolutePath);
}

/** The config file's text and absolute path (`path` may be relative to cwd), or why not. */
export async function readConfigFile(
  path: string,
): Promise<{ text: string; absolutePath: string } | { problem: string }> {
  try {
    const absolutePath = isAbsolute(path) ? path : resolve(Deno.cwd(), path);
    return { text: await Deno.readTextFile(absolutePath), absolutePath };
  } catch (error) {
    return { problem: `cannot read the config file: ${readFailure(error)}` };
  }
}

/** Whether `error` is Deno refusing a permission. */
export function isDenied(error: unknown): boolean {
  return error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied;
}

/** Why a file could not be read, in words for a config problem. */
export function readFailure(error: unknown): string {
  if (error instanceof Deno.errors.NotFound) return "no such file";
  if (error instanceof Deno.errors.IsADirectory) return "it is a directory";
  if (isDenied(error)) {
    return "permission denied (deno task start may read only files inside the project directory)";
  }
  return error instanceof Error ? error.message : String(error);
}

/** The value of environment variable `name`, or why it cannot be used. */
export function readEnv(
  name: string,
  walk: Walk,
): { value: string } | { problem: string; unset?: true } {
  let value: string | undefined;
  try {
    value = walk.env(name);
  } catch (error) {
    if (!isDenied(error)) throw error;
    return {
      problem: `cannot read environment variable ${
        JSON.stringify(name)
      }: permission denied (run with --allow-env)`,
    };
  }
  if (value === undefined) {
    return { problem: `environment variable ${JSON.stringify(name)} is not set`, unset: true };
  }
  if (value === "") return { problem: `environment variable ${JSON.stringify(name)} is empty` };
  return { value };
}

function envSecret(name: string, walk: Walk): string {
  const read = readEnv(envName(name), walk);
  return "problem" in read ? rejectEnv(read, walk) : read.value;
}

/**
 * Rejects a `*_env` value whose variable cannot be used; an unset one is
 * only a warning under `deno task validate` ({@linkcode Walk.unsetEnvIsWarning}).
 */
export function rejectEnv(read: { problem: string; unset?: true }, walk: Walk): never {
  if (read.unset && walk.unsetEnvIsWarning) {
    throw new UnsetEnvironment(
      `${read.problem} here; deno task start refuses to start without it`,
    );
  }
  return reject(read.problem);
}

/** An environment variable name whose variable is set and not empty. */
export function setEnv(value: string, walk: Walk): string {
  envSecret(value, walk);
  return value;
}

/** An environment variable that holds an API key long enough to resist guessing. */
export function apiKeyEnv(value: string, walk: Walk): string {
  // Counted in code points, as a person counts the characters of a key.
  if ([...envSecret(value, walk)].length < MIN_API_KEY_CHARS) {
    reject(
      `key in ${JSON.stringify(value)} is too short (at least ${MIN_API_KEY_CHARS} characters)`,
    );
  }
  return value;
}

/**
 * Why the HMAC secret in `secretEnv` is too short for the strongest HS algorithm listed, or
 * undefined. One secret serves every HS algorithm listed, so the strongest one sets the minimum.
 */
export function hmacSecretProblem(
  secretEnv: string,
  algorithms: readonly string[],
  walk: Walk,
): string | undefined {
  const symmetric = algorithms.filter((name) => name.startsWith("HS"));
  if (symmetric.length === 0) return undefined;
  const strongest = symmetric.reduce((a, b) =>
    HS_MIN_SECRET_BYTES[b] > HS_MIN_SECRET_BYTES[a] ? b : a
  );
  const read = readEnv(secretEnv, walk);
  const bytes = "value" in read ? new TextEncoder().encode(read.value).length : undefined;
  if (bytes === undefined || bytes >= HS_MIN_SECRET_BYTES[strongest]) return undefined;
  return `secret in ${JSON.stringify(secretEnv)} is ${bytes} bytes; ${strongest} needs at least ${
    HS_MIN_SECRET_BYTES[strongest]
  }`;
}

/** A file that holds a public key in a form the JWT verifier reads; resolved like filePath. */
export function publicKeyFile(value: string, walk: Walk): string {
  const path = filePath(value, walk);
  let content: string;
  try {
    content = walk.readFile(path);
  } catch (error) {
    return reject(`cannot read key file ${JSON.stringify(value)}: ${readFailure(error)}`);
  }
  const kind = keyKind(content);
  if (kind === "private") {
    reject(`key file ${JSON.stringify(value)} holds a private key; give the public key`);
  }
  if (kind === undefined) {
    reject(
      `key file ${JSON.stringify(value)} is neither a PEM public key/certificate nor a JWK/JWKS`,
    );
  }
  return path;
}

/** What a key file holds, judged by its PEM labels or JWK members; undefined when neither. */
function keyKind(content: string): "public" | "private" | undefined {
  if (PRIVATE_KEY_PEM.test(content)) return "private";
  if (PUBLIC_KEY_PEM.some((label) => content.includes(label))) return "public";
  let json: unknown;
  try {
    json = JSON.parse(content);
  } catch {
    return undefined;
  }
  if (!isRecord(json)) return undefined;
  let keys: unknown[];
  if (Object.hasOwn(json, "kty")) keys = [json];
  else if (Array.isArray(json.keys)) keys = json.keys;
  else return undefined;
  // "d" is the private exponent (RSA) or scalar (EC, OKP) of a JWK.
  return keys.some((key) => isRecord(key) && Object.hasOwn(key, "d")) ? "private" : "public";
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Reports a key entry whose key equals an earlier one's, comparing SHA-256 digests: a `sha256`
 * as written, a `value_env` as the digest of the variable's value. Like `unique` (rules.ts), it
 * reads the raw YAML; an entry whose key cannot be read is skipped (it has its own problem).
 */
export function distinctKeys<T>(): ListRefine<T> {
  return function checkDistinctKeys(_items, { nodes, path, walk }) {
    const seen = new Map<string, number>();
    nodes.forEach((node, index) => {
      if (!isMap(node)) return;
      const digestNode = node.get("sha256", true) as Node | undefined;
      const envNode = node.get("value_env", true) as Node | undefined;
      let digest: string | undefined;
      let name: string | undefined;
      if (isScalar(digestNode)) {
        digest = tolerant(sha256)(digestNode.value);
      } else if (isScalar(envNode)) {
        name = tolerant(envName)(envNode.value);
        const read = name === undefined ? undefined : readEnv(name, walk);
        if (read && "value" in read) digest = createHash("sha256").update(read.value).digest("hex");
      }
      if (digest === undefined) return;
      const first = seen.get(digest);
      if (first === undefined) {
        seen.set(digest, index);
        return;
      }
      const earlier = `${path}[${first}]`;
      report(
        walk,
        name === undefined
          ? {
            node: digestNode,
            field: `${path}[${index}].sha256`,
            message: `duplicate sha256 ${JSON.stringify(digest)} (already used by ${earlier})`,
          }
          : {
            node: envNode,
            field: `${path}[${index}].value_env`,
            // The digest of a variable's value is not printed: it would only help guess the key.
            message: `key in ${JSON.stringify(name)} is already used by ${earlier}`,
          },
      );
    });
  };
}
