# syntax=docker/dockerfile:1
# Airlock container image: `docker build -t airlock --build-arg VERSION=$(node -p "require('./package.json').version") .`
# (see docs/deployment.md). Three stages: the build stage compiles TypeScript with the dev
# dependencies; the deps stage installs production dependencies only; the runtime stage holds those,
# dist/ and the default policies, without npm, and runs as a fixed non-root UID.

FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the `prepare` script builds, but the sources are not copied yet (keeps this layer cached).
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src/ ./src/
RUN npm run build

FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
# Production dependencies only; --ignore-scripts skips `prepare` (no TypeScript here, dist/ comes from the build stage).
RUN npm ci --omit=dev --ignore-scripts --no-audit --no-fund

FROM node:24-bookworm-slim AS runtime
ARG VERSION=dev
LABEL org.opencontainers.image.title="Airlock" \
      org.opencontainers.image.description="A policy proxy that puts a human in the loop of what AI agents do over HTTP" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/node:24-bookworm-slim"
ENV NODE_ENV=production
WORKDIR /app
# npm, npx and corepack are not needed to run Airlock: removed, they are no attack surface and no CVE noise.
RUN rm -rf /usr/local/lib/node_modules /usr/local/bin/npm /usr/local/bin/npx /usr/local/bin/corepack \
 && groupadd --gid 10001 airlock \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin airlock
COPY --from=deps /app/node_modules/ ./node_modules/
COPY package.json ./
COPY --from=build /src/dist/ ./dist/
# Default policies (the example); mount your own folder over /etc/airlock/policies (no VOLUME: a
# declared volume would leave an anonymous volume behind every container that does not mount one).
COPY policies/ /etc/airlock/policies/

# The young generation capped as in dist/cli/main.js's own start line (see docs/architecture.md).
ENV NODE_OPTIONS=--max-semi-space-size=16 \
    AIRLOCK_POLICIES=/etc/airlock/policies \
    AIRLOCK_LISTEN=0.0.0.0:8080 \
    AIRLOCK_ADMIN_LISTEN=0.0.0.0:9090
# 8080: the agent-facing proxy; 9090: the admin listener (/healthz, /readyz, /metrics, approvals API).
EXPOSE 8080 9090

# Files stay owned by root (read-only for the process); the process runs as UID 10001.
# Kubernetes' runAsUser and the egress-lock iptables rule (--uid-owner) use the same number.
USER 10001

# No curl in the slim image: Node's fetch. /readyz, as compose and the Kubernetes readiness probe:
# healthy means a policy is in force and the proxy accepts connections. Follows the port of
# AIRLOCK_ADMIN_LISTEN (over loopback, so the admin listener must be bound to 0.0.0.0 or 127.0.0.1).
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "-e", "const p=(process.env.AIRLOCK_ADMIN_LISTEN||':9090').split(':').pop();fetch('http://127.0.0.1:'+p+'/readyz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]

ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve"]
