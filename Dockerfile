# syntax=docker/dockerfile:1
# Two stages: install production dependencies with the lockfile, then copy only what runs into a clean image.
ARG BUN_VERSION=1.4.5

FROM oven/bun:${BUN_VERSION}-slim AS deps
WORKDIR /app
COPY package.json bun.lock bunfig.toml ./
# bun applies patchedDependencies at install (postgres.js: README "Poolers").
COPY patches ./patches
RUN bun install --frozen-lockfile --production --ignore-scripts

FROM oven/bun:${BUN_VERSION}-slim AS runtime
WORKDIR /app
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8000 \
    PGLITE_DIR=/app/data
COPY --from=deps /app/node_modules ./node_modules
COPY package.json tsconfig.json ./
COPY src ./src
COPY drizzle ./drizzle
COPY scripts/cli.ts ./scripts/cli.ts
# The image's unprivileged `bun` user owns only the embedded-database directory.
RUN mkdir -p /app/data && chown bun:bun /app/data
USER bun
EXPOSE 8000
VOLUME ["/app/data"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
  CMD ["bun", "-e", "fetch(`http://127.0.0.1:${process.env.PORT}/health`).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]
# Applies pending migrations (under an advisory lock), then serves; SIGTERM drains in-flight requests.
CMD ["bun", "src/runtimes/bun.ts"]
