package gateway

import (
	"context"
	"sync"
	"time"

	"github.com/moatfn/moat/internal/admit"
	"github.com/moatfn/moat/internal/audit"
	"github.com/moatfn/moat/internal/auth"
)

// refusalLog audits refusals without letting a flood flood the trail: the
// first admission refusal of a kind (function, reason, source address,
// caller, trigger) in a window is audited in full, and the others of that
// window are counted and audited as one record with Repeats when the window
// ends; so are the answers to a source blocked for failing authentication.
// Other refusals (a failed authentication, input, method, body) say
// something each time and are audited one by one.
// Ten thousand refused requests a second from one address are a record or
// two a second, not ten thousand: a flood cannot grow the audit stream, or
// its bill, with the flood (docs/audit.md). Metrics still count every one.
type refusalLog struct {
	audit  auditLog
	window time.Duration
	now    func() time.Time
	max    int // kinds tracked at once; past it, kinds fold by function and reason

	mu   sync.Mutex
	open map[refusalKind]*refusalRun
}

type refusalKind struct {
	fn, reason, source, actor, trigger string
}

// refusalRun is a kind's window: when it opened, and the refusals since
// the first, with the last one's invocation id.
type refusalRun struct {
	opened  time.Time
	repeats int
	lastID  string
}

// anyone stands for the source and caller of kinds folded together.
const anyone = "*"

func newRefusalLog(a auditLog, window time.Duration, max int) *refusalLog {
	return &refusalLog{audit: a, window: window, now: time.Now, max: max, open: map[refusalKind]*refusalRun{}}
}

// coalesced are the refusals counted into windows: admission's answers to
// a flood, whose records would differ only in time and invocation id.
var coalesced = map[string]bool{
	admit.ReasonRate: true, admit.ReasonCallerRate: true, admit.ReasonBusy: true,
	admit.ReasonCapacity: true, admit.ReasonBudget: true, admit.ReasonNodeBudget: true,
	ReasonAuthBlocked: true,
}

// add audits rec, a refusal, or counts it into its kind's open window.
func (l *refusalLog) add(ctx context.Context, rec audit.Record) {
	if !coalesced[rec.Reason] {
		l.audit.Append(ctx, rec, false)
		return
	}
	kind := refusalKind{fn: rec.Target, reason: rec.Reason, source: auth.Source(rec.Source), actor: rec.Actor, trigger: rec.Trigger}
	now := l.now()
	l.mu.Lock()
	run := l.open[kind]
	if run == nil && len(l.open) >= l.max {
		kind.source, kind.actor = anyone, anyone
		run = l.open[kind]
	}
	if run != nil && now.Sub(run.opened) < l.window {
		run.repeats++
		run.lastID = rec.InvocationID
		l.mu.Unlock()
		return
	}
	var done *refusalRun
	if run != nil && run.repeats > 0 {
		done = run
	}
	l.open[kind] = &refusalRun{opened: now}
	l.mu.Unlock()
	if done != nil {
		l.audit.Append(ctx, summary(kind, done), false)
	}
	l.audit.Append(ctx, rec, false)
}

// flush audits the counted refusals of every window older than the
// window, or of all windows when all is set, and forgets them.
func (l *refusalLog) flush(ctx context.Context, all bool) {
	now := l.now()
	var done []audit.Record
	l.mu.Lock()
	for kind, run := range l.open {
		if !all && now.Sub(run.opened) < l.window {
			continue
		}
		if run.repeats > 0 {
			done = append(done, summary(kind, run))
		}
		delete(l.open, kind)
	}
	l.mu.Unlock()
	for _, rec := range done {
		l.audit.Append(ctx, rec, false)
	}
}

// summary is the record of a window's counted refusals.
func summary(kind refusalKind, run *refusalRun) audit.Record {
	return audit.Record{
		Action: "refuse", Target: kind.fn, Outcome: audit.Refused, Reason: kind.reason,
		Source: kind.source, Actor: kind.actor, Trigger: kind.trigger,
		InvocationID: run.lastID, Repeats: run.repeats,
	}
}

// run flushes ended windows until ctx ends, then all of them.
func (l *refusalLog) run(ctx context.Context) {
	t := time.NewTicker(l.window / 4)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			l.flush(context.Background(), false)
		case <-ctx.Done():
			l.flush(context.Background(), true)
			return
		}
	}
}
