/** Why a listener could not start, said for an operator. */

/** An error for an operator: the address, the config key, and what to do about it. */
export function listenFailure(
  error: unknown,
  at: { hostname: string; port: number; hostKey: string; portKey: string },
): Error {
  const address = at.hostname.includes(":")
    ? `[${at.hostname}]:${at.port}`
    : `${at.hostname}:${at.port}`;
  let key = at.portKey;
  let reason: string;
  if (error instanceof Deno.errors.AddrInUse) {
    reason = "address already in use; stop the other process or choose another port";
  } else if (error instanceof Deno.errors.AddrNotAvailable) {
    key = at.hostKey;
    reason = "no network interface of this machine has that address; choose another host";
  } else if (error instanceof Deno.errors.PermissionDenied) {
    reason = "permission denied (ports below 1024 need privileges); choose another port";
  } else if (error instanceof Deno.errors.NotCapable) {
    reason = "not allowed by the --allow-net permission";
  } else {
    key = `${at.hostKey}, ${at.portKey}`;
    reason = error instanceof Error ? error.message : String(error);
  }
  return new Error(`Cannot listen on ${address} (${key}): ${reason}`, { cause: error });
}
