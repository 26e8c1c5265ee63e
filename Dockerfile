# The base is pinned to a release: .ci/test-node24 runs the test suite on this
# same Node version (it reads the version from this line).
# Build stage: the same steps as .ci/run (clean install, compile), then the
# production dependencies are what is left of the same node_modules.
FROM node:24.22.3-bookworm-slim AS build
# better-sqlite3 compiles from source when no prebuilt binary can be fetched;
# the base's own headers (/usr/local/include/node) spare node-gyp a download.
RUN apt-get update && apt-get install -y --no-install-recommends python3 make g++ && rm -rf /var/lib/apt/lists/*
ENV npm_config_nodedir=/usr/local
# Behind a TLS-inspecting proxy, the build passes its CA bundle (as
# .ci/image-build does with --volume and --build-arg); unset elsewhere. Only
# this stage sees it: the runtime stage starts from the base again.
ARG NODE_EXTRA_CA_CERTS
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY *.ts ./
COPY plugins ./plugins
COPY routes ./routes
COPY services ./services
COPY schemas ./schemas
COPY cli ./cli
# bench/ is not copied (nor sent: .dockerignore), so dist/ has no bench.
RUN npm run build && chmod +x dist/cli/main.js
COPY scripts/slim-node-modules.sh scripts/unreachable-packages.mjs ./scripts/
RUN npm prune --omit=dev --no-audit --no-fund && sh scripts/slim-node-modules.sh node_modules

# Runtime stage: production dependencies and compiled code only, no compilers.
FROM node:24.22.3-bookworm-slim
ENV HOST=0.0.0.0 \
    PORT=3000 \
    RUNS_DIR=/data/runs
WORKDIR /app
# package.json says the code is ES modules; the lock file is not read at run time.
COPY package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY configs ./configs
COPY public ./public
# `runstore verify|stats|reindex` on the PATH, as `npx runstore` in a checkout.
RUN ln -s /app/dist/cli/main.js /usr/local/bin/runstore && mkdir -p /data/runs && chown -R node:node /data
USER node
VOLUME ["/data/runs"]
EXPOSE 3000
# Kept only in Docker-format images: OCI-format builds (podman, buildah without
# `--format docker`) drop it; see README.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 3000) + '/health').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
CMD ["node", "dist/server.js"]
