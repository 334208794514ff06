package seal

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

// ErrInvalidScope reports a scope name outside the grammar: 1 to 200
// characters, parts of a-z, 0-9, '_' and '-' separated by single '/'.
var ErrInvalidScope = errors.New("invalid scope: want 1 to 200 characters, parts of a-z 0-9 _ - separated by /")

const (
	maxScopeLen = 200

	// dataKeyLabel heads the additional data of a wrapped data key, before
	// its scope, so an entry copied to another scope does not unwrap.
	dataKeyLabel = "moat data key\x00"

	// rewrapAttempts bounds the compare-and-set retries for one entry.
	rewrapAttempts = 10
)

// entry is the value stored for a scope's data key.
type entry struct {
	Wrapped   []byte    `json:"wrapped"`    // Keyring.Wrap output; it names its master key
	MasterKey string    `json:"master_key"` // id of the wrapping master key, for people
	Created   time.Time `json:"created"`
	Rewrapped time.Time `json:"rewrapped,omitzero"`
}

// DataKeys keeps one data key per scope in a KV bucket, wrapped by the
// master keys of a [Keyring], and hands out a [Sealer] per scope. It is
// safe for concurrent use, and several DataKeys (on several nodes) may
// share one bucket: they agree on one key per scope. Nodes sharing a bucket
// must share the master key too, or each unwraps only what it wrapped.
type DataKeys struct {
	kv  jetstream.KeyValue
	now func() time.Time

	mu    sync.Mutex
	ring  *Keyring
	cache map[string]*Sealer // by scope
}

// NewDataKeys returns DataKeys over kv, which the caller creates (for
// example a bucket "moat_datakeys" with history 1), wrapping with ring.
func NewDataKeys(kv jetstream.KeyValue, ring *Keyring) *DataKeys {
	return &DataKeys{kv: kv, now: time.Now, ring: ring, cache: map[string]*Sealer{}}
}

// Sealer returns the sealer of scope, creating the scope's data key when it
// has none. Nodes that race to create one agree on a single key: the first
// write wins and the others read it. Sealers are cached; a later call for
// the same scope does not reach the store. It fails with ErrInvalidScope,
// with the unwrap errors of [Keyring.Unwrap], or with the store's error.
func (d *DataKeys) Sealer(ctx context.Context, scope string) (*Sealer, error) {
	if err := CheckScope(scope); err != nil {
		return nil, err
	}
	d.mu.Lock()
	s, ok := d.cache[scope]
	ring := d.ring
	d.mu.Unlock()
	if ok {
		return s, nil
	}
	key := kvKey(scope)
	for range 3 {
		e, err := d.kv.Get(ctx, key)
		if err == nil {
			dk, err := unwrapEntry(scope, e.Value(), ring)
			if err != nil {
				return nil, err
			}
			return d.remember(scope, dk)
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) {
			return nil, fmt.Errorf("data key %s: %w", scope, err)
		}
		dk := make([]byte, keySize)
		rand.Read(dk)
		v, err := newEntry(scope, dk, ring, d.now(), time.Time{})
		if err != nil {
			clear(dk)
			return nil, err
		}
		_, err = d.kv.Create(ctx, key, v)
		if err == nil {
			return d.remember(scope, dk)
		}
		clear(dk)
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return nil, fmt.Errorf("data key %s: %w", scope, err)
		}
		// Another node created it first: read theirs.
	}
	return nil, fmt.Errorf("data key %s: %w", scope, store.ErrContention)
}

// remember caches the sealer of scope under data key dk, which it clears,
// unless another goroutine cached one first.
func (d *DataKeys) remember(scope string, dk []byte) (*Sealer, error) {
	s, err := newSealer(scope, dk)
	clear(dk)
	if err != nil {
		return nil, fmt.Errorf("data key %s: %w", scope, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if cached, ok := d.cache[scope]; ok {
		return cached, nil
	}
	d.cache[scope] = s
	return s, nil
}

// Rewrap wraps every data key with the current master key of newRing,
// updating each entry with compare-and-set, and returns how many it
// rewrapped. Entries already wrapped by that key are skipped, so Rewrap can
// be run again after a crash or a failure. It unwraps with newRing,
// falling back to d's keyring, and from its start d wraps new data keys
// with newRing. Values sealed under the data keys are untouched.
//
// Rewrap is the middle step of a master key rotation; see the package
// documentation. Other processes sharing the bucket must not create data
// keys with the old master key meanwhile.
func (d *DataKeys) Rewrap(ctx context.Context, newRing *Keyring) (int, error) {
	d.mu.Lock()
	old := d.ring
	d.ring = newRing
	d.mu.Unlock()
	keys, err := d.keys(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, key := range keys {
		done, err := d.rewrapKey(ctx, key, newRing, old)
		if err != nil {
			return n, err
		}
		if done {
			n++
		}
	}
	return n, nil
}

// errSkip ends a compare-and-set that has nothing to change.
var errSkip = errors.New("skip")

// rewrapKey rewraps the data key stored under key with newRing's current
// master key, reporting whether it changed the entry.
func (d *DataKeys) rewrapKey(ctx context.Context, key string, newRing, old *Keyring) (bool, error) {
	scope, ok := scopeFromKey(key)
	if !ok {
		return false, nil // not a data key
	}
	err := store.Modify(ctx, d.kv, key, rewrapAttempts, func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, errSkip // deleted since listed
		}
		var e entry
		if err := json.Unmarshal(cur, &e); err != nil {
			return nil, fmt.Errorf("data key %s: %w", scope, err)
		}
		if id, err := wrappedKeyID(e.Wrapped); err == nil && id == newRing.ID() {
			return nil, errSkip
		}
		dk, err := unwrapEntry(scope, cur, newRing, old)
		if err != nil {
			return nil, err
		}
		defer clear(dk)
		return newEntry(scope, dk, newRing, e.Created, d.now())
	})
	switch {
	case errors.Is(err, errSkip):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("rewrap data key %s: %w", scope, err)
	}
	return true, nil
}

// Scopes returns the scopes that have a data key, sorted.
func (d *DataKeys) Scopes(ctx context.Context) ([]string, error) {
	keys, err := d.keys(ctx)
	if err != nil {
		return nil, err
	}
	scopes := make([]string, 0, len(keys))
	for _, k := range keys {
		if s, ok := scopeFromKey(k); ok {
			scopes = append(scopes, s)
		}
	}
	slices.Sort(scopes)
	return scopes, nil
}

// keys lists the bucket's keys, each once.
func (d *DataKeys) keys(ctx context.Context) ([]string, error) {
	kl, err := d.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	defer kl.Stop()
	var keys []string
	for k := range kl.Keys() {
		keys = append(keys, k)
	}
	// The lister ends early, without an error, when ctx ends.
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("list data keys: %w", err)
	}
	slices.Sort(keys)
	return slices.Compact(keys), nil
}

// newEntry wraps dk for scope with ring and encodes the entry.
func newEntry(scope string, dk []byte, ring *Keyring, created, rewrapped time.Time) ([]byte, error) {
	w, err := ring.Wrap(dk, dataKeyAAD(scope))
	if err != nil {
		return nil, fmt.Errorf("data key %s: %w", scope, err)
	}
	return json.Marshal(entry{Wrapped: w, MasterKey: ring.ID(), Created: created.UTC(), Rewrapped: rewrapped.UTC()})
}

// unwrapEntry returns the data key in the entry v of scope, unwrapped by
// the first ring that holds its master key.
func unwrapEntry(scope string, v []byte, rings ...*Keyring) ([]byte, error) {
	var e entry
	if err := json.Unmarshal(v, &e); err != nil {
		return nil, fmt.Errorf("data key %s: %w", scope, err)
	}
	var err error
	for _, ring := range rings {
		if ring == nil {
			continue
		}
		var dk []byte
		dk, err = ring.Unwrap(e.Wrapped, dataKeyAAD(scope))
		if err == nil {
			return dk, nil
		}
		if !errors.Is(err, ErrUnknownMasterKey) {
			break
		}
	}
	return nil, fmt.Errorf("data key %s: %w", scope, err)
}

func dataKeyAAD(scope string) []byte { return []byte(dataKeyLabel + scope) }

// CheckScope reports whether scope is a valid scope name: 1 to 200
// characters, parts of a-z, 0-9, '_' and '-' separated by single '/', as
// in "secrets" or "kv/contacts". It fails with ErrInvalidScope.
func CheckScope(scope string) error {
	if scope == "" || len(scope) > maxScopeLen {
		return fmt.Errorf("scope of %d characters: %w", len(scope), ErrInvalidScope)
	}
	for part := range strings.SplitSeq(scope, "/") {
		if part == "" {
			return fmt.Errorf("scope %q: empty part: %w", scope, ErrInvalidScope)
		}
		for _, c := range []byte(part) {
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
				return fmt.Errorf("scope %q: %w", scope, ErrInvalidScope)
			}
		}
	}
	return nil
}

// kvKey returns the KV key of a valid scope: its parts become subject
// tokens ("kv/contacts" is stored as "kv.contacts").
func kvKey(scope string) string { return strings.ReplaceAll(scope, "/", ".") }

// scopeFromKey inverts kvKey, reporting false for a key that no valid
// scope maps to.
func scopeFromKey(key string) (string, bool) {
	scope := strings.ReplaceAll(key, ".", "/")
	return scope, CheckScope(scope) == nil && kvKey(scope) == key
}
