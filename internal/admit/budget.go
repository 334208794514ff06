package admit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/store"
)

// ReasonBudget is the refusal reason of a function's spent budget, and
// ReasonNodeBudget that of the node's.
const (
	ReasonBudget     = "budget"
	ReasonNodeBudget = "node_budget"
)

// NodeBudget is the name node-wide budgets are kept under: no function's
// name starts with an underscore.
const NodeBudget = "_node"

// Alert is a budget window that crossed its alert threshold.
type Alert struct {
	Function string  // or NodeBudget
	Budget   string  // "invocations" or "gb_seconds"
	Window   string  // the window's name: 2026-11-28, 2026-11-28T15, 2026-11
	Reserved float64 // reserved so far, by every node
	Amount   float64 // the budget
}

// Remaining is what is left of one budget window, as this node last saw it.
type Remaining struct {
	Function, Budget, Window string  // Window: hour, day or month
	Amount, Left             float64 // the budget, and what is left of it
}

// Budgets enforces spend budgets: invocations and GB-seconds per hour, day
// or month (UTC), per function. Spending is durable: the node reserves a
// small lease of each budget in the store (compare-and-set, synced) before
// it admits against it, so a restart, or several nodes, never admit more
// than the budget. A crash loses at most one unused lease per budget
// (admitting fewer, never more); a clean stop returns it.
//
// GB-seconds are reserved at the worst case (memory cap x timeout) before
// a run and the unused part refunded after it, so they cannot overshoot
// either.
type Budgets struct {
	log   *slog.Logger
	kv    jetstream.KeyValue
	now   func() time.Time
	alert float64 // fraction of a budget that raises the alert
	// OnAlert, if set, hears of each alert, once per window; set it before
	// use.
	OnAlert func(ctx context.Context, a Alert)
	node    manifest.Budget // node-wide budgets; zero amounts set none

	mu     sync.Mutex
	leases map[string]*lease // by store key
	seen   map[string]seenWindow
}

// seenWindow is the last state of a budget window this node saw in the store.
type seenWindow struct {
	fn, kind, window string
	end              time.Time
	amount, reserved float64
}

// SetNode sets node-wide budgets, which every invocation of every function
// also spends; set it before use.
func (b *Budgets) SetNode(bud manifest.Budget) { b.node = bud }

// Remaining lists what is left of every budget window that has not ended
// and that this node reserved from. Leases count as spent: it is what
// nodes may still admit.
func (b *Budgets) Remaining() []Remaining {
	b.mu.Lock()
	defer b.mu.Unlock()
	now := b.now()
	out := make([]Remaining, 0, len(b.seen))
	for k, w := range b.seen {
		if !w.end.After(now) {
			delete(b.seen, k)
			continue
		}
		out = append(out, Remaining{Function: w.fn, Budget: w.kind, Window: w.window, Amount: w.amount, Left: max(0, w.amount-w.reserved)})
	}
	return out
}

// lease is what this node reserved of one budget window and not used yet.
type lease struct {
	mu     sync.Mutex
	left   float64
	window time.Time // end of the window it belongs to
	amount float64   // the budget it was leased under
}

// spent is a budget window's record in the store.
type spent struct {
	Reserved float64 `json:"reserved"` // reserved by all nodes, used or leased
	Alerted  bool    `json:"alerted"`
}

// NewBudgets returns Budgets over a KV bucket. alert is the fraction (0..1)
// at which a budget's alert is logged, once per window.
func NewBudgets(log *slog.Logger, kv jetstream.KeyValue, alert float64) *Budgets {
	return &Budgets{log: log.With("component", "budget"), kv: kv, now: time.Now, alert: alert, leases: map[string]*lease{}, seen: map[string]seenWindow{}}
}

// windowOf returns the window holding t: its name for the store key and
// its end.
func windowOf(t time.Time, w string) (string, time.Time) {
	t = t.UTC()
	switch w {
	case "hour":
		start := t.Truncate(time.Hour)
		return start.Format("2006-01-02T15"), start.Add(time.Hour)
	case "month":
		start := time.Date(t.Year(), t.Month(), 1, 0, 0, 0, 0, time.UTC)
		return start.Format("2006-01"), start.AddDate(0, 1, 0)
	default:
		start := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
		return start.Format("2006-01-02"), start.AddDate(0, 0, 1)
	}
}

// Reserve takes one invocation, and the worst-case GB-seconds of one run,
// from fn's budgets. settle, called with the run's wall time, refunds the
// GB-seconds it did not use.
func (b *Budgets) Reserve(ctx context.Context, fn string, bud manifest.Budget, lim manifest.Limits) (settle func(took time.Duration), refusal *Refusal) {
	settleFn, no := b.reserveOne(ctx, fn, bud, lim)
	if no != nil || b.node == (manifest.Budget{}) {
		return settleFn, no
	}
	settleNode, no := b.reserveOne(ctx, NodeBudget, b.node, lim)
	if no != nil {
		settleFn(0)
		b.unreserveInvocation(fn, bud)
		no.Reason = ReasonNodeBudget
		return nil, no
	}
	return func(took time.Duration) { settleFn(took); settleNode(took) }, nil
}

// unreserveInvocation gives back the invocation Reserve took from fn when
// the node's budget refused it.
func (b *Budgets) unreserveInvocation(fn string, bud manifest.Budget) {
	if bud.Invocations.Amount > 0 {
		b.refund(fn, "invocations", bud.Invocations, 1)
	}
}

// reserveOne reserves from one holder's budgets: a function's or the node's.
func (b *Budgets) reserveOne(ctx context.Context, fn string, bud manifest.Budget, lim manifest.Limits) (settle func(took time.Duration), refusal *Refusal) {
	nothing := func(time.Duration) {}
	if bud.Invocations.Amount > 0 {
		if no := b.take(ctx, fn, "invocations", bud.Invocations, 1); no != nil {
			return nil, no
		}
	}
	if bud.GBSeconds.Amount <= 0 {
		return nothing, nil
	}
	gb := float64(lim.Memory) / (1 << 30)
	worst := gb * lim.Timeout.Seconds()
	if no := b.take(ctx, fn, "gb_seconds", bud.GBSeconds, worst); no != nil {
		if bud.Invocations.Amount > 0 {
			b.refund(fn, "invocations", bud.Invocations, 1)
		}
		return nil, no
	}
	return func(took time.Duration) {
		used := gb * min(took.Seconds(), lim.Timeout.Seconds())
		b.refund(fn, "gb_seconds", bud.GBSeconds, worst-used)
	}, nil
}

func key(fn, kind, window string) string { return fn + "." + kind + "." + window }

// take removes amount from the local lease, reserving a new lease in the
// store when it runs short.
func (b *Budgets) take(ctx context.Context, fn, kind string, a manifest.BudgetAmount, amount float64) *Refusal {
	name, end := windowOf(b.now(), a.Window)
	k := key(fn, kind, name)
	l := b.lease(k, end)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.amount != a.Amount {
		// The budget changed (a deploy): what was leased under the old
		// amount is forgotten, not spent, so a lowered budget holds at
		// once. The store still counts it as reserved: fewer admitted,
		// never more.
		l.left, l.amount = 0, a.Amount
	}
	if l.left >= amount {
		l.left -= amount
		return nil
	}
	// The lease: a fiftieth of the budget (whole invocations), at least
	// what this run needs.
	share := a.Amount / 50
	if kind == "invocations" {
		share = math.Floor(share)
	}
	want := max(amount-l.left, share)
	got, err := b.reserve(ctx, k, a, want, amount-l.left, seenWindow{fn: fn, kind: kind, window: a.Window, end: end})
	if err != nil {
		b.log.ErrorContext(ctx, "budget reserve", slog.String("fn", fn), slog.String("budget", kind), slog.Any("err", err))
		return &Refusal{Reason: ReasonBudget, Status: 503, RetryAfter: time.Second}
	}
	l.left += got
	if l.left+1e-9 < amount {
		return &Refusal{Reason: ReasonBudget, Status: 429, RetryAfter: end.Sub(b.now())}
	}
	l.left = max(0, l.left-amount)
	return nil
}

func (b *Budgets) lease(k string, end time.Time) *lease {
	b.mu.Lock()
	defer b.mu.Unlock()
	l, ok := b.leases[k]
	if !ok {
		l = &lease{window: end}
		b.leases[k] = l
		for other, o := range b.leases { // windows gone by hold nothing to return
			if !o.window.After(b.now()) {
				delete(b.leases, other)
			}
		}
	}
	return l
}

// reserve adds up to want (at least need, else nothing) to the window's
// reserved total in the store, within the budget, and returns what it got.
func (b *Budgets) reserve(ctx context.Context, k string, a manifest.BudgetAmount, want, need float64, w seenWindow) (float64, error) {
	var got float64
	var alert bool
	var s spent
	err := store.Modify(ctx, b.kv, k, 20, func(cur []byte) ([]byte, error) {
		s = spent{}
		if cur != nil {
			if err := json.Unmarshal(cur, &s); err != nil {
				return nil, fmt.Errorf("budget record %s: %w", k, err)
			}
		}
		got = math.Min(want, a.Amount-s.Reserved)
		if got+1e-9 < need {
			got = 0
			return nil, errSpent
		}
		s.Reserved += got
		alert = !s.Alerted && s.Reserved >= b.alert*a.Amount
		s.Alerted = s.Alerted || alert
		return json.Marshal(s)
	})
	if err != nil && !errors.Is(err, errSpent) {
		return 0, err
	}
	w.amount, w.reserved = a.Amount, s.Reserved
	b.mu.Lock()
	b.seen[k] = w
	b.mu.Unlock()
	if errors.Is(err, errSpent) {
		return 0, nil
	}
	if alert {
		b.log.WarnContext(ctx, "budget alert", slog.String("budget", k), slog.Float64("reserved", s.Reserved),
			slog.Float64("budget_amount", a.Amount), slog.Float64("threshold", b.alert))
		if b.OnAlert != nil {
			name, _ := windowOf(b.now(), a.Window)
			b.OnAlert(ctx, Alert{Function: w.fn, Budget: w.kind, Window: name, Reserved: s.Reserved, Amount: a.Amount})
		}
	}
	return got, nil
}

var errSpent = errors.New("budget spent")

// refund gives amount back to the local lease of the current window.
func (b *Budgets) refund(fn, kind string, a manifest.BudgetAmount, amount float64) {
	if amount <= 0 {
		return
	}
	name, end := windowOf(b.now(), a.Window)
	l := b.lease(key(fn, kind, name), end)
	l.mu.Lock()
	l.left += amount
	l.mu.Unlock()
}

// Close returns every unused lease to the store, so that a clean restart
// admits exactly the budget.
func (b *Budgets) Close(ctx context.Context) {
	b.mu.Lock()
	leases := b.leases
	b.leases = map[string]*lease{}
	b.mu.Unlock()
	for k, l := range leases {
		l.mu.Lock()
		left := l.left
		l.left = 0
		l.mu.Unlock()
		if left <= 0 || !l.window.After(b.now()) {
			continue
		}
		store.Modify(ctx, b.kv, k, 20, func(cur []byte) ([]byte, error) {
			var s spent
			if cur == nil || json.Unmarshal(cur, &s) != nil {
				return nil, errSpent // nothing to return to
			}
			s.Reserved = math.Max(0, s.Reserved-left)
			return json.Marshal(s)
		})
	}
}
