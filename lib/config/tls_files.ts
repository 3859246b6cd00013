/**
 * Checks a TLS certificate and private key as PEM text: both parse, and the
 * key is the certificate's. Used when a config loads (`server.tls`) and each
 * time the listener re-reads the files (lib/server/tls.ts).
 *
 * @module
 */

import { createPrivateKey, X509Certificate } from "node:crypto";
import { reject, type Walk } from "./schema.ts";
import { filePath } from "./rules.ts";
import { readFailure } from "./secrets.ts";

const CERT_PEM = "-----BEGIN CERTIFICATE-----";
// PKCS#8, PKCS#1 and SEC 1 private keys all end their label this way.
const PRIVATE_KEY_PEM = /-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----/;

/** What is wrong with a certificate chain and key pair, and in which of the two; undefined when nothing. */
export function tlsPairProblem(
  certPem: string,
  keyPem: string,
): { readonly file: "cert_file" | "key_file"; readonly message: string } | undefined {
  if (!certPem.includes(CERT_PEM)) {
    return { file: "cert_file", message: "holds no PEM certificate (-----BEGIN CERTIFICATE-----)" };
  }
  let cert: X509Certificate;
  try {
    // The first certificate of the chain is the one the key must match.
    cert = new X509Certificate(certPem.slice(certPem.indexOf(CERT_PEM)));
  } catch (error) {
    return { file: "cert_file", message: `is not a valid PEM certificate: ${messageOf(error)}` };
  }
  if (!PRIVATE_KEY_PEM.test(keyPem)) {
    return {
      file: "key_file",
      message: "holds no PEM private key (-----BEGIN ... PRIVATE KEY-----)",
    };
  }
  if (keyPem.includes("ENCRYPTED")) {
    return { file: "key_file", message: "is encrypted; give the key without a passphrase" };
  }
  let matches: boolean;
  try {
    matches = cert.checkPrivateKey(createPrivateKey(keyPem));
  } catch (error) {
    return { file: "key_file", message: `is not a valid PEM private key: ${messageOf(error)}` };
  }
  if (!matches) {
    return { file: "key_file", message: "is not the private key of the certificate in cert_file" };
  }
  return undefined;
}

/** A PEM file's path (resolved like filePath) whose content `walk.readFile` can read. */
export function readablePemFile(value: string, walk: Walk): string {
  const path = filePath(value, walk);
  try {
    walk.readFile(path);
  } catch (error) {
    reject(`cannot read ${JSON.stringify(value)}: ${readFailure(error)}`);
  }
  return path;
}

/** A CA bundle file (`services.NAME.ca_file`): readable and holding at least one PEM certificate. */
export function caFile(value: string, walk: Walk): string {
  const path = readablePemFile(value, walk);
  const text = walk.readFile(path);
  if (!text.includes(CERT_PEM)) {
    reject(`${JSON.stringify(value)} holds no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  try {
    new X509Certificate(text.slice(text.indexOf(CERT_PEM)));
  } catch (error) {
    reject(`${JSON.stringify(value)} is not a valid PEM certificate: ${messageOf(error)}`);
  }
  return path;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
