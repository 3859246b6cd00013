/**
 * The proxy listener's certificates: the `server.tls` pair and the
 * `server.tls.certificates` pairs, read from their files, chosen by SNI, and
 * re-read when the files change; and the certificates of the Gateways' and
 * Ingresses' TLS Secrets, handed over whole whenever they change
 * ({@linkcode TlsCertificates.setSecretCertificates}).
 *
 * A client hello's server name picks, in this order: a Secret certificate
 * given for exactly that name, a file certificate for exactly that name, a
 * Secret certificate for a wildcard covering it, a file certificate for such
 * a wildcard, and else the `server.tls` pair.
 *
 * The files are polled by content (every 2 s by default), as the config
 * reloader does: a Kubernetes Secret volume swaps a `..data` symlink, which
 * events on the files themselves can miss. A changed set is checked whole
 * (every certificate parses, every key is its certificate's) before it
 * replaces the old one; a bad set keeps the old one and says why
 * (`tls_reload_failed`), once per distinct content.
 *
 * @module
 */
import { X509Certificate } from "node:crypto";
import { tlsPairProblem } from "../config/tls_files.ts";
import type { TlsConfig, TlsPairConfig } from "../config/types.ts";
import type { CertificatePair } from "../gateway_api/tls_secret.ts";
import type { Logger } from "../log/logger.ts";

/** A certificate chain and its key, as PEM text (what Deno.listenTls takes). */
export interface TlsKeyPair {
  readonly cert: string;
  readonly key: string;
}

/** What the listener needs of its certificates. */
export interface CertificateSource {
  /** The pair for a TLS client hello's server name ("" when the client sent none). */
  select(serverName: string): TlsKeyPair;
  /** Called after the certificates changed: new connections should get the new ones. */
  onChange(listener: () => void): void;
}

interface LoadedPair extends TlsKeyPair {
  /** Lower-case DNS names the certificate covers (`*.example.com` kept as written). */
  readonly names: readonly string[];
}

/** The pairs of one TlsConfig, loaded; the first is the default. */
interface LoadedSet {
  readonly pairs: readonly LoadedPair[];
  /** The files' content when read, to notice a change. */
  readonly fingerprint: string;
}

/** Loads, selects and watches the certificates of `server.tls`. */
export class TlsCertificates implements CertificateSource {
  #config: TlsConfig;
  #set: LoadedSet;
  readonly #logger: Logger;
  readonly #listeners: (() => void)[] = [];
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The content last judged bad: logged once, not at every poll. */
  #rejected: string | undefined;
  /** The Secrets' certificates, with the names their listeners or Ingress rules give. */
  #secretPairs: readonly LoadedPair[] = [];
  #secretPrint = "[]";

  /** Reads and checks the files now; throws with the reason when a pair is bad. */
  constructor(config: TlsConfig, options: { logger: Logger; intervalMs?: number }) {
    this.#config = config;
    this.#logger = options.logger;
    const read = readSet(config);
    if ("problem" in read) throw new Error(read.problem);
    this.#set = read;
    const timer = setInterval(() => this.check(), options.intervalMs ?? 2000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  select(serverName: string): TlsKeyPair {
    const pairs = this.#set.pairs;
    const secrets = this.#secretPairs;
    if (serverName === "" || (pairs.length === 1 && secrets.length === 0)) return pairs[0];
    const name = serverName.toLowerCase();
    for (const pair of secrets) if (pair.names.includes(name)) return pair;
    for (const pair of pairs) if (pair.names.includes(name)) return pair;
    for (const set of [secrets, pairs]) {
      for (const pair of set) {
        if (pair.names.some((covered) => wildcardCovers(covered, name))) return pair;
      }
    }
    return pairs[0];
  }

  /**
   * Puts the certificates of the Gateways' and Ingresses' TLS Secrets in
   * force (the whole set; an empty one removes them all). A pair without
   * hostnames is served for the names its certificate covers. New
   * connections get them; a set equal to the one in force changes nothing.
   */
  setSecretCertificates(pairs: readonly CertificatePair[]): void {
    const print = JSON.stringify(pairs.map((p) => [p.hostnames, p.certPem, p.keyPem]));
    if (print === this.#secretPrint) return;
    const loaded: LoadedPair[] = [];
    for (const pair of pairs) {
      // The translation checked every pair (tlsPairProblem); a bad one is skipped, not fatal.
      let names: readonly string[] = pair.hostnames;
      if (names.length === 0) {
        try {
          names = namesOf(pair.certPem);
        } catch {
          continue;
        }
      }
      loaded.push({ cert: pair.certPem, key: pair.keyPem, names });
    }
    this.#secretPrint = print;
    this.#secretPairs = loaded;
    this.#logger.info("tls_secret_certificates", {
      certificates: loaded.length,
      names: loaded.flatMap((pair) => pair.names).slice(0, 20),
    });
    for (const listener of this.#listeners) listener();
  }

  onChange(listener: () => void): void {
    this.#listeners.push(listener);
  }

  /**
   * Re-reads the files now (the poll calls it); true when a new, valid set
   * replaced the old one.
   */
  check(): boolean {
    const fingerprint = fingerprintOf(this.#config);
    if (fingerprint === this.#set.fingerprint || fingerprint === this.#rejected) return false;
    const read = readSet(this.#config);
    if ("problem" in read) {
      this.#rejected = fingerprint;
      this.#logger.error("tls_reload_failed", {
        reason: read.problem,
        message: "The certificates in force stay until the files hold a valid set",
      });
      return false;
    }
    this.#install(read);
    return true;
  }

  /**
   * Reads the pairs of a reloaded config; throws (nothing changed) when one
   * is bad, else returns what puts them in force, for once the rest of the
   * config has been built too.
   */
  stage(config: TlsConfig): () => void {
    if (samePaths(config, this.#config)) return () => {};
    const read = readSet(config);
    if ("problem" in read) throw new Error(read.problem);
    return () => {
      this.#config = config;
      this.#install(read);
    };
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #install(set: LoadedSet): void {
    this.#set = set;
    this.#rejected = undefined;
    this.#logger.info("tls_reloaded", {
      certificates: set.pairs.length,
      names: set.pairs.flatMap((pair) => pair.names).slice(0, 20),
    });
    for (const listener of this.#listeners) listener();
  }
}

function pairsOf(config: TlsConfig): TlsPairConfig[] {
  return [{ certFile: config.certFile, keyFile: config.keyFile }, ...config.certificates];
}

function samePaths(a: TlsConfig, b: TlsConfig): boolean {
  const left = pairsOf(a);
  const right = pairsOf(b);
  return left.length === right.length &&
    left.every((pair, i) =>
      pair.certFile === right[i].certFile && pair.keyFile === right[i].keyFile
    );
}

function readOrNull(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

function fingerprintOf(config: TlsConfig): string {
  return JSON.stringify(
    pairsOf(config).map((pair) => [readOrNull(pair.certFile), readOrNull(pair.keyFile)]),
  );
}

function readSet(config: TlsConfig): LoadedSet | { problem: string } {
  const pairs: LoadedPair[] = [];
  const texts: [string | null, string | null][] = [];
  for (const pair of pairsOf(config)) {
    let cert: string;
    let key: string;
    try {
      cert = Deno.readTextFileSync(pair.certFile);
      key = Deno.readTextFileSync(pair.keyFile);
    } catch (error) {
      return { problem: `cannot read ${pair.certFile} or ${pair.keyFile}: ${messageOf(error)}` };
    }
    texts.push([cert, key]);
    const problem = tlsPairProblem(cert, key);
    if (problem !== undefined) {
      const file = problem.file === "cert_file" ? pair.certFile : pair.keyFile;
      return { problem: `${file} ${problem.message}` };
    }
    pairs.push({ cert, key, names: namesOf(cert) });
  }
  return { pairs, fingerprint: JSON.stringify(texts) };
}

/** The DNS names a certificate covers: its subjectAltName DNS entries, else its CN. */
function namesOf(certPem: string): string[] {
  const cert = new X509Certificate(certPem.slice(certPem.indexOf("-----BEGIN CERTIFICATE-----")));
  const dns = (cert.subjectAltName ?? "").split(",")
    .map((entry) => entry.trim())
    .filter((entry) => entry.startsWith("DNS:"))
    .map((entry) => entry.slice(4).toLowerCase());
  if (dns.length > 0) return dns;
  const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
  return cn === undefined ? [] : [cn.toLowerCase()];
}

/** Whether `*.example.com` covers `name` (one label, as certificates mean it). */
function wildcardCovers(pattern: string, name: string): boolean {
  if (!pattern.startsWith("*.")) return false;
  const suffix = pattern.slice(1);
  return name.endsWith(suffix) && !name.slice(0, -suffix.length).includes(".") &&
    name.length > suffix.length;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}
