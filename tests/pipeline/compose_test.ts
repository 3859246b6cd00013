import assert from "node:assert/strict";
import { compose, directLink } from "../../lib/pipeline/compose.ts";
import type { Handler, Middleware, RequestContext } from "../../lib/pipeline/types.ts";

function context(): RequestContext {
  return {
    request: new Request("http://gateway.test/users/1"),
    requestId: "req-1",
    path: "/users/1",
    encodedPath: "/users/1",
    bytesIn: 0,
  } as unknown as RequestContext;
}

/** A middleware that records when it enters and when its next() has returned. */
function recording(name: string, log: string[]): Middleware {
  return async function recording(_ctx, next) {
    log.push(`${name}:before`);
    const response = await next();
    log.push(`${name}:after`);
    return response;
  };
}

Deno.test("compose() runs middleware in declared order and unwinds in reverse", async () => {
  const log: string[] = [];
  const handler = compose(
    [recording("a", log), recording("b", log), recording("c", log)],
    function terminal() {
      log.push("handler");
      return Promise.resolve(new Response("done", { status: 201 }));
    },
  );
  const response = await handler(context());
  assert.equal(response.status, 201);
  assert.equal(await response.text(), "done");
  assert.deepEqual(log, [
    "a:before",
    "b:before",
    "c:before",
    "handler",
    "c:after",
    "b:after",
    "a:after",
  ]);
});

Deno.test("compose() with no middleware is the handler itself", async () => {
  const handler = compose([], () => Promise.resolve(new Response("only", { status: 202 })));
  const response = await handler(context());
  assert.equal(response.status, 202);
  assert.equal(await response.text(), "only");
});

Deno.test("a middleware can answer without calling next(), and later ones never run", async () => {
  const log: string[] = [];
  const deny: Middleware = function deny() {
    log.push("deny");
    return Promise.resolve(new Response("no", { status: 403 }));
  };
  const handler = compose([recording("a", log), deny, recording("c", log)], () => {
    log.push("handler");
    return Promise.resolve(new Response("yes"));
  });
  const response = await handler(context());
  assert.equal(response.status, 403);
  assert.equal(await response.text(), "no");
  assert.deepEqual(log, ["a:before", "deny", "a:after"]);
});

Deno.test("a middleware can replace the response that next() returned", async () => {
  const wrap: Middleware = async function wrap(_ctx, next) {
    const inner = await next();
    const headers = new Headers(inner.headers);
    headers.set("x-wrapped", "1");
    return new Response(inner.body, { status: inner.status, headers });
  };
  const response = await compose([wrap], () => Promise.resolve(new Response("body")))(context());
  assert.equal(response.headers.get("x-wrapped"), "1");
  assert.equal(await response.text(), "body");
});

Deno.test("an error thrown in the chain propagates to the caller", async (t) => {
  await t.step("from a middleware", async () => {
    const log: string[] = [];
    const boom: Middleware = function boom() {
      return Promise.reject(new Error("middleware failed"));
    };
    const handler = compose([recording("a", log), boom], () => {
      log.push("handler");
      return Promise.resolve(new Response("unreachable"));
    });
    await assert.rejects(handler(context()), { message: "middleware failed" });
    assert.deepEqual(log, ["a:before"], "the outer middleware sees the error, not a response");
  });
  await t.step("from the handler, through the middleware", async () => {
    const handler = compose([recording("a", []), recording("b", [])], async () => {
      await Promise.resolve();
      throw new RangeError("handler failed");
    });
    await assert.rejects(handler(context()), RangeError);
  });
  await t.step("and an outer middleware can catch it", async () => {
    const boundary: Middleware = async function boundary(_ctx, next) {
      try {
        return await next();
      } catch (error) {
        return new Response(String((error as Error).message), { status: 500 });
      }
    };
    const handler = compose([boundary], () => Promise.reject(new Error("caught")));
    const response = await handler(context());
    assert.equal(response.status, 500);
    assert.equal(await response.text(), "caught");
  });
});

Deno.test("every link and the handler receive the same ctx object", async () => {
  const ctx = context();
  const seen: RequestContext[] = [];
  const mark: Middleware = function mark(c, next) {
    seen.push(c);
    c.consumer = "alice";
    return next();
  };
  const terminal: Handler = function terminal(c) {
    seen.push(c);
    return Promise.resolve(new Response(c.consumer ?? "nobody"));
  };
  const response = await compose([mark, mark], terminal)(ctx);
  assert.equal(seen.length, 3);
  for (const c of seen) assert.equal(c, ctx);
  assert.equal(await response.text(), "alice");
});

Deno.test("a composed chain can be reused for many requests", async () => {
  const handler = compose(
    [function echo(c, next) {
      return next().then((r) => new Response(`${c.path}:${r.status}`));
    }],
    () => Promise.resolve(new Response(null, { status: 204 })),
  );
  const first = context();
  const second = { ...context(), path: "/orders" } as RequestContext;
  assert.equal(await (await handler(first)).text(), "/users/1:204");
  assert.equal(await (await handler(second)).text(), "/orders:204");
});

Deno.test("calling next() twice throws, and the rest of the chain (the proxy) runs once", async () => {
  let proxied = 0;
  const twice: Middleware = async function twice(_ctx, next) {
    await next();
    return await next();
  };
  const run = compose([twice], () => {
    proxied++;
    return Promise.resolve(new Response("upstream"));
  });
  await assert.rejects(run(context()), /next\(\) called multiple times in twice/);
  assert.equal(proxied, 1);
});

Deno.test("a directLink runs in declared order among guarded links, and works as plain Middleware too", async () => {
  const log: string[] = [];
  const direct = directLink(async function direct(ctx, rest) {
    log.push("direct:before");
    const response = await rest(ctx);
    log.push("direct:after");
    return response;
  });
  const handler = compose([recording("a", log), direct, recording("c", log)], () => {
    log.push("handler");
    return Promise.resolve(new Response("ok"));
  });
  assert.equal(await (await handler(context())).text(), "ok");
  assert.deepEqual(log, [
    "a:before",
    "direct:before",
    "c:before",
    "handler",
    "c:after",
    "direct:after",
    "a:after",
  ]);
  // Called as Middleware with a next(), outside compose().
  log.length = 0;
  const response = await direct(context(), () => Promise.resolve(new Response("via next")));
  assert.equal(await response.text(), "via next");
  assert.deepEqual(log, ["direct:before", "direct:after"]);
  assert.equal(direct.name, "direct");
});
