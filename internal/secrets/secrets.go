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

// Meta is what anyone with the right role may see of a secret.
type Meta struct {
	Name      string    `json:"name"`
	Created   time.Time `json:"created"`
	Updated   time.Time `json:"updated"`
	UpdatedBy string    `json:"updated_by,omitempty"`
}

type entry struct {
	Meta
	Sealed []byte `json:"sealed"`
}

// Store reads and writes secrets. It is safe for concurrent use.
type Store struct {
	kv   jetstream.KeyValue
	keys *seal.DataKeys
	now  func() time.Time
}

// Open opens the secrets bucket in st.
func Open(ctx context.Context, st *store.Store, keys *seal.DataKeys) (*Store, error) {
	kv, err := st.KV(ctx, Bucket, 1)
	if err != nil {
		return nil, err
	}
	return &Store{kv: kv, keys: keys, now: time.Now}, nil
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
	return store.Modify(ctx, s.kv, name, 5, func(cur []byte) ([]byte, error) {
		e := entry{Meta: Meta{Name: name, Created: now}}
		if cur != nil {
			var old entry
			if json.Unmarshal(cur, &old) == nil && !old.Created.IsZero() {
				e.Created = old.Created
			}
		}
		e.Updated, e.UpdatedBy = now, actor
		e.Sealed = sl.Seal(value, aad(name))
		return json.Marshal(e)
	})
}

// Get returns name's value.
func (s *Store) Get(ctx context.Context, name string) ([]byte, error) {
	e, err := s.entry(ctx, name)
	if err != nil {
		return nil, err
	}
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

func (s *Store) entry(ctx context.Context, name string) (*entry, error) {
	if manifest.CheckSecretName(name) != nil {
		return nil, ErrNotFound
	}
	kv, err := s.kv.Get(ctx, name)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var e entry
	if err := json.Unmarshal(kv.Value(), &e); err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return &e, nil
}

// List returns every secret's name and dates, sorted by name.
func (s *Store) List(ctx context.Context) ([]Meta, error) {
	lister, err := s.kv.ListKeys(ctx)
	if err != nil {
		return nil, err
	}
	defer lister.Stop()
	var out []Meta
	for k := range lister.Keys() {
		e, err := s.entry(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, e.Meta)
	}
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
	if _, err := s.entry(ctx, name); err != nil {
		return err
	}
	return s.kv.Purge(ctx, name)
}
