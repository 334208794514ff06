// Package logcap caps the log lines that strangers can cause. A request
// with no token, a wrong one or a bad TLS handshake costs its sender
// nothing and would cost the node a line each: a flood of them fills the
// disk and the log pipeline's bill. A Limiter lets one line a window
// through for each key (a message and the source it came from) and counts
// the others; the next line that gets through says how many were dropped.
// The audit trail keeps the exact count of every refusal (docs/audit.md).
package logcap

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/moatfn/moat/internal/auth"
)

// Limiter decides which lines get through. It is safe for concurrent use.
type Limiter struct {
	window time.Duration
	max    int // keys tracked at once; past it, new keys share one
	now    func() time.Time

	mu    sync.Mutex
	keys  map[string]*seen
	swept time.Time // the last sweep: one a window, however many keys come
}

// seen is a key's window: when its last line got through, and the lines
// dropped since.
type seen struct {
	at      time.Time
	dropped int
}

// others is the key of the lines whose own keys found no room.
const others = "\x00others"

// New returns a Limiter of one line per window per key, tracking up to max
// keys.
func New(window time.Duration, max int) *Limiter {
	return &Limiter{window: window, max: max, now: time.Now, keys: map[string]*seen{}}
}

// Allow reports whether a line for key may go out now, and how many lines
// for key were dropped before it.
func (l *Limiter) Allow(key string) (ok bool, dropped int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.keys[key]
	if s == nil && len(l.keys) >= l.max {
		if now.Sub(l.swept) >= l.window {
			l.sweep(now)
		}
		if len(l.keys) >= l.max {
			key = others
			s = l.keys[key]
		}
	}
	if s == nil {
		l.keys[key] = &seen{at: now}
		return true, 0
	}
	if now.Sub(s.at) < l.window {
		s.dropped++
		return false, 0
	}
	dropped, s.at, s.dropped = s.dropped, now, 0
	return true, dropped
}

// sweep forgets the keys whose window has ended. What they dropped is
// told on the next line of the others.
func (l *Limiter) sweep(now time.Time) {
	l.swept = now
	var moved int
	for k, s := range l.keys {
		if k != others && now.Sub(s.at) >= l.window {
			moved += s.dropped
			delete(l.keys, k)
		}
	}
	if moved > 0 {
		o := l.keys[others]
		if o == nil {
			// Let the next line of the others through at once, to tell.
			o = &seen{}
			l.keys[others] = o
		}
		o.dropped += moved
	}
}

// Log logs msg at level to log if the Limiter lets it through, keyed by msg
// and the source of remoteAddr (auth.Block: its address, or its /64 for
// IPv6), with the count of the lines it dropped before as "dropped".
func (l *Limiter) Log(ctx context.Context, log *slog.Logger, level slog.Level, remoteAddr, msg string, attrs ...slog.Attr) {
	if !log.Enabled(ctx, level) {
		return
	}
	ok, dropped := l.Allow(msg + "\x00" + auth.Block(remoteAddr))
	if !ok {
		return
	}
	if dropped > 0 {
		attrs = append(attrs, slog.Int("dropped", dropped))
	}
	log.LogAttrs(ctx, level, msg, attrs...)
}

// Handler passes to h one record a window, as key, counting the others:
// for a logger whose lines carry their source in the message (net/http's
// ErrorLog: "http: TLS handshake error from ADDR: ...").
func (l *Limiter) Handler(h slog.Handler, key string) slog.Handler {
	return &handler{h: h, l: l, key: key}
}

type handler struct {
	h   slog.Handler
	l   *Limiter
	key string
}

func (h *handler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.h.Enabled(ctx, level)
}

func (h *handler) Handle(ctx context.Context, r slog.Record) error {
	ok, dropped := h.l.Allow(h.key)
	if !ok {
		return nil
	}
	if dropped > 0 {
		r = r.Clone()
		r.AddAttrs(slog.Int("dropped", dropped))
	}
	return h.h.Handle(ctx, r)
}

func (h *handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &handler{h: h.h.WithAttrs(attrs), l: h.l, key: h.key}
}

func (h *handler) WithGroup(name string) slog.Handler {
	return &handler{h: h.h.WithGroup(name), l: h.l, key: h.key}
}
