# Build stage: the same steps as .ci/run (clean install, compile).
FROM node:24-bookworm-slim AS build
# better-sqlite3 compiles from source when no prebuilt binary fits the platform.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY *.ts ./
COPY plugins ./plugins
COPY routes ./routes
COPY services ./services
COPY schemas ./schemas
COPY bench ./bench
RUN npm run build

# Production dependencies only, built where the compilers are.
FROM build AS production-dependencies
WORKDIR /deps
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

# Runtime stage: production dependencies and compiled code only, no compilers.
FROM node:24-bookworm-slim
ENV HOST=0.0.0.0 \
    PORT=3000 \
    RUNS_DIR=/data/runs
WORKDIR /app
COPY package.json package-lock.json ./
COPY --from=production-dependencies /deps/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY configs ./configs
COPY public ./public
RUN mkdir -p /data/runs && chown -R node:node /data
USER node
VOLUME ["/data/runs"]
EXPOSE 3000
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "dist/server.js"]
