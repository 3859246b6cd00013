# Vanguard API gateway image.
#
#   docker build -t vanguard:dev .
#   docker run --rm -p 8000:8000 -p 8001:8001 \
#     -v "$PWD/config.yaml:/etc/vanguard/config.yaml:ro" --read-only vanguard:dev
#
# Two stages: the build stage downloads every npm package the lockfile names
# into DENO_DIR; the final stage (distroless: no shell, no package manager)
# gets only the app sources and that cache, runs as an unprivileged user, and
# writes nothing at run time, so it works with a read-only root filesystem.
# The Deno version is pinned: keep it equal to the one the project is tested with.

# ---- build stage: resolve and cache dependencies ---------------------------
FROM denoland/deno:2.9.6 AS build

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1
WORKDIR /app

# Dependencies first (their layer is reused while only sources change);
# --frozen fails the build if deno.lock does not match deno.json.
COPY deno.json deno.lock ./
COPY main.ts ./
COPY lib/ ./lib/
# Caches the whole lockfile's npm packages (Deno needs them all present when it
# starts with --cached-only) plus main.ts's module graph, including the
# dynamically imported ioredis and @kubernetes/client-node.
RUN deno install --frozen --entrypoint main.ts

# ---- final stage ------------------------------------------------------------
FROM denoland/deno:distroless-2.9.6

ENV DENO_DIR=/deno-dir \
    DENO_NO_UPDATE_CHECK=1 \
    DENO_NO_PROMPT=1
WORKDIR /app

# Root-owned and read-only for the runtime user: code and cache never change.
COPY --from=build /deno-dir /deno-dir
COPY --from=build /app /app

# The config is read from here; in Kubernetes a ConfigMap is mounted on the
# directory (k8s/configmap.yaml, k8s/deployment.yaml).
COPY config.yaml /etc/vanguard/config.yaml

# distroless "nonroot" user, numeric so that runAsNonRoot can verify it.
USER 65532:65532

# 8000: proxy listener (server.port). 8001: admin listener (server.admin_port:
# /healthz, /readyz, /metrics, /routes, the dashboard); keep 8001 off public Services.
# The admin listener binds 127.0.0.1 unless the config sets server.admin_host (for
# -p 8001:8001, admin_host: 0.0.0.0 and an admin_token_env).
EXPOSE 8000 8001

# No HEALTHCHECK: the distroless image has neither a shell nor curl to run
# one. Health is probed from outside: in Kubernetes the Deployment's
# livenessProbe is GET /healthz and its readinessProbe GET /readyz on port
# 8001 (k8s/deployment.yaml); elsewhere poll http://HOST:8001/readyz.

# The base image's ENTRYPOINT is deno itself (behind tini in the denoland/deno
# images; SIGTERM reaches deno and starts the graceful drain), so CMD holds
# deno's arguments: Kubernetes `args` replace them (k8s/deployment.yaml).
# Permissions are the ones `deno task start` uses, except that reads are
# limited to the config directory and the in-cluster service-account
# credentials (never -A/--allow-all/--allow-write/--allow-run/--allow-ffi).
# --cached-only and --frozen: no download and no lockfile write at run time.
# Kubernetes narrows --allow-net further in k8s/deployment.yaml.
CMD ["run", "--cached-only", "--frozen", "--config", "/app/deno.json", "--allow-net", "--allow-read=/etc/vanguard,/var/run/secrets/kubernetes.io/serviceaccount,/app/lib", "--allow-env", "--allow-sys=uid", "--v8-flags=--max-semi-space-size=8", "main.ts", "--config", "/etc/vanguard/config.yaml"]
