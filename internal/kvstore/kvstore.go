// Package kvstore keeps the KV buckets that functions reach through their
// grants. Each bucket is a JetStream KV bucket; every value is sealed with
// AES-256-GCM under the bucket's own data key before it leaves the process,
// bound to its bucket and key so that sealed values cannot be swapped.
//
// Keys are not encrypted: they are subjects in the store, so they must not
// hold secrets. A user key may hold any UTF-8 text but control characters;
// it is escaped into the characters NATS allows, in a way that keeps
// prefixes, so that Keys(prefix) can filter.
package kvstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/store"
)

// Limits on what a function may store.
const (
	MaxKey   = 1024      // bytes of a key
	MaxValue = 512 << 10 // bytes of a value
	MaxKeys  = 10000     // keys one listing returns
)

// bucketPrefix names the JetStream KV buckets of functions.
const bucketPrefix = "fnkv_"

// Errors a caller maps to the guest's status codes.
var (
	ErrNotFound = errors.New("no such key")
	ErrConflict = errors.New("revision conflict")
	ErrInvalid  = errors.New("invalid key")
	ErrTooLarge = errors.New("too large")
)

// Store is every function bucket of a node. It is safe for concurrent use.
type Store struct {
	st   *store.Store
	keys *seal.DataKeys

	mu      sync.Mutex
	buckets map[string]jetstream.KeyValue
}

// New returns a Store over st whose values are sealed with keys.
func New(st *store.Store, keys *seal.DataKeys) *Store {
	return &Store{st: st, keys: keys, buckets: map[string]jetstream.KeyValue{}}
}

// Ensure creates bucket when it does not exist yet, with its data key.
func (s *Store) Ensure(ctx context.Context, bucket string) error {
	_, err := s.bucket(ctx, bucket, true)
	if err != nil {
		return err
	}
	_, err = s.keys.Sealer(ctx, scope(bucket))
	return err
}

func scope(bucket string) string { return "kv/" + bucket }

func (s *Store) bucket(ctx context.Context, name string, create bool) (jetstream.KeyValue, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if kv, ok := s.buckets[name]; ok {
		return kv, nil
	}
	var kv jetstream.KeyValue
	var err error
	if create {
		kv, err = s.st.KVWithTTL(ctx, bucketPrefix+name)
	} else {
		kv, err = s.st.JS.KeyValue(ctx, bucketPrefix+name)
		if errors.Is(err, jetstream.ErrBucketNotFound) {
			return nil, fmt.Errorf("bucket %s does not exist: %w", name, ErrNotFound)
		}
	}
	if err != nil {
		return nil, err
	}
	s.buckets[name] = kv
	return kv, nil
}

// Buckets lists the function buckets that exist.
func (s *Store) Buckets(ctx context.Context) ([]string, error) {
	return store.Prefixed(s.st.JS.KeyValueStoreNames(ctx), bucketPrefix)
}

// Get returns key's value and revision.
func (s *Store) Get(ctx context.Context, bucket, key string) ([]byte, uint64, error) {
	kv, enc, err := s.open(ctx, bucket, key)
	if err != nil {
		return nil, 0, err
	}
	e, err := kv.Get(ctx, enc)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, err
	}
	v, err := s.unseal(ctx, bucket, key, e.Value())
	return v, e.Revision(), err
}

// Put stores value under key; ttl > 0 makes it expire (rounded up to whole
// seconds).
func (s *Store) Put(ctx context.Context, bucket, key string, value []byte, ttl time.Duration) (uint64, error) {
	kv, enc, sealed, err := s.prepare(ctx, bucket, key, value)
	if err != nil {
		return 0, err
	}
	if ttl <= 0 {
		return kv.Put(ctx, enc, sealed)
	}
	msg := &nats.Msg{Subject: "$KV." + bucketPrefix + bucket + "." + enc, Data: sealed}
	ack, err := s.st.JS.PublishMsg(ctx, msg, jetstream.WithMsgTTL(roundTTL(ttl)))
	if err != nil {
		return 0, err
	}
	return ack.Sequence, nil
}

// Create stores value only when key holds nothing: ErrConflict otherwise.
func (s *Store) Create(ctx context.Context, bucket, key string, value []byte, ttl time.Duration) (uint64, error) {
	kv, enc, sealed, err := s.prepare(ctx, bucket, key, value)
	if err != nil {
		return 0, err
	}
	var opts []jetstream.KVCreateOpt
	if ttl > 0 {
		opts = append(opts, jetstream.KeyTTL(roundTTL(ttl)))
	}
	rev, err := kv.Create(ctx, enc, sealed, opts...)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrConflict
	}
	return rev, err
}

// Update stores value only when key's revision is still revision.
func (s *Store) Update(ctx context.Context, bucket, key string, value []byte, revision uint64) (uint64, error) {
	kv, enc, sealed, err := s.prepare(ctx, bucket, key, value)
	if err != nil {
		return 0, err
	}
	if revision == 0 {
		return 0, fmt.Errorf("%w: revision 0 (use create)", ErrConflict)
	}
	rev, err := kv.Update(ctx, enc, sealed, revision)
	if errors.Is(err, jetstream.ErrKeyRevisionMismatch) || errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrConflict
	}
	return rev, err
}

// Delete removes key; deleting an absent key is not an error.
func (s *Store) Delete(ctx context.Context, bucket, key string) error {
	kv, enc, err := s.open(ctx, bucket, key)
	if err != nil {
		return err
	}
	return kv.Delete(ctx, enc)
}

// Keys lists the keys that start with prefix, sorted; more than MaxKeys
// is ErrTooLarge.
func (s *Store) Keys(ctx context.Context, bucket, prefix string) ([]string, error) {
	if len(prefix) > MaxKey || checkText(prefix) != nil {
		return nil, fmt.Errorf("%w: prefix is not a valid key prefix", ErrInvalid)
	}
	kv, err := s.bucket(ctx, bucket, false)
	if err != nil {
		return nil, err
	}
	lister, err := kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	encPrefix := Escape(prefix)
	var out []string
	for enc := range lister.Keys() {
		if !strings.HasPrefix(enc, encPrefix) {
			continue
		}
		if len(out) == MaxKeys {
			return nil, fmt.Errorf("%w: more than %d keys start with %q", ErrTooLarge, MaxKeys, prefix)
		}
		k, err := Unescape(enc)
		if err != nil {
			continue // not written through this package
		}
		out = append(out, k)
	}
	slices.Sort(out)
	return out, nil
}

func (s *Store) open(ctx context.Context, bucket, key string) (jetstream.KeyValue, string, error) {
	if err := checkKey(key); err != nil {
		return nil, "", err
	}
	kv, err := s.bucket(ctx, bucket, false)
	if err != nil {
		return nil, "", err
	}
	return kv, Escape(key), nil
}

func (s *Store) prepare(ctx context.Context, bucket, key string, value []byte) (jetstream.KeyValue, string, []byte, error) {
	if len(value) > MaxValue {
		return nil, "", nil, fmt.Errorf("%w: value is %d bytes, more than %d", ErrTooLarge, len(value), MaxValue)
	}
	kv, enc, err := s.open(ctx, bucket, key)
	if err != nil {
		return nil, "", nil, err
	}
	sl, err := s.keys.Sealer(ctx, scope(bucket))
	if err != nil {
		return nil, "", nil, err
	}
	return kv, enc, sl.Seal(value, aad(bucket, key)), nil
}

func (s *Store) unseal(ctx context.Context, bucket, key string, sealed []byte) ([]byte, error) {
	sl, err := s.keys.Sealer(ctx, scope(bucket))
	if err != nil {
		return nil, err
	}
	v, err := sl.Open(sealed, aad(bucket, key))
	if err != nil {
		return nil, fmt.Errorf("value of %s in %s cannot be opened: %w", key, bucket, err)
	}
	return v, nil
}

func aad(bucket, key string) []byte { return []byte(scope(bucket) + "\x00" + key) }

func roundTTL(d time.Duration) time.Duration {
	return max(time.Second, (d+time.Second-1)/time.Second*time.Second)
}

func checkKey(k string) error {
	switch {
	case k == "":
		return fmt.Errorf("%w: key is empty", ErrInvalid)
	case len(k) > MaxKey:
		return fmt.Errorf("%w: key is %d bytes, more than %d", ErrInvalid, len(k), MaxKey)
	}
	if err := checkText(k); err != nil {
		return fmt.Errorf("%w: key %w", ErrInvalid, err)
	}
	return nil
}

func checkText(s string) error {
	if !utf8.ValidString(s) {
		return errors.New("is not valid UTF-8")
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return errors.New("contains a control character")
	}
	return nil
}

// Escape maps a key to the characters a NATS key may hold: letters, digits,
// '-', '_' and '/' stay; every other byte becomes "=XX". Each byte maps on
// its own, so the escape of a prefix is a prefix of the escape.
func Escape(k string) string {
	var b strings.Builder
	b.Grow(len(k))
	const hex = "0123456789ABCDEF"
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('=')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

// Unescape reverses Escape.
func Unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '=' {
			b.WriteByte(s[i])
			continue
		}
		if i+2 >= len(s) {
			return "", errors.New("truncated escape")
		}
		hi, lo := unhex(s[i+1]), unhex(s[i+2])
		if hi < 0 || lo < 0 {
			return "", errors.New("bad escape")
		}
		b.WriteByte(byte(hi<<4 | lo))
		i += 2
	}
	return b.String(), nil
}

func unhex(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}
