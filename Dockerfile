# syntax=docker/dockerfile:1
#
# One image for the three Node services; the command picks which one runs
# (docker-compose.yml sets it per service):
#   node --import tsx leaderboard-service/src/index.ts   (default)
#   node --import tsx worker-service/src/index.ts
#   node --import tsx api-gateway/src/index.ts
#   node --import tsx scripts/migrate.ts                 (one-shot migrations)
#
# The code runs through tsx, as everywhere else in this repository (the
# workspaces export their TypeScript sources), so the runtime needs tsx, a
# devDependency: the deps stage installs the full lockfile.

ARG NODE_IMAGE=node:20-slim

# ---- deps: node_modules from the lockfile alone, cached until it changes ----
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
# Only the manifests, so editing source does not invalidate this layer.
COPY package.json package-lock.json ./
COPY common/package.json common/
COPY leaderboard-service/package.json leaderboard-service/
COPY worker-service/package.json worker-service/
COPY api-gateway/package.json api-gateway/
# @node-rs/argon2 and msgpackr ship prebuilt binaries for linux-x64/arm64 glibc,
# which node:20-slim is, so no compiler toolchain is needed.
RUN npm ci --no-audit --no-fund && npm cache clean --force

# ---- runtime ----
FROM ${NODE_IMAGE} AS runtime
# HOST: listen on the container's network, not only its loopback.
ENV NODE_ENV=production \
    HOST=0.0.0.0
WORKDIR /app
# node_modules, including the workspace symlinks (node_modules/@lb/* -> ../../<ws>)
# and any workspace-local node_modules.
COPY --from=deps --chown=node:node /app /app
COPY --chown=node:node tsconfig.base.json tsconfig.json ./
COPY --chown=node:node common/src common/src
COPY --chown=node:node leaderboard-service/src leaderboard-service/src
COPY --chown=node:node worker-service/src worker-service/src
COPY --chown=node:node api-gateway/src api-gateway/src
COPY --chown=node:node sql sql
COPY --chown=node:node scripts/migrate.ts scripts/migrate.ts
USER node
EXPOSE 4000 5001 8081
# Node runs as PID 1 here: it has SIGTERM handlers (graceful drain), so
# `docker stop` works; compose adds `init: true` to reap any zombies.
CMD ["node", "--import", "tsx", "leaderboard-service/src/index.ts"]
