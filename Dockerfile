# keysync: one static binary for the sidecar, rotate, rollback and status.
#   docker build -t ghcr.io/sigil-dna/keysync:dev .
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/keysync ./cmd/keysync
# The demo app is the same binary under another name, so it has a process name of its own.
RUN ln -s keysync /out/demo-app

FROM gcr.io/distroless/static:nonroot
COPY --from=build /out/ /
USER 65532:65532
EXPOSE 9102
ENTRYPOINT ["/keysync"]
CMD ["--help"]
