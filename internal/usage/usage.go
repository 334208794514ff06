// Package usage meters what each function spends, per hour: invocations,
// errors, refusals by reason and GB-seconds. Counts are gathered in memory
// and added to a KV bucket every few seconds and on stop, so metering costs
// an invocation a map update; a crash loses at most the last interval.
package usage

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

// Row is one function's usage in one hour (UTC).
type Row struct {
	Function    string           `json:"fn"`
	Hour        time.Time        `json:"hour"`
	Invocations int64            `json:"invocations"`
	Errors      int64            `json:"errors"`
	Refusals    map[string]int64 `json:"refusals,omitempty"`
	GBSeconds   float64          `json:"gb_seconds"`
	EgressBytes int64            `json:"egress_bytes"`
	Cost        float64          `json:"estimated_cost,omitempty"`
}

func (r *Row) add(o *Row) {
	r.Invocations += o.Invocations
	r.Errors += o.Errors
	r.GBSeconds += o.GBSeconds
	r.EgressBytes += o.EgressBytes
	for k, v := range o.Refusals {
		if r.Refusals == nil {
			r.Refusals = map[string]int64{}
		}
		r.Refusals[k] += v
	}
}

// Prices estimate cost, in any currency unit.
type Prices struct {
	PerMillionInvocations float64
	PerGBSecond           float64
}

// Cost is what a row would cost at p.
func (p Prices) Cost(r *Row) float64 {
	return float64(r.Invocations)/1e6*p.PerMillionInvocations + r.GBSeconds*p.PerGBSecond
}

// Meter is safe for concurrent use.
type Meter struct {
	log *slog.Logger
	kv  jetstream.KeyValue
	now func() time.Time

	mu      sync.Mutex
	pending map[string]*Row   // by store key
	hour    time.Time         // the hour keys holds the store keys of
	keys    map[string]string // function -> store key in that hour
}

// New returns a Meter over kv.
func New(log *slog.Logger, kv jetstream.KeyValue) *Meter {
	return &Meter{log: log.With("component", "usage"), kv: kv, now: time.Now, pending: map[string]*Row{}}
}

func storeKey(fn string, hour time.Time) string { return fn + "." + hour.Format("2006-01-02T15") }

func (m *Meter) row(fn string) *Row {
	hour := m.now().UTC().Truncate(time.Hour)
	if !hour.Equal(m.hour) {
		m.hour, m.keys = hour, map[string]string{}
	}
	k, ok := m.keys[fn]
	if !ok {
		k = storeKey(fn, hour)
		m.keys[fn] = k
	}
	r, ok := m.pending[k]
	if !ok {
		r = &Row{Function: fn, Hour: hour}
		m.pending[k] = r
	}
	return r
}

// Invocation meters an invocation that ran.
func (m *Meter) Invocation(fn string, status int, took time.Duration, memory int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.row(fn)
	r.Invocations++
	if status >= 500 {
		r.Errors++
	}
	r.GBSeconds += float64(memory) / (1 << 30) * took.Seconds()
}

// Egress meters bytes a function sent and received over egress.
func (m *Meter) Egress(fn string, bytes int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.row(fn).EgressBytes += bytes
}

// Refusal meters a request refused before it ran.
func (m *Meter) Refusal(fn, reason string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.row(fn)
	if r.Refusals == nil {
		r.Refusals = map[string]int64{}
	}
	r.Refusals[reason]++
}

// Run flushes every interval until ctx ends, then once more.
func (m *Meter) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			m.Flush(ctx)
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			m.Flush(fctx)
			cancel()
			return
		}
	}
}

// Flush adds what was metered since the last flush to the store. What
// cannot be written stays pending for the next flush.
func (m *Meter) Flush(ctx context.Context) {
	m.mu.Lock()
	pending := m.pending
	m.pending = map[string]*Row{}
	m.mu.Unlock()
	for k, r := range pending {
		if err := m.add(ctx, k, r); err != nil {
			m.log.WarnContext(ctx, "usage flush", slog.String("key", k), slog.Any("err", err))
			m.mu.Lock()
			if cur, ok := m.pending[k]; ok {
				cur.add(r)
			} else {
				m.pending[k] = r
			}
			m.mu.Unlock()
		}
	}
}

func (m *Meter) add(ctx context.Context, k string, r *Row) error {
	return store.Modify(ctx, m.kv, k, 20, func(cur []byte) ([]byte, error) {
		stored := Row{Function: r.Function, Hour: r.Hour}
		if cur != nil {
			if err := json.Unmarshal(cur, &stored); err != nil {
				return nil, fmt.Errorf("usage record %s: %w", k, err)
			}
		}
		stored.add(r)
		return json.Marshal(stored)
	})
}

// Query returns the stored rows of fn ("" for every function) from since
// on, newest first, with their estimated cost at p.
func (m *Meter) Query(ctx context.Context, fn string, since time.Time, p Prices) ([]Row, error) {
	lister, err := m.kv.ListKeys(ctx)
	if err != nil && !errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, err
	}
	var out []Row
	if lister == nil {
		return out, nil
	}
	for k := range lister.Keys() {
		name, hour, ok := strings.Cut(k, ".")
		if !ok || (fn != "" && name != fn) {
			continue
		}
		h, err := time.Parse("2006-01-02T15", hour)
		if err != nil || h.Add(time.Hour).Before(since) {
			continue
		}
		e, err := m.kv.Get(ctx, k)
		if err != nil {
			continue
		}
		var r Row
		if json.Unmarshal(e.Value(), &r) != nil {
			continue
		}
		r.Cost = p.Cost(&r)
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Hour.Equal(out[j].Hour) {
			return out[i].Hour.After(out[j].Hour)
		}
		return out[i].Function < out[j].Function
	})
	return out, nil
}
