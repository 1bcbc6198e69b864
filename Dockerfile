# syntax=docker/dockerfile:1
#
# One image for the three Node services, compiled JavaScript on production
# dependencies only; the command picks which one runs (docker-compose.yml
# sets it per service):
#   node leaderboard-service/dist/index.js   (default)
#   node worker-service/dist/index.js
#   node api-gateway/dist/index.js
#   node common/dist/migrate-cli.js          (one-shot migrations)
# and, as the target `nginx`, Debian's nginx with nchan (libnginx-mod-nchan,
# the push module that holds the live streams: the same packages `npm start`
# installs) and the live page (web/dist, built by Vite in the build stage),
# which docker-compose runs.
#
# No TypeScript, tsx or test tooling at run time: the build stage compiles
# with the full lockfile, the runtime stage installs `--omit=dev` and takes
# only each workspace's dist/ from it (plus sql/ and the manifests).

ARG NODE_IMAGE=node:26-slim

# ---- build: npm ci (TypeScript and types included), then npm run build ----
FROM ${NODE_IMAGE} AS build
WORKDIR /app
# Only the manifests first, so editing source does not invalidate the install.
COPY package.json package-lock.json ./
COPY common/package.json common/
COPY leaderboard-service/package.json leaderboard-service/
COPY worker-service/package.json worker-service/
COPY api-gateway/package.json api-gateway/
COPY devtools/package.json devtools/
COPY web/package.json web/
RUN npm ci --no-audit --no-fund
COPY tsconfig.base.json tsconfig.build.json ./
COPY scripts/build.mjs scripts/build.mjs
COPY common/tsconfig.build.json common/
COPY common/src common/src
COPY leaderboard-service/tsconfig.build.json leaderboard-service/
COPY leaderboard-service/src leaderboard-service/src
COPY worker-service/tsconfig.build.json worker-service/
COPY worker-service/src worker-service/src
COPY api-gateway/tsconfig.build.json api-gateway/
COPY api-gateway/src api-gateway/src
COPY web/index.html web/vite.config.ts web/tsconfig.json web/
COPY web/src web/src
# tsc --build into each workspace's dist/, plus the Lua scripts next to the
# module that reads them (leaderboard-service/dist/redis/lua); Vite bundles
# the page into web/dist.
RUN npm run build

# ---- nginx: Debian's nginx and nchan module, plus the live page (nginx.docker.conf's web root) ----
# The official nginx image has no nchan, and a module must be built for the
# exact nginx it loads into: Debian builds libnginx-mod-nchan for its own
# nginx (1.22.1 on bookworm), as on the machines `npm start` runs on.
FROM debian:bookworm-slim AS nginx
RUN apt-get update \
 && apt-get install -y --no-install-recommends nginx libnginx-mod-nchan curl ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 # Logs to the container's output, as the official image does; temp paths for the workers (user nobody).
 && ln -sf /dev/stdout /var/log/nginx/access.log && ln -sf /dev/stderr /var/log/nginx/error.log \
 && mkdir -p /var/cache/nginx && chown nobody /var/cache/nginx
COPY --from=build /app/web/dist /usr/share/leaderboard/web
EXPOSE 8080
# Graceful: nginx finishes what it is answering (nchan ends its streams; clients reconnect).
STOPSIGNAL SIGQUIT
CMD ["nginx", "-g", "daemon off;"]

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# HOST: listen on the container's network, not only its loopback.
ENV NODE_ENV=production \
    HOST=0.0.0.0
WORKDIR /app
# Production dependencies of every workspace, from the lockfile alone:
# `npm ci --omit=dev` at the root installs the workspaces' dependencies and
# links node_modules/@lb/* -> ../../<ws>, and leaves out the root's
# devDependencies and devtools' (tsx, TypeScript, mocha, chai...).
COPY package.json package-lock.json ./
COPY common/package.json common/
COPY leaderboard-service/package.json leaderboard-service/
COPY worker-service/package.json worker-service/
COPY api-gateway/package.json api-gateway/
COPY devtools/package.json devtools/
COPY web/package.json web/
# @node-rs/argon2 and msgpackr ship prebuilt binaries for linux-x64/arm64 glibc,
# which node:26-slim is, so no compiler toolchain is needed.
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force
# Owned by root and only readable by the node user: the services never
# write under /app.
COPY --from=build /app/common/dist common/dist
COPY --from=build /app/leaderboard-service/dist leaderboard-service/dist
COPY --from=build /app/worker-service/dist worker-service/dist
COPY --from=build /app/api-gateway/dist api-gateway/dist
COPY sql sql
USER node
EXPOSE 4000 5001 8081
# Node runs as PID 1 here: it has SIGTERM handlers (graceful drain), so
# `docker stop` works; compose adds `init: true` to reap any zombies.
CMD ["node", "leaderboard-service/dist/index.js"]
