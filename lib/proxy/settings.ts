import type { Config, PassiveHealthConfig } from "../config/types.ts";

/** What the proxy applies to one service's upstream exchanges. */
export interface UpstreamSettings {
  readonly passiveHealth: PassiveHealthConfig;
  /** At most this many requests in flight; undefined: no limit. */
  readonly maxInFlight?: number;
  /** Extra attempts for idempotent requests without a body. */
  readonly retries: number;
  /** The PEM certificates of `ca_file`, for https endpoints; undefined: the system roots. */
  readonly caCerts?: readonly string[];
}

/** The settings of a service that `services:` does not mention (the config defaults). */
export const DEFAULT_UPSTREAM_SETTINGS: UpstreamSettings = Object.freeze({
  passiveHealth: Object.freeze({
    consecutiveFailures: 5,
    baseEjectionMs: 30_000,
    maxEjectionMs: 300_000,
  }),
  retries: 0,
});

/**
 * Builds, once per config, the lookup the proxy calls per request: a map
 * read by the route's service name, so no request parses config.
 */
export function settingsLookup(config: Config): (serviceName: string) => UpstreamSettings {
  const byName = new Map<string, UpstreamSettings>();
  for (const [name, service] of Object.entries(config.services)) {
    byName.set(
      name,
      Object.freeze({
        passiveHealth: service.passiveHealth,
        maxInFlight: service.maxInFlight,
        retries: service.retries,
        // Read once per config build: a changed file applies on the next reload.
        caCerts: service.caFile === undefined
          ? undefined
          : Object.freeze([Deno.readTextFileSync(service.caFile)]),
      }),
    );
  }
  return function settingsFor(serviceName) {
    return byName.get(serviceName) ?? DEFAULT_UPSTREAM_SETTINGS;
  };
}
