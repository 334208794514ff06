package audit

import (
	"context"
	"sync"
	"time"

	"github.com/moatfn/moat/internal/auth"
)

// Coalescer is an audit sink in front of a Log that keeps floods from
// flooding the trail. A record it coalesces (by its action and reason: a
// refusal that is the answer to a flood) is appended in full when it is
// the first of its kind (action, target, reason, source address, actor,
// trigger) in a window; the others of that window are counted, and when the
// window ends one record stands for them, with Repeats. Every other record
// goes straight through. Ten thousand refused requests a second from one
// address are a record or two a second, not ten thousand: a flood cannot
// grow the audit stream, or its bill, with the flood (docs/audit.md).
type Coalescer struct {
	log      sink
	window   time.Duration
	now      func() time.Time
	max      int // kinds tracked at once; past it, kinds fold by action, target and reason
	coalesce map[[2]string]bool

	mu   sync.Mutex
	open map[kind]*run
}

// sink is where records go: a *Log.
type sink interface {
	Append(ctx context.Context, rec Record, sync bool) error
}

type kind struct {
	action, target, reason, source, actor, trigger string
}

// run is a kind's window: when it opened, and the records since the first,
// with the last one's invocation id.
type run struct {
	opened  time.Time
	repeats int
	lastID  string
}

// anyone stands for the source and actor of kinds folded together.
const anyone = "*"

// NewCoalescer coalesces the records whose action and reason are among
// pairs ({"refuse", "rate"}, ...) into windows of window, tracking up to max
// kinds at once, in front of log. Run it.
func NewCoalescer(log sink, window time.Duration, max int, pairs ...[2]string) *Coalescer {
	c := &Coalescer{log: log, window: window, now: time.Now, max: max, coalesce: map[[2]string]bool{}, open: map[kind]*run{}}
	for _, p := range pairs {
		c.coalesce[p] = true
	}
	return c
}

// Append appends rec, or counts it into its kind's open window.
func (c *Coalescer) Append(ctx context.Context, rec Record, sync bool) error {
	if sync || !c.coalesce[[2]string{rec.Action, rec.Reason}] {
		return c.log.Append(ctx, rec, sync)
	}
	k := kind{action: rec.Action, target: rec.Target, reason: rec.Reason, source: auth.Block(rec.Source), actor: rec.Actor, trigger: rec.Trigger}
	now := c.now()
	c.mu.Lock()
	r := c.open[k]
	if r == nil && len(c.open) >= c.max {
		k.source, k.actor = anyone, anyone
		r = c.open[k]
	}
	if r != nil && now.Sub(r.opened) < c.window {
		r.repeats++
		r.lastID = rec.InvocationID
		c.mu.Unlock()
		return nil
	}
	var done *run
	if r != nil && r.repeats > 0 {
		done = r
	}
	c.open[k] = &run{opened: now}
	c.mu.Unlock()
	if done != nil {
		c.log.Append(ctx, summary(k, done), false)
	}
	return c.log.Append(ctx, rec, false)
}

// Flush appends the counted records of every window older than the window,
// or of all windows when all is set, and forgets them.
func (c *Coalescer) Flush(ctx context.Context, all bool) {
	now := c.now()
	var done []Record
	c.mu.Lock()
	for k, r := range c.open {
		if !all && now.Sub(r.opened) < c.window {
			continue
		}
		if r.repeats > 0 {
			done = append(done, summary(k, r))
		}
		delete(c.open, k)
	}
	c.mu.Unlock()
	for _, rec := range done {
		c.log.Append(ctx, rec, false)
	}
}

// summary is the record of a window's counted records.
func summary(k kind, r *run) Record {
	return Record{
		Action: k.action, Target: k.target, Outcome: Refused, Reason: k.reason,
		Source: k.source, Actor: k.actor, Trigger: k.trigger,
		InvocationID: r.lastID, Repeats: r.repeats,
	}
}

// Run appends the counted records as their windows end, until ctx ends;
// then the rest. Stop it after the server, before the Log.
func (c *Coalescer) Run(ctx context.Context) {
	t := time.NewTicker(c.window / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			c.Flush(context.Background(), false)
		case <-ctx.Done():
			c.Flush(context.Background(), true)
			return
		}
	}
}
