# syntax=docker/dockerfile:1
#
# MeshHook Alerts: one image for the three processes of a deployment.
#
#   api      node --import tsx api/server.ts        (default; HEALTHCHECK below)
#   worker   node --import tsx worker.ts            (no HTTP: disable the healthcheck)
#   migrate  node --import tsx store/migrate-cli.ts (one-shot, before api and worker)
#
# The same commands as the npm scripts (`npm run api` etc.), without npm in
# the process tree. `tsx` is a runtime dependency: the TypeScript sources run
# as they are, with no compile step, in one node process per container
# (`npx tsx file.ts` would work too, but puts npm and a tsx parent process
# between tini and node). node_modules/.bin is on PATH for `tsx` by hand.
#
# Build:  docker build -t meshhook-alerts .
# Run:    see docker-compose.yml and docs/deployment.md.

ARG NODE_IMAGE=node:20-bookworm-slim

# ---------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS base
WORKDIR /app
ENV NPM_CONFIG_UPDATE_NOTIFIER=false \
    NPM_CONFIG_FUND=false \
    NPM_CONFIG_AUDIT=false

# ---------------------------------------------------------------------------
# Production dependencies only, exactly as locked.
#
# --ignore-scripts: no dependency install script runs in the build. None is
# needed: the native parts (Temporal's core bridge, esbuild for tsx, swc for
# the workflow bundler) ship prebuilt in per-platform packages that npm picks
# from the lockfile. npm 11 is moving to "no install scripts until approved"
# anyway; this keeps the image independent of which npm the base image has.
# The RUN after it proves the native modules load on this platform.
FROM base AS deps
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --omit=dev --ignore-scripts
RUN node -e "require('@temporalio/core-bridge'); require('@swc/core'); require('esbuild'); console.log('native modules load')"

# ---------------------------------------------------------------------------
# The web UI (ui/, Svelte + Vite), built into ui/dist for Koa to serve. It
# installs all dependencies (dev ones included: the bundler; --ignore-scripts
# skips the `prepare` build, which needs ui/ first) but nothing of it reaches
# the runtime image except ui/dist.
FROM base AS ui
COPY package.json package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --ignore-scripts
COPY scripts/ scripts/
COPY ui/ ui/
RUN npm run build:ui

# ---------------------------------------------------------------------------
FROM base AS runtime

# tini as PID 1: forwards SIGTERM to node (which shuts the service down
# cleanly) and reaps zombies.
RUN apt-get update \
 && apt-get install -y --no-install-recommends tini \
 && rm -rf /var/lib/apt/lists/*

ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=3000 \
    DATA_DIR=/app/data \
    PATH=/app/node_modules/.bin:$PATH

# Code and dependencies stay owned by root (read-only for the app user); only
# DATA_DIR is writable. With DATABASE_URL and TEMPORAL_ADDRESS set (the only
# sensible setup in a container) nothing is written there.
COPY --from=deps /app/node_modules ./node_modules
# Everything else in the build context that .dockerignore lets through: the
# TypeScript sources (api/, activities/, workflows/, runtime/, store/, lib/,
# *.ts), migrations/, package.json and tsconfig.json (tsx reads it).
COPY . .
COPY --from=ui /app/ui/dist ./ui/dist
RUN mkdir -p /app/data && chown node:node /app/data
# Prebuild the workflow bundle into .temporal/workflow-bundles/, so workers start without running webpack.
RUN node --import tsx -e "require('./runtime/workflow-bundle').loadWorkflowBundle().then(() => console.log('workflow bundle built'))"

USER node
EXPOSE 3000

# Liveness of the API (GET /healthz on PORT). The worker has no HTTP server:
# run it with the healthcheck disabled (docker-compose.yml does).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/healthz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["node", "--import", "tsx", "api/server.ts"]
