/**
 * A tiny upstream for the quick start: answers every request with JSON that
 * shows what the gateway forwarded.
 *
 *   deno run --allow-net=127.0.0.1 examples/upstream.ts [PORT]   # default 9001
 */
const port = Number(Deno.args[0] ?? "9001");

Deno.serve({ hostname: "127.0.0.1", port }, (request) => {
  const url = new URL(request.url);
  return Response.json({
    service: `upstream:${port}`,
    method: request.method,
    path: url.pathname,
    query: url.search,
    consumer: request.headers.get("x-vanguard-consumer"),
    forwarded_for: request.headers.get("x-forwarded-for"),
    request_id: request.headers.get("x-request-id"),
  });
});
