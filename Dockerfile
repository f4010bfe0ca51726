# keysync: one static binary for the sidecar, rotate, rollback and status, nothing else.
#   docker build -t ghcr.io/sigil-dna/keysync:dev .
# A slim flavor carries the file store and one store family (file, vault, kube, aws, gcp);
# its image is tagged VERSION-FLAVOR (`make images` builds them all):
#   docker build --build-arg FLAVOR=vault -t ghcr.io/sigil-dna/keysync:dev-vault .
# The demo app that docker-compose.yml runs beside the sidecar is another target and
# another image; no demo code is in keysync's:
#   docker build --target demo -t ghcr.io/sigil-dna/keysync-demo:dev .
FROM golang:1.26-bookworm AS build
WORKDIR /src
# The app libraries are modules of their own, replaced from this checkout.
COPY go.mod go.sum ./
COPY keyring/go.mod keyring/
COPY reload/go.mod reload/go.sum reload/
COPY reload/reloadprom/go.mod reload/reloadprom/go.sum reload/reloadprom/
RUN go mod download
COPY . .
ARG VERSION=dev
ARG FLAVOR=full
RUN CGO_ENABLED=0 go build -tags "$(sh build/flavor-tags.sh ${FLAVOR})" -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keysync ./cmd/keysync

FROM build AS build-demo
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /demo/keysync-demo ./cmd/keysync-demo && ln -s keysync-demo /demo/demo-app

# The demo app, run as /demo-app so that it has a process name of its own.
FROM gcr.io/distroless/static:nonroot AS demo
COPY --from=build-demo /demo/ /
USER 65532:65532
ENTRYPOINT ["/demo-app"]

# The keysync image (the default target).
FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/keysync /keysync
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/keysync"]
CMD ["--help"]
