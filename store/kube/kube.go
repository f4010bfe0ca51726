// Package kube is the Kubernetes Secret store. The keyring document is one data key of a
// Secret (default "keyring"); a Secret holding only "value" (what the ticket's
// `kubectl create secret generic spiral-event-secret --from-literal=value=…` makes) is a
// plain value. Reads come from an informer restricted to that one Secret by
// fieldSelector=metadata.name=NAME, so a change reaches the sidecar within a second and
// an idle poll makes no API request; it needs get, list and watch on that name only.
// Writes are updates with the resourceVersion that was read (compare-and-swap).
package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/sigil-dna/keysync/keyring"
	"github.com/sigil-dna/keysync/store"
)

var (
	_ store.Store   = (*Store)(nil)
	_ store.Watcher = (*Store)(nil)
)

// Defaults of the Secret's data keys and the annotation prefix.
const (
	DefaultKey      = "keyring"
	DefaultPlainKey = "value"
	annotation      = "keysync.sigil-dna.io/"
)

// Config locates the Secret.
type Config struct {
	Namespace, Name string
	Key             string // data key of the keyring document, default "keyring"
	PlainKey        string // data key of a plain value, default "value"
	// Kubeconfig is a kubeconfig file for operators; empty means in-cluster config when
	// running in a pod, else the usual KUBECONFIG / ~/.kube/config.
	Kubeconfig string
	// REST overrides both (tests).
	REST  *rest.Config
	Plain store.PlainOptions
	Log   *slog.Logger
}

// ParseURL splits k8s://NAMESPACE/NAME.
func ParseURL(raw string) (namespace, name string, err error) {
	rest, ok := strings.CutPrefix(raw, "k8s://")
	if !ok {
		return "", "", fmt.Errorf("kube: %q is not a k8s://NAMESPACE/NAME URL", raw)
	}
	namespace, name, _ = strings.Cut(strings.Trim(rest, "/"), "/")
	if namespace == "" || name == "" || strings.Contains(name, "/") {
		return "", "", fmt.Errorf("kube: %q needs a namespace and a Secret name, e.g. k8s://sigil/spiral-event-secret", raw)
	}
	return namespace, name, nil
}

// Store is one Secret.
type Store struct {
	cfg    Config
	client *Core

	mu       sync.Mutex
	informer cache.SharedIndexInformer
	stop     chan struct{}
	wg       sync.WaitGroup // the informer's goroutine
	subs     []chan struct{}
	closed   bool
	// watching: the informer's watch stream is open. Only then is its cache current;
	// otherwise (the API server is unreachable, a token expired) a read goes to the API
	// server, fails as the server does, and the sidecar reports its staleness.
	watching bool
}

// New builds the client; it does not contact the API server.
func New(cfg Config) (*Store, error) {
	if cfg.Key == "" {
		cfg.Key = DefaultKey
	}
	if cfg.PlainKey == "" {
		cfg.PlainKey = DefaultPlainKey
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	rc := cfg.REST
	if rc == nil {
		var err error
		if rc, err = restConfig(cfg.Kubeconfig); err != nil {
			return nil, err
		}
	}
	rc = rest.CopyConfig(rc)
	rc.UserAgent = "keysync"
	client, err := NewCore(rc)
	if err != nil {
		return nil, err
	}
	return &Store{cfg: cfg, client: client}, nil
}

func restConfig(kubeconfig string) (*rest.Config, error) { return RESTConfig(kubeconfig, "") }

// RESTConfig is the client configuration keysync uses: in-cluster when running in a pod
// and no kubeconfig is given, else the kubeconfig file (or $KUBECONFIG, ~/.kube/config),
// with context instead of its current context when not empty.
func RESTConfig(kubeconfig, context string) (*rest.Config, error) {
	if kubeconfig == "" && context == "" && os.Getenv("KUBERNETES_SERVICE_HOST") != "" {
		rc, err := rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("kube: in-cluster config: %w", err)
		}
		return rc, nil
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	if kubeconfig != "" {
		rules.ExplicitPath = kubeconfig
	}
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: context}).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kube: loading kubeconfig: %w", err)
	}
	return rc, nil
}

// String implements store.Store.
func (s *Store) String() string { return "k8s://" + s.cfg.Namespace + "/" + s.cfg.Name }

// Watch implements store.Watcher: it starts the informer (list+watch of the one Secret,
// resumed by client-go after disconnects) and signals every change.
func (s *Store) Watch(ctx context.Context) (<-chan struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errors.New("kube: store closed")
	}
	if s.informer == nil {
		lw := cache.NewListWatchFromClient(s.client.RESTClient(), "secrets", s.cfg.Namespace,
			fields.OneTermEqualSelector("metadata.name", s.cfg.Name))
		open := lw.WatchFuncWithContext
		lw.WatchFuncWithContext = func(ctx context.Context, o metav1.ListOptions) (watch.Interface, error) {
			w, err := open(ctx, o)
			if err != nil {
				return nil, err
			}
			return s.observe(w), nil
		}
		s.informer = cache.NewSharedIndexInformer(lw, &corev1.Secret{}, 0, cache.Indexers{})
		notify := func() {
			s.mu.Lock()
			defer s.mu.Unlock()
			for _, ch := range s.subs {
				select {
				case ch <- struct{}{}:
				default:
				}
			}
		}
		_, err := s.informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { notify() },
			UpdateFunc: func(any, any) { notify() },
			DeleteFunc: func(any) { notify() },
		})
		if err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		s.stop = make(chan struct{})
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.informer.Run(s.stop)
		}()
	}
	ch := make(chan struct{}, 1)
	s.subs = append(s.subs, ch)
	return ch, nil
}

// observe marks the store watching while w's stream is open.
func (s *Store) observe(w watch.Interface) watch.Interface {
	o := &observed{Interface: w, out: make(chan watch.Event), done: make(chan struct{})}
	s.mu.Lock()
	s.watching = true
	s.mu.Unlock()
	go func() {
		defer close(o.out)
		defer func() {
			s.mu.Lock()
			s.watching = false
			s.mu.Unlock()
		}()
		for ev := range w.ResultChan() {
			select {
			case o.out <- ev:
			case <-o.done:
				return
			}
		}
	}()
	return o
}

// observed is a watch whose events pass through observe.
type observed struct {
	watch.Interface
	out  chan watch.Event
	done chan struct{}
	once sync.Once
}

func (o *observed) ResultChan() <-chan watch.Event { return o.out }

func (o *observed) Stop() {
	o.once.Do(func() { close(o.done) })
	o.Interface.Stop()
}

// Read implements store.Store: from the informer's cache once it has synced and while
// its watch stream is open, else with one GET.
func (s *Store) Read(ctx context.Context) (*store.Snapshot, error) {
	s.mu.Lock()
	inf, watching := s.informer, s.watching
	s.mu.Unlock()
	var sec *corev1.Secret
	if inf != nil && inf.HasSynced() && watching {
		obj, ok, err := inf.GetStore().GetByKey(s.cfg.Namespace + "/" + s.cfg.Name)
		if err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		if !ok {
			return nil, fmt.Errorf("kube secret %s: %w", s, store.ErrNotFound)
		}
		sec = obj.(*corev1.Secret)
	} else {
		var err error
		sec, err = s.client.GetSecret(ctx, s.cfg.Namespace, s.cfg.Name)
		if apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("kube secret %s: %w", s, store.ErrNotFound)
		}
		if err != nil {
			return nil, fmt.Errorf("kube: reading secret %s: %w", s, err)
		}
	}
	snap, err := s.decode(sec)
	return snap, store.Invalid(sec.ResourceVersion, err)
}

func (s *Store) decode(sec *corev1.Secret) (*store.Snapshot, error) {
	version := sec.ResourceVersion
	if doc, ok := sec.Data[s.cfg.Key]; ok {
		r, err := keyring.Parse(doc)
		if err != nil {
			return nil, fmt.Errorf("kube secret %s key %q: %w", s, s.cfg.Key, err)
		}
		return &store.Snapshot{Keyring: r, Version: version}, nil
	}
	value, ok := sec.Data[s.cfg.PlainKey]
	if !ok {
		return nil, fmt.Errorf("kube secret %s: %w: neither key %q nor key %q", s, keyring.ErrInvalid, s.cfg.Key, s.cfg.PlainKey)
	}
	if err := store.CheckPlain(value); err != nil {
		return nil, fmt.Errorf("kube secret %s key %q: %w", s, s.cfg.PlainKey, err)
	}
	gen, err := strconv.ParseInt(version, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("kube secret %s: resourceVersion %q is not a number", s, version)
	}
	cur := keyring.PlainValue{Value: value, CreatedAt: changedAt(sec), Version: gen}
	r, err := keyring.FromPlain(cur, nil, s.cfg.Plain, "kubernetes secret "+s.cfg.Namespace+"/"+s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("kube secret %s key %q: %w", s, s.cfg.PlainKey, err)
	}
	// A Secret keeps no history: a reader completes the value with the keys it holds.
	return &store.Snapshot{Keyring: r, Version: version, Plain: true, PlainCurrent: &cur, Schedule: s.cfg.Plain}, nil
}

// changedAt is when the Secret's data was last written, the same for every reader: the
// newest time of a managedFields entry that owns data (a label or annotation edit by
// another manager does not count), else the newest of any entry, else the creation time.
func changedAt(sec *corev1.Secret) time.Time {
	data, newest, owned := sec.CreationTimestamp.Time, sec.CreationTimestamp.Time, false
	for _, mf := range sec.ManagedFields {
		if mf.Time == nil {
			continue
		}
		if mf.Time.After(newest) {
			newest = mf.Time.Time
		}
		if mf.FieldsV1 != nil && strings.Contains(mf.FieldsV1.GetRawString(), `"f:data"`) {
			owned = true
			if mf.Time.After(data) {
				data = mf.Time.Time
			}
		}
	}
	if !owned {
		return newest
	}
	return data
}

// Write implements store.Store: an update based on the resourceVersion that was read (or
// a create when ifVersion is empty), recording who, why and which key ids as annotations.
func (s *Store) Write(ctx context.Context, r *keyring.Keyring, ifVersion string) (string, error) {
	doc, err := keyring.Encode(r)
	if err != nil {
		return "", fmt.Errorf("kube: %w", err)
	}
	notes := map[string]string{
		annotation + "generation": strconv.FormatInt(r.Generation, 10), annotation + "rotated-by": r.RotatedBy,
		annotation + "reason": r.Reason, annotation + "key-ids": strings.Join(r.IDs(), ","),
		annotation + "rotated-at": r.RotatedAt.UTC().Format(time.RFC3339Nano),
	}
	if ifVersion == "" {
		sec := &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: s.cfg.Name, Namespace: s.cfg.Namespace, Annotations: notes},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{s.cfg.Key: doc},
		}
		out, err := s.client.CreateSecret(ctx, sec)
		if apierrors.IsAlreadyExists(err) {
			return "", fmt.Errorf("kube secret %s exists: %w", s, store.ErrConflict)
		}
		if err != nil {
			return "", fmt.Errorf("kube: creating secret %s: %w", s, err)
		}
		return out.ResourceVersion, nil
	}
	sec, err := s.client.GetSecret(ctx, s.cfg.Namespace, s.cfg.Name)
	if apierrors.IsNotFound(err) {
		return "", fmt.Errorf("kube secret %s is gone: %w", s, store.ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("kube: reading secret %s: %w", s, err)
	}
	sec.ResourceVersion = ifVersion // the server refuses the update if it moved since
	if sec.Data == nil {
		sec.Data = map[string][]byte{}
	}
	sec.Data[s.cfg.Key] = doc
	if sec.Annotations == nil {
		sec.Annotations = map[string]string{}
	}
	for k, v := range notes {
		sec.Annotations[k] = v
	}
	out, err := s.client.UpdateSecret(ctx, sec)
	if apierrors.IsConflict(err) {
		return "", fmt.Errorf("kube secret %s: based on resourceVersion %s: %w", s, ifVersion, store.ErrConflict)
	}
	if err != nil {
		return "", fmt.Errorf("kube: updating secret %s: %w", s, err)
	}
	return out.ResourceVersion, nil
}

// Close implements store.Store: it stops the informer and waits for it.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		if s.stop != nil {
			close(s.stop)
		}
	}
	s.mu.Unlock()
	s.wg.Wait()
	return nil
}
