// Package secrets keeps the node's secrets: values sealed with AES-256-GCM
// under the "secrets" data key, each bound to its name, in a KV bucket whose
// writes are synced before they are acknowledged. Names and dates are in
// the clear; there is no way to list values, and the only reader of a value
// is a function whose manifest names it (through package host).
package secrets

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/store"
)

// Bucket is the KV bucket of secrets.
const Bucket = "moat_secrets"

// MaxValue caps a secret's size.
const MaxValue = 64 << 10

const scope = "secrets"

// ErrNotFound reports a secret that is not set.
var ErrNotFound = errors.New("no such secret")

// ErrNotAllowed reports a function the secret's list does not name.
var ErrNotAllowed = errors.New("not among the functions allowed the secret")

// MaxFunctions bounds a secret's list of functions.
const MaxFunctions = 1000

// Meta is what anyone with the right role may see of a secret.
type Meta struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	UpdatedBy string    `json:"updated_by,omitempty"`
	// Functions are the functions an admin allows to be granted the
	// secret: a deploy granting it to any other is refused, and so is a
	// read by one. None until an admin names them.
	Functions   []string `json:"functions"`
	FunctionsBy string   `json:"functions_by,omitempty"`
}

type entry struct {
	Meta
	Sealed []byte `json:"sealed"`
	rev    uint64
}

// Store reads and writes secrets. It is safe for concurrent use.
//
// Reads are served from memory: the store keeps every entry, still sealed,
// and a watch on the bucket brings in what other nodes write. A read
// unseals the value it returns, and nothing else.
type Store struct {
	kv    jetstream.KeyValue
	keys  *seal.DataKeys
	now   func() time.Time
	watch jetstream.KeyWatcher

	mu    sync.RWMutex
	cache map[string]*entry
}

// Open opens the secrets bucket in st and loads its entries; Close stops
// watching it.
func Open(ctx context.Context, st *store.Store, keys *seal.DataKeys) (*Store, error) {
	kv, err := st.KV(ctx, Bucket, 1)
	if err != nil {
		return nil, err
	}
	s := &Store{kv: kv, keys: keys, now: time.Now, cache: map[string]*entry{}}
	s.watch, err = kv.WatchAll(context.WithoutCancel(ctx))
	if err != nil {
		return nil, fmt.Errorf("watch %s: %w", Bucket, err)
	}
	// The initial values, up to the nil that ends them.
	for e := range s.watch.Updates() {
		if e == nil {
			break
		}
		s.apply(e)
	}
	go func() {
		for e := range s.watch.Updates() {
			if e != nil {
				s.apply(e)
			}
		}
	}()
	return s, nil
}

// Close stops watching the bucket.
func (s *Store) Close() error { return s.watch.Stop() }

// apply brings an update of the bucket into the cache, unless the cache
// already holds a later revision.
func (s *Store) apply(kve jetstream.KeyValueEntry) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if cur, ok := s.cache[kve.Key()]; ok && cur.rev >= kve.Revision() {
		return
	}
	if kve.Operation() != jetstream.KeyValuePut {
		s.cache[kve.Key()] = &entry{rev: kve.Revision()} // a tombstone
		return
	}
	var e entry
	if json.Unmarshal(kve.Value(), &e) != nil {
		return
	}
	e.rev = kve.Revision()
	s.cache[kve.Key()] = &e
}

func aad(name string) []byte { return []byte(scope + "\x00" + name) }

// Set stores value as name's secret, creating or replacing it.
func (s *Store) Set(ctx context.Context, name string, value []byte, actor string) error {
	if err := manifest.CheckSecretName(name); err != nil {
		return err
	}
	switch {
	case len(value) == 0:
		return errors.New("the value is empty")
	case len(value) > MaxValue:
		return fmt.Errorf("the value is %d bytes, more than %d", len(value), MaxValue)
	}
	sl, err := s.keys.Sealer(ctx, scope)
	if err != nil {
		return err
	}
	now := s.now().UTC()
	err = store.Modify(ctx, s.kv, name, 5, func(cur []byte) ([]byte, error) {
		e := entry{Meta: Meta{Name: name, Created: now}}
		if cur != nil {
			var old entry
			if json.Unmarshal(cur, &old) == nil && !old.Created.IsZero() {
				e.Created = old.Created
				e.Functions, e.FunctionsBy = old.Functions, old.FunctionsBy
			}
		}
		e.Updated, e.UpdatedBy = now, actor
		e.Sealed = sl.Seal(value, aad(name))
		return json.Marshal(e)
	})
	if err != nil {
		return err
	}
	// Read the write back, so that a read right after Set sees it.
	if kve, err := s.kv.Get(ctx, name); err == nil {
		s.apply(kve)
	}
	return nil
}

// SetFunctions sets the functions allowed to be granted name, replacing the
// list; an empty list allows none. The secret must be set.
func (s *Store) SetFunctions(ctx context.Context, name string, functions []string, actor string) error {
	if err := manifest.CheckSecretName(name); err != nil {
		return err
	}
	if len(functions) > MaxFunctions {
		return fmt.Errorf("more than %d functions", MaxFunctions)
	}
	list := slices.Clone(functions)
	for _, f := range list {
		if !manifest.ValidName(f) {
			return fmt.Errorf("%q is not a function name", truncate(f, 70))
		}
	}
	slices.Sort(list)
	list = slices.Compact(list)
	if list == nil {
		list = []string{}
	}
	err := store.Modify(ctx, s.kv, name, 5, func(cur []byte) ([]byte, error) {
		var e entry
		if cur == nil || json.Unmarshal(cur, &e) != nil || e.Sealed == nil {
			return nil, fmt.Errorf("%w: %s (set its value first)", ErrNotFound, name)
		}
		e.Functions, e.FunctionsBy = list, actor
		return json.Marshal(e)
	})
	if err != nil {
		return err
	}
	if kve, err := s.kv.Get(ctx, name); err == nil {
		s.apply(kve)
	}
	return nil
}

// MayGrant tells whether fn may be granted name: nil, ErrNotFound, or
// ErrNotAllowed.
func (s *Store) MayGrant(ctx context.Context, name, fn string) error {
	e, err := s.entry(ctx, name)
	if err != nil {
		return err
	}
	if !slices.Contains(e.Functions, fn) {
		return ErrNotAllowed
	}
	return nil
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// GetFor returns name's value for function fn: ErrNotAllowed when the
// secret's list of functions does not name fn.
func (s *Store) GetFor(ctx context.Context, name, fn string) ([]byte, error) {
	e, err := s.entry(ctx, name)
	if err != nil {
		return nil, err
	}
	if !slices.Contains(e.Functions, fn) {
		return nil, ErrNotAllowed
	}
	return s.open(ctx, name, e)
}

func (s *Store) open(ctx context.Context, name string, e *entry) ([]byte, error) {
	sl, err := s.keys.Sealer(ctx, scope)
	if err != nil {
		return nil, err
	}
	v, err := sl.Open(e.Sealed, aad(name))
	if err != nil {
		return nil, fmt.Errorf("secret %s cannot be opened: %w", name, err)
	}
	return v, nil
}

func (s *Store) entry(_ context.Context, name string) (*entry, error) {
	s.mu.RLock()
	e, ok := s.cache[name]
	s.mu.RUnlock()
	if !ok || e.Sealed == nil {
		return nil, ErrNotFound
	}
	return e, nil
}

// List returns every secret's name and dates, sorted by name.
func (s *Store) List(ctx context.Context) ([]Meta, error) {
	s.mu.RLock()
	var out []Meta
	for _, e := range s.cache {
		if e.Sealed != nil {
			m := e.Meta
			if m.Functions == nil {
				m.Functions = []string{} // a secret from before lists: none
			}
			out = append(out, m)
		}
	}
	s.mu.RUnlock()
	slices.SortFunc(out, func(a, b Meta) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return out, nil
}

// Delete removes name's secret; ErrNotFound when it is not set.
func (s *Store) Delete(ctx context.Context, name string) error {
	e, err := s.entry(ctx, name)
	if err != nil {
		return err
	}
	if err := s.kv.Purge(ctx, name); err != nil {
		return err
	}
	s.mu.Lock()
	if cur := s.cache[name]; cur == e {
		s.cache[name] = &entry{rev: e.rev + 1} // a tombstone until the watch brings the purge
	}
	s.mu.Unlock()
	return nil
}
