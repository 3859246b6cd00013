/**
 * `mirror`: a copy of a share of a route's requests goes to another
 * service, and whatever it answers is thrown away. The copy never delays
 * or changes the client's exchange: it is sent beside it, a request body is
 * copied as the real upstream reads it (up to a bound, else the copy is
 * skipped), and a bounded number of copies are in flight at once.
 */
import type { Metrics } from "../admin/metrics.ts";
import type { Logger } from "../log/logger.ts";
import type { RequestContext } from "../pipeline/types.ts";
import type { RouteEntry, RoutingTable } from "../routing/table.ts";
import type { Balancer } from "./balancer.ts";
import { upstreamHeaders, upstreamHost, upstreamPath } from "./forwarding.ts";
import type { UpstreamSettings } from "./settings.ts";
import type { UpstreamClient } from "./upstream_client.ts";
import { isWebSocketUpgrade } from "./websocket.ts";

/** What mirroring needs. */
export interface MirrorDeps {
  readonly client: UpstreamClient;
  readonly balancer: Balancer;
  readonly metrics: Metrics;
  readonly logger: Logger;
  readonly upstreamTimeoutMs: number;
  readonly settingsFor: (serviceName: string) => UpstreamSettings;
  /** A request body larger than this is not mirrored (default 64 KiB). */
  readonly maxBodyBytes?: number;
  /** Copies in flight at once; more are skipped (default 256). */
  readonly maxInFlight?: number;
}

/** Starts the copy of one request; returns the body stream the real upstream should read. */
export type MirrorTap = (ctx: RequestContext) => void;

const DEFAULT_MAX_BODY = 64 * 1024;
const DEFAULT_MAX_IN_FLIGHT = 256;

/** Makes each route's mirror on a table (undefined for a route without `mirror`). */
export function mirrors(
  deps: MirrorDeps,
): (route: RouteEntry, table: RoutingTable) => MirrorTap | undefined {
  const maxBody = deps.maxBodyBytes ?? DEFAULT_MAX_BODY;
  const maxInFlight = deps.maxInFlight ?? DEFAULT_MAX_IN_FLIGHT;
  let inFlight = 0;
  const { metrics } = deps;

  return function mirrorFor(route, table) {
    const spec = route.mirror;
    if (spec === undefined || spec.percent === 0) return undefined;
    const service = spec.serviceName;
    const ready = table.service(service)?.ready ?? [];
    const settings = deps.settingsFor(service);
    let logged = false;
    const count = (outcome: string) => metrics.mirrorRequests.inc({ route: route.id, outcome });

    const send = async (ctx: RequestContext, body: Uint8Array | null, head: Head) => {
      const endpoint = deps.balancer.pick(ready);
      if (endpoint === undefined) return count("failed");
      inFlight++;
      metrics.mirrorInFlight.set({}, inFlight);
      const end = deps.balancer.begin(endpoint.url);
      try {
        const response = await deps.client.send({
          origin: endpoint.url,
          host: head.host,
          method: ctx.request.method,
          path: head.path,
          headers: body === null ? head.headers : {
            ...head.headers,
            "content-length": String(body.byteLength),
          },
          body: body === null ? null : ReadableStream.from([body]),
          // The client going away must not cut the copy short, nor the copy the client.
          signal: new AbortController().signal,
          headersTimeoutMs: ctx.upstreamTimeoutMs ?? route.timeoutMs ?? deps.upstreamTimeoutMs,
          caCerts: settings.caCerts,
          maxBodyBytes: maxBody,
        });
        if (response.body instanceof ReadableStream) await response.body.cancel();
        count("sent");
      } catch (error) {
        count("failed");
        // Once per route and snapshot: the metric counts the rest.
        if (logged) return;
        logged = true;
        deps.logger.warn("mirror_failed", {
          request_id: ctx.requestId,
          route: route.id,
          service,
          error: error instanceof Error ? error.message : String(error),
        });
      } finally {
        end();
        inFlight--;
        metrics.mirrorInFlight.set({}, inFlight);
      }
    };

    return function mirror(ctx) {
      // A WebSocket session cannot be copied: the mirror would get a plain GET.
      if (isWebSocketUpgrade(ctx.request)) return;
      if (spec.percent < 100 && Math.random() * 100 >= spec.percent) return;
      if (inFlight >= maxInFlight) return count("skipped");
      // The head as the real upstream gets it, taken now: middleware is done with it.
      const head: Head = {
        host: upstreamHost(ctx),
        path: upstreamPath(ctx),
        headers: { ...upstreamHeaders(ctx), "x-vanguard-mirror": "1" },
      };
      delete head.headers["content-length"];
      const source = ctx.requestBody !== undefined ? ctx.requestBody : ctx.request.body;
      if (source === null) {
        send(ctx, null, head);
        return;
      }
      ctx.requestBody = tapped(source, maxBody, (bytes) => {
        if (bytes === undefined) count("skipped");
        else send(ctx, bytes, head);
      });
    };
  };
}

interface Head {
  readonly host: string | undefined;
  readonly path: string;
  readonly headers: Record<string, string>;
}

/**
 * `source` read through, keeping a copy of what passed: once it ends, the
 * copy goes to `done` (undefined when it outgrew `limit`, or the stream
 * was cancelled or failed).
 */
function tapped(
  source: ReadableStream<Uint8Array>,
  limit: number,
  done: (bytes: Uint8Array | undefined) => void,
): ReadableStream<Uint8Array> {
  const reader = source.getReader();
  let kept: Uint8Array[] | undefined = [];
  let size = 0;
  let finished = false;
  const finish = (bytes: Uint8Array | undefined) => {
    if (finished) return;
    finished = true;
    done(bytes);
  };
  return new ReadableStream<Uint8Array>({
    async pull(controller) {
      let chunk: ReadableStreamReadResult<Uint8Array>;
      try {
        chunk = await reader.read();
      } catch (error) {
        finish(undefined);
        throw error;
      }
      if (chunk.done) {
        controller.close();
        finish(kept === undefined ? undefined : concat(kept, size));
        return;
      }
      size += chunk.value.byteLength;
      if (kept !== undefined) {
        if (size > limit) kept = undefined;
        else kept.push(chunk.value.slice());
      }
      controller.enqueue(chunk.value);
    },
    cancel(reason) {
      finish(undefined);
      return reader.cancel(reason);
    },
  });
}

function concat(chunks: readonly Uint8Array[], size: number): Uint8Array {
  const out = new Uint8Array(size);
  let at = 0;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}
