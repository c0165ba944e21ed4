# Static, non-root image. Build: make image
FROM golang:1.26-bookworm AS build
ARG VERSION=dev
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/switchyard ./cmd/switchyard

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/switchyard /switchyard
USER 65532:65532
# Client ports (one per group), the Sentinel facade, and the admin endpoint.
EXPOSE 6379 6380 26379 9190
ENTRYPOINT ["/switchyard"]
