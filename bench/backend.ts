/** A fast Deno backend for the benchmark when nginx is not installed. */
const port = Number(Deno.args[0] ?? 9400);
const big = new Uint8Array(100 * 1024).fill(120);
Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, (request) => {
  if (new URL(request.url).pathname.endsWith("/100k")) return new Response(big);
  return new Response("hello world");
});
