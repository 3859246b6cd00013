/**
 * Certificates for TLS tests, made by the openssl CLI in a throwaway
 * directory under tests/.tmp: CAs and the leaves they sign.
 */

const ROOT = `${Deno.cwd()}/tests/.tmp`;

async function openssl(args: string[], cwd: string): Promise<void> {
  const out = await new Deno.Command("openssl", { args, cwd, stdout: "null", stderr: "piped" })
    .output();
  if (!out.success) throw new Error(`openssl ${args[0]}: ${new TextDecoder().decode(out.stderr)}`);
}

/** A throwaway directory with a CA and leaf certificates it signs. */
/** openssl req options for a new unencrypted P-256 key. */
const NEW_EC_KEY = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];

export interface Pki {
  readonly dir: string;
  /** Makes `<name>.crt` and `<name>.key` signed by CA `ca`, covering `names` (and 127.0.0.1). */
  leaf(name: string, ca: string, names: string[]): Promise<{ cert: string; key: string }>;
  /** Makes CA `<name>-ca.crt`; returns its PEM. */
  ca(name: string): Promise<string>;
  remove(): Promise<void>;
}

export async function pki(): Promise<Pki> {
  await Deno.mkdir(ROOT, { recursive: true });
  const dir = await Deno.makeTempDir({ dir: ROOT, prefix: "tls-" });
  return {
    dir,
    async ca(name) {
      await openssl([
        "req",
        "-x509",
        ...NEW_EC_KEY,
        "-keyout",
        `${name}-ca.key`,
        "-out",
        `${name}-ca.crt`,
        "-days",
        "2",
        "-subj",
        `/CN=${name} test CA`,
      ], dir);
      return await Deno.readTextFile(`${dir}/${name}-ca.crt`);
    },
    async leaf(name, ca, names) {
      await openssl([
        "req",
        ...NEW_EC_KEY,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${names[0]}`,
      ], dir);
      const sans = [...names.map((n) => `DNS:${n}`), "IP:127.0.0.1"].join(",");
      await Deno.writeTextFile(
        `${dir}/${name}.ext`,
        `subjectAltName=${sans}\nbasicConstraints=CA:FALSE\n`,
      );
      await openssl([
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        `${ca}-ca.crt`,
        "-CAkey",
        `${ca}-ca.key`,
        "-CAcreateserial",
        "-out",
        `${name}.crt`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
      ], dir);
      return { cert: `${dir}/${name}.crt`, key: `${dir}/${name}.key` };
    },
    remove: () => Deno.remove(dir, { recursive: true }),
  };
}
