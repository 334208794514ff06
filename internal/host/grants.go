package host

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"maps"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

// GrantsBucket is the KV bucket of grant use, one key per function.
const GrantsBucket = "moat_grants"

// Grants remembers when each grant of each function was last used, so that
// granted-but-unused permissions can be reported. Uses are kept in memory
// and written to the store every few seconds and on Close: a crash loses at
// most the last interval's "last used" times, never a grant.
type Grants struct {
	log *slog.Logger
	kv  jetstream.KeyValue
	now func() time.Time

	mu      sync.Mutex
	pending map[string]map[string]time.Time // function -> grant -> last use
}

// OpenGrants opens the grant-use bucket in st.
func OpenGrants(ctx context.Context, log *slog.Logger, st *store.Store) (*Grants, error) {
	kv, err := st.KV(ctx, GrantsBucket, 1)
	if err != nil {
		return nil, err
	}
	return &Grants{log: log.With("component", "grants"), kv: kv, now: time.Now, pending: map[string]map[string]time.Time{}}, nil
}

// Use notes that function used grant now. Grants are written "kv:BUCKET:ACCESS",
// "secret:NAME", "egress:PREFIX" and "invoke:FUNCTION".
func (g *Grants) Use(function, grant string) {
	now := g.now().UTC().Truncate(time.Second)
	g.mu.Lock()
	defer g.mu.Unlock()
	m := g.pending[function]
	if m == nil {
		m = map[string]time.Time{}
		g.pending[function] = m
	}
	m[grant] = now
}

// Used returns when each of function's grants was last used.
func (g *Grants) Used(ctx context.Context, function string) (map[string]time.Time, error) {
	out := map[string]time.Time{}
	e, err := g.kv.Get(ctx, function)
	switch {
	case err == nil:
		if err := json.Unmarshal(e.Value(), &out); err != nil {
			return nil, err
		}
	case !isNotFound(err):
		return nil, err
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for k, t := range g.pending[function] {
		if t.After(out[k]) {
			out[k] = t
		}
	}
	return out, nil
}

// Run writes uses every interval until ctx ends, then once more.
func (g *Grants) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			g.Flush(fctx)
			cancel()
			return
		case <-t.C:
			g.Flush(ctx)
		}
	}
}

// Flush writes what is pending.
func (g *Grants) Flush(ctx context.Context) {
	g.mu.Lock()
	pending := g.pending
	g.pending = map[string]map[string]time.Time{}
	g.mu.Unlock()
	for fn, uses := range pending {
		err := store.Modify(ctx, g.kv, fn, 5, func(cur []byte) ([]byte, error) {
			m := map[string]time.Time{}
			if cur != nil {
				json.Unmarshal(cur, &m)
			}
			for k, t := range uses {
				if t.After(m[k]) {
					m[k] = t
				}
			}
			return json.Marshal(m)
		})
		if err != nil {
			g.log.WarnContext(ctx, "grant use not written", slog.String("fn", fn), slog.Any("err", err))
			g.mu.Lock()
			m := g.pending[fn]
			if m == nil {
				g.pending[fn] = maps.Clone(uses)
			}
			g.mu.Unlock()
		}
	}
}

// Forget drops function's record, when it is removed.
func (g *Grants) Forget(ctx context.Context, function string) error {
	g.mu.Lock()
	delete(g.pending, function)
	g.mu.Unlock()
	err := g.kv.Purge(ctx, function)
	if isNotFound(err) {
		return nil
	}
	return err
}

func isNotFound(err error) bool {
	return errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrKeyDeleted)
}
