// Package store is Moat's durable substrate: a NATS server with JetStream,
// embedded in the node (file store under the data directory, in-process
// connection, no TCP port unless asked), or an existing NATS deployment.
//
// Everything durable lives here: the function registry in a KV bucket,
// modules in an object store, function logs in a stream. The embedded
// server syncs every write to disk before acknowledging it (SyncAlways), so
// an acknowledged write survives a SIGKILL, a power loss or a kernel crash;
// docs/storage.md says what that costs and what each store guarantees.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Config says where the store lives.
type Config struct {
	Dir        string // data directory of the embedded server; JetStream files go under Dir/jetstream
	URL        string // connect to an existing NATS instead of embedding one
	Listen     string // host:port for the embedded server to accept NATS clients on; "" listens nowhere
	Replicas   int    // stream replicas; 1 on one node
	SyncAlways bool   // fsync before every acknowledgement (embedded server only)
}

// Store holds the NATS connection and the JetStream context.
type Store struct {
	NC       *nats.Conn
	JS       jetstream.JetStream
	ns       *server.Server
	replicas int
}

// Open starts the embedded server (or connects to cfg.URL) and returns a
// Store ready for use. Close stops what Open started.
func Open(ctx context.Context, log *slog.Logger, cfg Config) (*Store, error) {
	s := &Store{replicas: max(cfg.Replicas, 1)}
	var opts []nats.Option
	opts = append(opts, nats.Name("moat"), nats.MaxReconnects(-1))
	url := cfg.URL
	if url == "" {
		sopts := &server.Options{
			ServerName: "moat",
			JetStream:  true,
			StoreDir:   filepath.Join(cfg.Dir, "jetstream"),
			DontListen: cfg.Listen == "",
			NoSigs:     true,
			NoLog:      true,
			SyncAlways: cfg.SyncAlways,
		}
		if cfg.Listen != "" {
			host, port, err := splitHostPort(cfg.Listen)
			if err != nil {
				return nil, fmt.Errorf("nats listen %q: %w", cfg.Listen, err)
			}
			sopts.Host, sopts.Port = host, port
		}
		ns, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("nats server: %w", err)
		}
		go ns.Start()
		if !ns.ReadyForConnections(30 * time.Second) {
			ns.Shutdown()
			return nil, errors.New("nats server: not ready after 30s")
		}
		s.ns = ns
		opts = append(opts, nats.InProcessServer(ns))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		s.shutdown()
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	s.NC = nc
	js, err := jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s.JS = js
	return s, nil
}

// KV opens or creates a file-backed KV bucket keeping history versions per key.
func (s *Store) KV(ctx context.Context, bucket string, history uint8) (jetstream.KeyValue, error) {
	return s.kv(ctx, jetstream.KeyValueConfig{
		Bucket:   bucket,
		History:  history,
		Storage:  jetstream.FileStorage,
		Replicas: s.replicas,
	})
}

// kv binds the bucket cfg describes when it exists as described, and
// creates or updates it otherwise: an update, even to the same
// configuration, makes the server rewrite and sync the stream's metadata,
// which every start would pay for every bucket.
func (s *Store) kv(ctx context.Context, cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
	if st, err := s.JS.Stream(ctx, "KV_"+cfg.Bucket); err == nil && kvMatches(st.CachedInfo().Config, cfg) {
		if kv, err := s.JS.KeyValue(ctx, cfg.Bucket); err == nil {
			return kv, nil
		}
	}
	kv, err := s.JS.CreateOrUpdateKeyValue(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("kv %s: %w", cfg.Bucket, err)
	}
	return kv, nil
}

// kvMatches reports whether a KV bucket's stream has what cfg asks for, in
// the fields the store sets.
func kvMatches(have jetstream.StreamConfig, cfg jetstream.KeyValueConfig) bool {
	return have.MaxMsgsPerSubject == int64(max(cfg.History, 1)) &&
		have.MaxAge == cfg.TTL &&
		have.Storage == cfg.Storage &&
		have.Replicas == max(cfg.Replicas, 1) &&
		have.SubjectDeleteMarkerTTL == cfg.LimitMarkerTTL &&
		have.AllowMsgTTL == (cfg.LimitMarkerTTL > 0)
}

// limit is how the server records an unset limit.
func limit[T int64 | int32](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

// KVMaxAge opens or creates a file-backed KV bucket keeping one value per
// key, whose values are dropped maxAge after they were written (0: kept).
// An existing bucket takes the new maxAge.
func (s *Store) KVMaxAge(ctx context.Context, bucket string, maxAge time.Duration) (jetstream.KeyValue, error) {
	return s.kv(ctx, jetstream.KeyValueConfig{
		Bucket:   bucket,
		History:  1,
		Storage:  jetstream.FileStorage,
		Replicas: s.replicas,
		TTL:      maxAge,
	})
}

// KVWithTTL opens or creates a file-backed KV bucket keeping one value per
// key, in which a value may carry its own time to live.
func (s *Store) KVWithTTL(ctx context.Context, bucket string) (jetstream.KeyValue, error) {
	return s.kv(ctx, jetstream.KeyValueConfig{
		Bucket:         bucket,
		History:        1,
		Storage:        jetstream.FileStorage,
		Replicas:       s.replicas,
		LimitMarkerTTL: time.Minute,
	})
}

// Objects opens or creates a file-backed object store with no cap.
func (s *Store) Objects(ctx context.Context, bucket string) (jetstream.ObjectStore, error) {
	return s.ObjectsCapped(ctx, bucket, 0)
}

// ObjectsCapped opens or creates a file-backed object store holding at most
// maxBytes (stored bytes, headers included; 0: no cap); an existing bucket
// whose cap differs is updated to maxBytes.
func (s *Store) ObjectsCapped(ctx context.Context, bucket string, maxBytes int64) (jetstream.ObjectStore, error) {
	if st, err := s.JS.Stream(ctx, "OBJ_"+bucket); err == nil {
		have := st.CachedInfo().Config
		if have.Storage == jetstream.FileStorage && have.Replicas == max(s.replicas, 1) && have.MaxAge == 0 && have.MaxBytes == limit(maxBytes) {
			if obs, err := s.JS.ObjectStore(ctx, bucket); err == nil {
				return obs, nil
			}
		}
	}
	obs, err := s.JS.CreateOrUpdateObjectStore(ctx, jetstream.ObjectStoreConfig{
		Bucket:   bucket,
		Storage:  jetstream.FileStorage,
		Replicas: s.replicas,
		MaxBytes: maxBytes,
	})
	if err != nil {
		return nil, fmt.Errorf("object store %s: %w", bucket, err)
	}
	return obs, nil
}

// Stream opens or creates a file-backed stream; cfg.Storage and Replicas are
// set here. An existing stream is updated only when it differs from cfg in
// the fields streamMatches compares: a field set in cfg must be compared
// there, or a change to it will not reach an existing stream.
func (s *Store) Stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Storage = jetstream.FileStorage
	cfg.Replicas = s.replicas
	if st, err := s.JS.Stream(ctx, cfg.Name); err == nil && streamMatches(st.CachedInfo().Config, cfg) {
		return st, nil
	}
	st, err := s.JS.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return st, nil
}

// streamMatches reports whether a stream has what cfg asks for.
func streamMatches(have, cfg jetstream.StreamConfig) bool {
	return slices.Equal(have.Subjects, cfg.Subjects) &&
		have.MaxMsgsPerSubject == limit(cfg.MaxMsgsPerSubject) &&
		have.MaxMsgs == limit(cfg.MaxMsgs) &&
		have.MaxBytes == limit(cfg.MaxBytes) &&
		have.MaxMsgSize == limit(cfg.MaxMsgSize) &&
		have.MaxAge == cfg.MaxAge &&
		have.Discard == cfg.Discard &&
		have.Retention == cfg.Retention &&
		have.Storage == cfg.Storage &&
		have.Replicas == max(cfg.Replicas, 1) &&
		(cfg.Duplicates == 0 || have.Duplicates == cfg.Duplicates) &&
		have.AllowMsgTTL == cfg.AllowMsgTTL &&
		have.DenyDelete == cfg.DenyDelete &&
		have.DenyPurge == cfg.DenyPurge
}

// Close drains the connection and stops the embedded server, waiting for it
// to flush.
func (s *Store) Close() {
	if s.NC != nil {
		s.NC.Drain()
		s.NC.Close()
	}
	s.shutdown()
}

func (s *Store) shutdown() {
	if s.ns != nil {
		s.ns.Shutdown()
		s.ns.WaitForShutdown()
	}
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, err
	}
	return host, port, nil
}

// ErrContention reports a compare-and-set that lost to other writers on
// every attempt.
var ErrContention = errors.New("too many concurrent writers")

// Modify applies change to the value under key with compare-and-set,
// retrying from a fresh read when another writer got in between, up to
// attempts times. change gets nil when the key does not exist; an error from
// Lister is a JetStream listing of names: key-value or object stores.
type Lister interface {
	Name() <-chan string
	Error() error
}

// Prefixed returns the names in l that begin with prefix, without it,
// sorted.
func Prefixed(l Lister, prefix string) ([]string, error) {
	var out []string
	for n := range l.Name() {
		if b, ok := strings.CutPrefix(n, prefix); ok {
			out = append(out, b)
		}
	}
	if err := l.Error(); err != nil {
		return nil, err
	}
	slices.Sort(out)
	return out, nil
}

// it ends Modify with that error.
func Modify(ctx context.Context, kv jetstream.KeyValue, key string, attempts int, change func(cur []byte) ([]byte, error)) error {
	for i := 0; i < attempts; i++ {
		var cur []byte
		var rev uint64
		e, err := kv.Get(ctx, key)
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return err
		default:
			cur, rev = e.Value(), e.Revision()
		}
		next, err := change(cur)
		if err != nil {
			return err
		}
		if rev == 0 {
			_, err = kv.Create(ctx, key, next)
		} else {
			_, err = kv.Update(ctx, key, next, rev)
		}
		if err == nil {
			return nil
		}
		var apiErr *jetstream.APIError
		if !errors.Is(err, jetstream.ErrKeyExists) && !(errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence) {
			return err
		}
	}
	return fmt.Errorf("%s: %w", key, ErrContention)
}

// Health is what an operator asks of the store: which server the node
// talks to, in which cluster, and how full JetStream is.
type Health struct {
	Server    string   `json:"server"`            // the NATS server's name
	Cluster   string   `json:"cluster,omitempty"` // "" on one node
	Peers     []string `json:"peers,omitempty"`   // the servers holding the functions' bucket, leader first
	Embedded  bool     `json:"embedded"`
	Streams   int      `json:"streams"`
	Consumers int      `json:"consumers"`
	Memory    uint64   `json:"memory_bytes"`
	Storage   uint64   `json:"storage_bytes"`
	// MaxStorage is JetStream's file storage limit; -1 for none.
	MaxStorage int64 `json:"max_storage_bytes"`
	// Lagging names the replicas of the functions' bucket not current.
	Lagging []string `json:"lagging,omitempty"`
}

// Health reads the store's health from the server.
func (s *Store) Health(ctx context.Context) (*Health, error) {
	info, err := s.JS.AccountInfo(ctx)
	if err != nil {
		return nil, fmt.Errorf("jetstream account: %w", err)
	}
	h := &Health{Server: s.NC.ConnectedServerName(), Cluster: s.NC.ConnectedClusterName(), Embedded: s.ns != nil,
		Streams: info.Streams, Consumers: info.Consumers, Memory: info.Memory, Storage: info.Store, MaxStorage: info.Limits.MaxStore}
	if st, err := s.JS.Stream(ctx, "KV_moat_functions"); err == nil {
		if si, err := st.Info(ctx); err == nil && si.Cluster != nil {
			if si.Cluster.Leader != "" {
				h.Peers = append(h.Peers, si.Cluster.Leader)
			}
			for _, p := range si.Cluster.Replicas {
				h.Peers = append(h.Peers, p.Name)
				if !p.Current || p.Offline {
					h.Lagging = append(h.Lagging, p.Name)
				}
			}
		}
	}
	return h, nil
}
