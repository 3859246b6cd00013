/**
 * A `kubernetes.io/tls` Secret read as a PEM certificate chain and key.
 * Problems name the Secret and the field, never the content.
 *
 * @module
 */
import { tlsPairProblem } from "../config/tls_files.ts";
import type { Secret } from "./objects.ts";

/** A certificate chain and its key, and the names they are served for. */
export interface CertificatePair {
  /** Lowercase; `*.example.com` for a wildcard; empty: no name given (any SNI). */
  readonly hostnames: readonly string[];
  readonly certPem: string;
  readonly keyPem: string;
}

type PemPair = { certPem: string; keyPem: string } | { problem: string };

/**
 * Pairs already judged, by Secret object: every rebuild of the table (each
 * EndpointSlice event, twice with status writing) asks again, and parsing
 * the certificate and key is the costly part. The watch replaces an object
 * when it changes, so a changed Secret is judged anew.
 */
const judged = new WeakMap<Secret, PemPair>();

/** The PEM pair a TLS Secret holds, or why it holds none. */
export function pemPair(secret: Secret): PemPair {
  let pair = judged.get(secret);
  if (pair === undefined) judged.set(secret, pair = judgePair(secret));
  return pair;
}

function judgePair(secret: Secret): PemPair {
  const shown = `Secret ${secret.metadata.namespace}/${secret.metadata.name}`;
  if (secret.type !== "kubernetes.io/tls") {
    return { problem: `${shown} is of type ${secret.type ?? "Opaque"}, not kubernetes.io/tls` };
  }
  const certPem = decodePem(secret.data?.["tls.crt"], "CERTIFICATE");
  if (certPem === undefined) return { problem: `${shown} has no PEM certificate in tls.crt` };
  const keyPem = decodePem(secret.data?.["tls.key"], "PRIVATE KEY");
  if (keyPem === undefined) return { problem: `${shown} has no PEM private key in tls.key` };
  const problem = tlsPairProblem(certPem, keyPem);
  if (problem !== undefined) {
    const field = problem.file === "cert_file" ? "tls.crt" : "tls.key";
    return { problem: `${shown}: ${field} ${problem.message}` };
  }
  return { certPem, keyPem };
}

/** Base64 `data` decoded as UTF-8 text holding a PEM block whose label ends with `label`. */
function decodePem(data: string | undefined, label: string): string | undefined {
  if (data === undefined || data === "") return undefined;
  let text: string;
  try {
    const bytes = Uint8Array.from(atob(data.replace(/\s+/g, "")), (c) => c.charCodeAt(0));
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return undefined;
  }
  // "PRIVATE KEY" also covers "RSA PRIVATE KEY" and "EC PRIVATE KEY".
  const begin = new RegExp(`-----BEGIN [A-Z ]*${label}-----`);
  return begin.test(text) ? text : undefined;
}
