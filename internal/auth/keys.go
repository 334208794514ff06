package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Roles, from the most to the least powerful.
const (
	RoleAdmin     = "admin"     // everything
	RoleDeployer  = "deployer"  // functions, secrets by name
	RoleInvoker   = "invoker"   // invoke the functions its key names
	RoleAuditor   = "auditor"   // read audit, usage, inventory, logs
	RolePublisher = "publisher" // publish events on the subjects its key names, nothing else
)

// Roles lists every role.
var Roles = []string{RoleAdmin, RoleDeployer, RoleInvoker, RoleAuditor, RolePublisher}

// MaxSubjects bounds the subject patterns of a publisher key.
const MaxSubjects = 64

// Errors of identification. Both are answered 401.
var (
	ErrNoCredential  = errors.New("no credential")
	ErrBadCredential = errors.New("invalid, expired or revoked credential")
)

// ErrNoKey reports an unknown key id.
var ErrNoKey = errors.New("no such key")

// Identity is an authenticated caller.
type Identity struct {
	ID        string   // key id, or "admin" for the bootstrap token
	Role      string   // one of Roles
	Functions []string // for an invoker: the functions it may call; empty means any function whose auth is key
	Subjects  []string // for a publisher: the subject patterns it may publish on
}

// User is how the caller is shown to functions in REMOTE_USER and in logs.
func (id *Identity) User() string {
	if id.ID == "admin" {
		return "admin"
	}
	return "key:" + id.ID
}

// MayInvoke reports whether the identity may invoke fn.
func (id *Identity) MayInvoke(fn string) bool {
	switch id.Role {
	case RoleAdmin:
		return true
	case RoleInvoker:
		return len(id.Functions) == 0 || slices.Contains(id.Functions, fn)
	}
	return false
}

// Key is a stored API key. Only the SHA-256 of its secret is kept.
type Key struct {
	ID        string     `json:"id"`
	Role      string     `json:"role"`
	Functions []string   `json:"functions,omitempty"`
	Subjects  []string   `json:"subjects,omitempty"` // a publisher's subject patterns
	Note      string     `json:"note,omitempty"`
	Created   time.Time  `json:"created"`
	CreatedBy string     `json:"created_by,omitempty"`
	Expires   *time.Time `json:"expires,omitempty"`
	Hash      string     `json:"hash,omitempty"` // hex SHA-256 of the secret; never leaves the node
}

// Keys identifies callers: the admin token and the API keys kept in a KV
// bucket. It is safe for concurrent use. Keys are cached in memory and the
// cache follows the bucket, so a revocation on any node takes effect at
// once.
type Keys struct {
	log   *slog.Logger
	admin *Admin
	kv    jetstream.KeyValue
	now   func() time.Time

	mu    sync.RWMutex
	cache map[string]*Key
}

// tokenPrefix of API keys: "moat_" + id + "_" + secret.
const keyPrefix = "moat_"

var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// NewKeys returns Keys over bucket kv and starts following it until ctx ends.
func NewKeys(ctx context.Context, log *slog.Logger, admin *Admin, kv jetstream.KeyValue) (*Keys, error) {
	k := &Keys{log: log.With("component", "auth"), admin: admin, kv: kv, now: time.Now, cache: map[string]*Key{}}
	w, err := kv.WatchAll(ctx)
	if err != nil {
		return nil, fmt.Errorf("watch keys: %w", err)
	}
	// The watcher sends every current key, then nil, then changes.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		k.apply(e)
	}
	go func() {
		defer w.Stop()
		for e := range w.Updates() {
			if e != nil {
				k.apply(e)
			}
		}
	}()
	return k, nil
}

func (k *Keys) apply(e jetstream.KeyValueEntry) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if e.Operation() != jetstream.KeyValuePut {
		delete(k.cache, e.Key())
		return
	}
	var key Key
	if err := json.Unmarshal(e.Value(), &key); err != nil {
		k.log.Error("undecodable key record", slog.String("key_id", e.Key()), slog.Any("err", err))
		delete(k.cache, e.Key())
		return
	}
	k.cache[e.Key()] = &key
}

// Create stores a new key and returns it with its token, which is shown
// only now. ttl 0 means no expiry.
func (k *Keys) Create(ctx context.Context, role string, functions, subjects []string, ttl time.Duration, note, createdBy string) (*Key, string, error) {
	if !slices.Contains(Roles, role) {
		return nil, "", fmt.Errorf("role %q: want one of %s", role, strings.Join(Roles, ", "))
	}
	if len(functions) > 0 && role != RoleInvoker {
		return nil, "", fmt.Errorf("only invoker keys are scoped to functions")
	}
	if len(subjects) > 0 && role != RolePublisher {
		return nil, "", fmt.Errorf("only publisher keys are scoped to subjects")
	}
	if role == RolePublisher && (len(subjects) == 0 || len(subjects) > MaxSubjects) {
		return nil, "", fmt.Errorf("a publisher key names the subjects it may publish on: 1 to %d patterns", MaxSubjects)
	}
	if ttl < 0 {
		return nil, "", fmt.Errorf("expiry must be in the future")
	}
	if len(note) > 256 {
		return nil, "", fmt.Errorf("note over 256 bytes")
	}
	var idb [10]byte
	var secret [32]byte
	rand.Read(idb[:])
	rand.Read(secret[:])
	id := idEncoding.EncodeToString(idb[:])
	sec := base64.RawURLEncoding.EncodeToString(secret[:])
	sum := sha256.Sum256([]byte(sec))
	key := &Key{
		ID: id, Role: role, Functions: functions, Subjects: subjects, Note: note,
		Created: k.now().UTC(), CreatedBy: createdBy,
		Hash: hex.EncodeToString(sum[:]),
	}
	if ttl > 0 {
		exp := key.Created.Add(ttl)
		key.Expires = &exp
	}
	b, err := json.Marshal(key)
	if err != nil {
		return nil, "", err
	}
	if _, err := k.kv.Create(ctx, id, b); err != nil {
		return nil, "", fmt.Errorf("store key: %w", err)
	}
	cached := *key // the caller gets its own copy
	k.mu.Lock()
	k.cache[id] = &cached
	k.mu.Unlock()
	return key, keyPrefix + id + "_" + sec, nil
}

// List returns every key, without hashes, oldest first.
func (k *Keys) List() []Key {
	k.mu.RLock()
	out := make([]Key, 0, len(k.cache))
	for _, key := range k.cache {
		c := *key
		c.Hash = ""
		out = append(out, c)
	}
	k.mu.RUnlock()
	slices.SortFunc(out, func(a, b Key) int { return a.Created.Compare(b.Created) })
	return out
}

// Revoke deletes a key; it stops working at once.
func (k *Keys) Revoke(ctx context.Context, id string) error {
	k.mu.RLock()
	_, ok := k.cache[id]
	k.mu.RUnlock()
	if !ok {
		return fmt.Errorf("%.40q: %w", id, ErrNoKey)
	}
	if err := k.kv.Purge(ctx, id); err != nil {
		return fmt.Errorf("revoke %s: %w", id, err)
	}
	k.mu.Lock()
	delete(k.cache, id)
	k.mu.Unlock()
	return nil
}

// Identify returns who r's bearer token belongs to. It fails with
// ErrNoCredential when there is none and ErrBadCredential when it is wrong,
// expired or revoked. Secrets are compared in constant time.
func (k *Keys) Identify(r *http.Request) (*Identity, error) {
	tok, ok := BearerToken(r)
	if !ok {
		return nil, ErrNoCredential
	}
	if k.admin != nil && k.admin.check(tok) {
		return &Identity{ID: "admin", Role: RoleAdmin}, nil
	}
	rest, ok := strings.CutPrefix(tok, keyPrefix)
	id, sec, ok2 := strings.Cut(rest, "_")
	if !ok || !ok2 {
		return nil, ErrBadCredential
	}
	k.mu.RLock()
	key := k.cache[id]
	k.mu.RUnlock()
	want := make([]byte, sha256.Size)
	if key != nil {
		if h, err := hex.DecodeString(key.Hash); err == nil && len(h) == sha256.Size {
			want = h
		}
	}
	got := sha256.Sum256([]byte(sec))
	if subtle.ConstantTimeCompare(got[:], want) != 1 || key == nil {
		return nil, ErrBadCredential
	}
	if key.Expires != nil && !k.now().Before(*key.Expires) {
		return nil, ErrBadCredential
	}
	return &Identity{ID: key.ID, Role: key.Role, Functions: key.Functions, Subjects: key.Subjects}, nil
}

// Lookup returns the identity of the key id as it stands now, for a
// session opened with it: ErrBadCredential once it is revoked or expired.
// "admin" is the admin token.
func (k *Keys) Lookup(id string) (*Identity, error) {
	if id == "admin" {
		if k.admin == nil {
			return nil, ErrBadCredential
		}
		return &Identity{ID: "admin", Role: RoleAdmin}, nil
	}
	k.mu.RLock()
	key := k.cache[id]
	k.mu.RUnlock()
	if key == nil || key.Expires != nil && !k.now().Before(*key.Expires) {
		return nil, ErrBadCredential
	}
	return &Identity{ID: key.ID, Role: key.Role, Functions: key.Functions, Subjects: key.Subjects}, nil
}

// The console's session cookie: ConsoleCookie over plain HTTP (loopback
// only), ConsoleSecureCookie over TLS, where the __Host- prefix makes the
// browser refuse it from anywhere but a secure origin with Path=/.
const (
	ConsoleCookie       = "moat_console"
	ConsoleSecureCookie = "__Host-moat_console"
)

// PlatformCookie reports whether a Set-Cookie value names the console's
// cookie, in any case or prefix: a function may not set it. Browsers scope
// cookies by host and not by port, so a function served on the node's
// address could otherwise replace or shadow an operator's session.
func PlatformCookie(setCookie string) bool {
	name, _, _ := strings.Cut(setCookie, "=")
	name = strings.ToLower(strings.TrimSpace(name))
	for _, p := range []string{"__host-", "__secure-"} {
		name = strings.TrimPrefix(name, p)
	}
	return strings.HasPrefix(name, ConsoleCookie)
}
