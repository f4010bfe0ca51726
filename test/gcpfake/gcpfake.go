// Package gcpfake is a fake Google Cloud Secret Manager: no emulator can be installed
// here. It serves, over real gRPC on loopback, the calls the gcpsm store makes, with the
// API's documented semantics, for the real client.
package gcpfake

import (
	"context"
	"fmt"
	"hash/crc32"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// Server is a fake: no Secret Manager emulator can be installed here. It
// serves, over real gRPC on loopback, the calls the store makes, with the API's
// documented semantics: versions numbered from 1 and listed newest first, disabled
// versions refused by AccessSecretVersion (FAILED_PRECONDITION), a missing one NOT_FOUND,
// a stale etag ABORTED, the payload's CRC32C checked on add and returned on access.
type Server struct {
	secretmanagerpb.UnimplementedSecretManagerServiceServer
	mu      sync.Mutex
	secrets map[string]*secret
	calls   map[string]int
	// throttled is how many of the next calls fail with ResourceExhausted (Throttle).
	throttled int
	// Addr is where it listens (host:port).
	Addr string
}

type secret struct {
	secret   *secretmanagerpb.Secret
	versions []*secretmanagerpb.SecretVersion // index i is version i+1
	payloads [][]byte
	etag     int
}

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// Start serves a fake on a loopback port until the test ends and returns it with the
// client options that reach it.
func Start(t testing.TB) (*Server, []option.ClientOption) {
	t.Helper()
	f, stop, err := Listen()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return f, ClientOptions(f.Addr)
}

// Listen serves a fake on a loopback port until stop is called (for programs; tests use
// Start). Processes reach it at Addr through SECRET_MANAGER_EMULATOR_HOST.
func Listen() (f *Server, stop func(), err error) {
	f = &Server{secrets: map[string]*secret{}, calls: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	f.Addr = ln.Addr().String()
	srv := grpc.NewServer(grpc.UnaryInterceptor(f.throttle))
	secretmanagerpb.RegisterSecretManagerServiceServer(srv, f)
	go srv.Serve(ln)
	return f, srv.Stop, nil
}

// ClientOptions reach a fake at addr: plain gRPC, no credentials.
func ClientOptions(addr string) []option.ClientOption {
	return []option.ClientOption{
		option.WithEndpoint(addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())),
	}
}

// Throttle makes the next n calls fail as Secret Manager does over a quota
// (ResourceExhausted), before they act.
func (f *Server) Throttle(n int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.throttled = n
}

func (f *Server) throttle(ctx context.Context, req any, info *grpc.UnaryServerInfo, next grpc.UnaryHandler) (any, error) {
	f.mu.Lock()
	throttled := f.throttled > 0
	if throttled {
		f.throttled--
		f.calls[info.FullMethod[strings.LastIndex(info.FullMethod, "/")+1:]]++
	}
	f.mu.Unlock()
	if throttled {
		return nil, status.Error(codes.ResourceExhausted, "Quota exceeded for quota metric 'Access requests' and limit 'Access requests per minute per project'")
	}
	return next(ctx, req)
}

func (f *Server) count(method string) {
	f.calls[method]++
}

// Calls returns how many calls of each method were made, and resets the counts.
func (f *Server) Calls() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.calls
	f.calls = map[string]int{}
	return c
}

func (s *secret) bumpEtag() {
	s.etag++
	s.secret.Etag = `"` + strconv.Itoa(s.etag) + `"`
}

func (f *Server) lookup(name string) (*secret, error) {
	s, ok := f.secrets[name]
	if !ok {
		return nil, status.Errorf(codes.NotFound, "Secret [%s] not found", name)
	}
	return s, nil
}

// version resolves NAME/versions/N.
func (f *Server) version(name string) (*secret, int, error) {
	secretName, v, ok := strings.Cut(name, "/versions/")
	if !ok {
		return nil, 0, status.Errorf(codes.InvalidArgument, "bad version name %q", name)
	}
	s, err := f.lookup(secretName)
	if err != nil {
		return nil, 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > len(s.versions) {
		return nil, 0, status.Errorf(codes.NotFound, "Secret Version [%s] not found", name)
	}
	return s, n - 1, nil
}

func (f *Server) CreateSecret(_ context.Context, r *secretmanagerpb.CreateSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("CreateSecret")
	name := r.Parent + "/secrets/" + r.SecretId
	if _, ok := f.secrets[name]; ok {
		return nil, status.Errorf(codes.AlreadyExists, "Secret [%s] already exists", name)
	}
	sec := proto.Clone(r.Secret).(*secretmanagerpb.Secret)
	sec.Name, sec.CreateTime = name, timestamppb.Now()
	s := &secret{secret: sec}
	s.bumpEtag()
	f.secrets[name] = s
	return proto.Clone(sec).(*secretmanagerpb.Secret), nil
}

func (f *Server) GetSecret(_ context.Context, r *secretmanagerpb.GetSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("GetSecret")
	s, err := f.lookup(r.Name)
	if err != nil {
		return nil, err
	}
	return proto.Clone(s.secret).(*secretmanagerpb.Secret), nil
}

func (f *Server) UpdateSecret(_ context.Context, r *secretmanagerpb.UpdateSecretRequest) (*secretmanagerpb.Secret, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("UpdateSecret")
	s, err := f.lookup(r.Secret.Name)
	if err != nil {
		return nil, err
	}
	if r.Secret.Etag != "" && r.Secret.Etag != s.secret.Etag {
		return nil, status.Errorf(codes.Aborted, "etag %s does not match %s", r.Secret.Etag, s.secret.Etag)
	}
	for _, p := range r.UpdateMask.GetPaths() {
		switch p {
		case "annotations":
			s.secret.Annotations = r.Secret.Annotations
		case "labels":
			s.secret.Labels = r.Secret.Labels
		default:
			return nil, status.Errorf(codes.InvalidArgument, "update of %s is not supported by the fake", p)
		}
	}
	s.bumpEtag()
	return proto.Clone(s.secret).(*secretmanagerpb.Secret), nil
}

func (f *Server) AddSecretVersion(_ context.Context, r *secretmanagerpb.AddSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("AddSecretVersion")
	s, err := f.lookup(r.Parent)
	if err != nil {
		return nil, err
	}
	data := r.Payload.GetData()
	if c := r.Payload.DataCrc32C; c != nil && *c != int64(crc32.Checksum(data, crc32c)) {
		return nil, status.Errorf(codes.InvalidArgument, "data_crc32c does not match the data")
	}
	v := &secretmanagerpb.SecretVersion{
		Name: fmt.Sprintf("%s/versions/%d", r.Parent, len(s.versions)+1), CreateTime: timestamppb.Now(),
		State: secretmanagerpb.SecretVersion_ENABLED, Etag: `"1"`, ClientSpecifiedPayloadChecksum: r.Payload.DataCrc32C != nil,
	}
	s.versions = append(s.versions, v)
	s.payloads = append(s.payloads, slices.Clone(data))
	return proto.Clone(v).(*secretmanagerpb.SecretVersion), nil
}

func (f *Server) ListSecretVersions(_ context.Context, r *secretmanagerpb.ListSecretVersionsRequest) (*secretmanagerpb.ListSecretVersionsResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("ListSecretVersions")
	s, err := f.lookup(r.Parent)
	if err != nil {
		return nil, err
	}
	if r.Filter != "" && r.Filter != "state:ENABLED" {
		return nil, status.Errorf(codes.InvalidArgument, "filter %q is not supported by the fake", r.Filter)
	}
	start, _ := strconv.Atoi(r.PageToken)
	resp := &secretmanagerpb.ListSecretVersionsResponse{}
	seen := 0
	for i := len(s.versions) - 1; i >= 0; i-- { // newest first, as the API lists them
		v := s.versions[i]
		if r.Filter != "" && v.State != secretmanagerpb.SecretVersion_ENABLED {
			continue
		}
		if seen++; seen <= start {
			continue
		}
		if r.PageSize > 0 && len(resp.Versions) == int(r.PageSize) {
			resp.NextPageToken = strconv.Itoa(start + len(resp.Versions))
			break
		}
		resp.Versions = append(resp.Versions, proto.Clone(v).(*secretmanagerpb.SecretVersion))
	}
	resp.TotalSize = int32(len(resp.Versions))
	return resp, nil
}

func (f *Server) AccessSecretVersion(_ context.Context, r *secretmanagerpb.AccessSecretVersionRequest) (*secretmanagerpb.AccessSecretVersionResponse, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("AccessSecretVersion")
	s, i, err := f.version(r.Name)
	if err != nil {
		return nil, err
	}
	if st := s.versions[i].State; st != secretmanagerpb.SecretVersion_ENABLED {
		return nil, status.Errorf(codes.FailedPrecondition, "Secret Version [%s] is in %s state", s.versions[i].Name, st)
	}
	data := s.payloads[i]
	sum := int64(crc32.Checksum(data, crc32c))
	if s.versions[i].Etag == "corrupt" { // set by Corrupt(): the data changes, the stored CRC does not
		data = append(slices.Clone(data[:len(data)-2]), '!', '}')
	}
	return &secretmanagerpb.AccessSecretVersionResponse{Name: s.versions[i].Name, Payload: &secretmanagerpb.SecretPayload{Data: data, DataCrc32C: &sum}}, nil
}

func (f *Server) DisableSecretVersion(_ context.Context, r *secretmanagerpb.DisableSecretVersionRequest) (*secretmanagerpb.SecretVersion, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count("DisableSecretVersion")
	s, i, err := f.version(r.Name)
	if err != nil {
		return nil, err
	}
	v := s.versions[i]
	if r.Etag != "" && r.Etag != v.Etag {
		return nil, status.Errorf(codes.Aborted, "etag mismatch")
	}
	v.State = secretmanagerpb.SecretVersion_DISABLED
	v.Etag = `"2"`
	return proto.Clone(v).(*secretmanagerpb.SecretVersion), nil
}

// Corrupt makes the newest version's payload arrive changed, with its original CRC32C:
// a fault the real service cannot be made to show.
func (f *Server) Corrupt(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := f.secrets[name]
	s.versions[len(s.versions)-1].Etag = "corrupt"
}
