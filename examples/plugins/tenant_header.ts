/**
 * An example Vanguard plugin, complete and ready to copy: it tells the
 * upstream which tenant a consumer belongs to, and refuses consumers that
 * have none.
 *
 * config.yaml:
 *
 *   routes:
 *     - id: orders
 *       path_prefix: /orders
 *       service_name: order-service
 *       auth_required: true
 *       middleware:
 *         - module: ./examples/plugins/tenant_header.ts   # relative to config.yaml
 *           options:
 *             header: X-Tenant
 *             tenants: { mobile-app: acme, batch-job: globex }
 *
 * It runs after authentication (the default phase), so `ctx.consumer` is
 * the authenticated consumer: the API key's id or the JWT's `sub`.
 */
import type { MiddlewarePlugin } from "../../lib/plugins/api.ts";
import { GatewayError } from "../../lib/pipeline/errors.ts";

interface Options {
  header: string;
  tenants: Record<string, string>;
}

function problems(options: unknown): string[] {
  if (typeof options !== "object" || options === null) return ["options must be a mapping"];
  const { header, tenants, ...rest } = options as Record<string, unknown>;
  const found = Object.keys(rest).map((key) => `${key}: unknown option`);
  if (typeof header !== "string" || !/^[A-Za-z0-9-]+$/.test(header)) {
    found.push("header: must be a header name such as X-Tenant");
  }
  if (typeof tenants !== "object" || tenants === null || Array.isArray(tenants)) {
    found.push("tenants: must map consumer ids to tenant names");
  } else {
    for (const [consumer, tenant] of Object.entries(tenants)) {
      if (typeof tenant !== "string" || tenant === "") {
        found.push(`tenants.${consumer}: must be a tenant name`);
      }
    }
  }
  return found;
}

/** The plugin: Vanguard imports the module and uses this export. */
export const plugin: MiddlewarePlugin = {
  // Checked when the config loads (and by `deno task validate`), with the config's line.
  validateOptions: problems,

  // Called once per config load; the returned function runs per request.
  createMiddleware(options, deps) {
    const { header, tenants } = options as Options;
    const byConsumer = new Map(Object.entries(tenants));
    deps.logger.info("tenant_header_loaded", { consumers: byConsumer.size });

    return async function tenantHeader(ctx, next) {
      const tenant = ctx.consumer === undefined ? undefined : byConsumer.get(ctx.consumer);
      if (tenant === undefined) {
        throw new GatewayError(403, "no_tenant", "This consumer belongs to no tenant");
      }
      // Request headers are immutable: changes for the upstream go here.
      ctx.upstreamHeaders = { ...ctx.upstreamHeaders, [header.toLowerCase()]: tenant };
      const response = await next();
      response.headers.set(header, tenant);
      return response;
    };
  },
};
