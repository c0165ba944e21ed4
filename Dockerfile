# Static, non-root image of Switchyard. Build: make image (VERSION=v1.2.3 to
# stamp a version; `make image` uses git describe).
#
# No container engine runs in CI, so deploy/image_test.go checks what it
# can without one: it builds the binary with this file's `go build` line
# and checks that it is static and that `switchyard version` prints the
# stamped version, and that USER and EXPOSE agree with the Helm chart and
# the sidecar example.
ARG GO_VERSION=1.26

# Cross-compile on the build machine's platform: the binary is pure Go.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-bookworm AS build
ARG VERSION=dev
ARG TARGETOS
ARG TARGETARCH
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/switchyard ./cmd/switchyard

# distroless static: CA certificates, tzdata and a passwd entry for the
# nonroot user, and nothing else (no shell, no package manager).
FROM gcr.io/distroless/static-debian12:nonroot
ARG VERSION=dev
LABEL org.opencontainers.image.title="switchyard" \
      org.opencontainers.image.description="Sentinel-aware Redis proxy" \
      org.opencontainers.image.source="https://github.com/pnats/switchyard" \
      org.opencontainers.image.version="${VERSION}"
COPY --from=build /out/switchyard /switchyard
# nonroot; the chart's securityContext runs as the same user and group.
USER 65532:65532
# Client ports the chart's values use (platform-kv 6379, cache-kv 6380,
# their TLS listeners 6390 and 6391), the Sentinel facade (26379, and
# 26390 over TLS), and the admin endpoint (/healthz, /readyz, /metrics).
EXPOSE 6379 6380 6390 6391 26379 26390 9190
ENTRYPOINT ["/switchyard"]
CMD ["serve"]
