package vulndb

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

// ErrConflict reports imports on other nodes that kept replacing the
// database while this one was being stored; retry.
var ErrConflict = errors.New("vulnerability database changed concurrently")

// Where a Store keeps the database: each import's encoded DB is a new
// object in the object store, and one KV record points at the current one.
const (
	bucket         = "moat_vulndb"
	pointerKey     = "current"
	importAttempts = 3
)

// Status says what the current database holds.
type Status struct {
	ImportedAt time.Time      `json:"imported_at"` // zero before the first import
	Counts     map[string]int `json:"counts"`      // advisories that can match, per ecosystem
	Total      int            `json:"total"`       // advisories that can match
}

// pointer is the KV record naming the current database object.
type pointer struct {
	Object     string         `json:"object"`
	SHA256     string         `json:"sha256"`
	ImportedAt time.Time      `json:"imported_at"`
	Counts     map[string]int `json:"counts"`
	Total      int            `json:"total"`
}

// Store keeps the vulnerability database in the store, so that it
// survives restarts, and holds the current one in memory. It is safe for
// concurrent use; imports run one at a time.
//
// An import stores the new database as a new object, then moves the
// pointer to it with a compare-and-set, then deletes the object it
// replaced. A crash or a refused file before the pointer moves leaves the
// previous database current (at worst with an orphaned object), and a
// pointer moved by another node since this one loaded is merged with, not
// overwritten.
type Store struct {
	kv      jetstream.KeyValue
	objects jetstream.ObjectStore
	now     func() time.Time

	mu  sync.Mutex // held by Import
	cur atomic.Pointer[loaded]
}

// loaded is a database in memory and where it came from.
type loaded struct {
	db     *DB
	status Status
	rev    uint64 // revision of the pointer record; 0 before the first import
	object string
}

// OpenStore opens the database's buckets in st and loads the current
// database. It fails when the pointer names an object that is missing or
// does not decode, rather than start with an empty database.
func OpenStore(ctx context.Context, st *store.Store) (*Store, error) {
	objects, err := st.Objects(ctx, bucket)
	if err != nil {
		return nil, err
	}
	kv, err := st.KV(ctx, bucket, 1)
	if err != nil {
		return nil, err
	}
	s := &Store{kv: kv, objects: objects, now: time.Now}
	l, err := s.load(ctx)
	if err != nil {
		return nil, err
	}
	s.cur.Store(l)
	return s, nil
}

// load reads the current database from the store.
func (s *Store) load(ctx context.Context) (*loaded, error) {
	e, err := s.kv.Get(ctx, pointerKey)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return &loaded{db: &DB{}, status: Status{Counts: map[string]int{}}}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("vulnerability database pointer: %w", err)
	}
	var p pointer
	if err := json.Unmarshal(e.Value(), &p); err != nil {
		return nil, fmt.Errorf("vulnerability database pointer: %w", err)
	}
	b, err := s.objects.GetBytes(ctx, p.Object)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", p.Object, err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != p.SHA256 {
		return nil, fmt.Errorf("vulnerability database %s: %w: SHA-256 differs from the pointer's", p.Object, ErrInvalidDB)
	}
	db, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database %s: %w", p.Object, err)
	}
	return &loaded{db: db, status: Status{ImportedAt: p.ImportedAt, Counts: db.Counts(), Total: db.Len()}, rev: e.Revision(), object: p.Object}, nil
}

// Current returns the current database: an empty one before the first
// import, and for a nil Store. The DB does not change; a later import
// makes a new one.
func (s *Store) Current() *DB {
	if s == nil {
		return &DB{}
	}
	return s.cur.Load().db
}

// Status returns what the current database holds. The map is the
// caller's.
func (s *Store) Status() Status {
	if s == nil {
		return Status{Counts: map[string]int{}}
	}
	st := s.cur.Load().status
	st.Counts = maps.Clone(st.Counts)
	return st
}

// Import reads path as Import does, merges it into the current database
// (newer advisories win), stores the result and makes it current. When
// reading, merging or storing fails, the current database and Status stay
// as they were. It returns ErrConflict when other nodes kept importing
// meanwhile.
func (s *Store) Import(ctx context.Context, path string) (Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in, err := importPath(ctx, path)
	if err != nil {
		return Status{}, err
	}
	cur := s.cur.Load()
	for attempt := 1; ; attempt++ {
		next, err := s.publish(ctx, cur, cur.db.Merge(in))
		if err == nil {
			s.cur.Store(next)
			return s.Status(), nil
		}
		if !errors.Is(err, ErrConflict) || attempt == importAttempts {
			return Status{}, err
		}
		// Another node imported since this one loaded: merge into that.
		if cur, err = s.load(ctx); err != nil {
			return Status{}, err
		}
	}
}

// publish stores db as a new object and points the KV record at it,
// provided the record is still the one cur was loaded from.
func (s *Store) publish(ctx context.Context, cur *loaded, db *DB) (*loaded, error) {
	b, err := db.Encode()
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(b)
	now := s.now().UTC()
	name := fmt.Sprintf("db-%s-%x", now.Format("20060102T150405.000000000Z"), sum[:6])
	if _, err := s.objects.PutBytes(ctx, name, b); err != nil {
		return nil, fmt.Errorf("store vulnerability database: %w", err)
	}
	p := pointer{Object: name, SHA256: hex.EncodeToString(sum[:]), ImportedAt: now, Counts: db.Counts(), Total: db.Len()}
	pb, err := json.Marshal(p)
	if err != nil {
		return nil, fmt.Errorf("vulnerability database pointer: %w", err)
	}
	var rev uint64
	if cur.rev == 0 {
		rev, err = s.kv.Create(ctx, pointerKey, pb)
	} else {
		rev, err = s.kv.Update(ctx, pointerKey, pb, cur.rev)
	}
	if err != nil {
		// The new object is not current and never will be.
		s.deleteObject(ctx, name)
		if errors.Is(err, jetstream.ErrKeyExists) || errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return nil, ErrConflict
		}
		return nil, fmt.Errorf("vulnerability database pointer: %w", err)
	}
	if cur.object != "" && cur.object != name {
		s.deleteObject(ctx, cur.object)
	}
	return &loaded{db: db, status: Status{ImportedAt: now, Counts: p.Counts, Total: p.Total}, rev: rev, object: name}, nil
}

// deleteObject removes an object no pointer names, even when ctx has
// ended. A failure only leaves an unused object behind, so it is not
// reported.
func (s *Store) deleteObject(ctx context.Context, name string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = s.objects.Delete(ctx, name)
}
