package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/pipeline"
	"github.com/moatfn/moat/internal/registry"
)

// Outcomes of a delivery, as Recorder and /metrics name them.
const (
	Delivered    = "delivered"     // the function answered 2xx: acknowledged
	Retried      = "retried"       // failed, to be tried again after the backoff
	DeadLettered = "dead_lettered" // kept as a dead letter
	Waited       = "waited"        // refused by the limits, tried again without counting
	Skipped      = "skipped"       // a schedule's tick while a run went, overlap forbid
	Replaced     = "replaced"      // a schedule's run ended by a newer tick, overlap replace
)

// trigger is one queue or schedule trigger of a function.
type trigger struct {
	name  string                    // of its durable consumer
	q     *manifest.QueueTrigger    // retries and concurrency; a schedule's or object trigger's Subject names it
	sched *manifest.ScheduleTrigger // nil for a queue or object trigger
	obj   *manifest.ObjectTrigger   // nil for a queue or schedule trigger
	since time.Time                 // when the record declaring it was written
}

// triggersOf lists the triggers m declares for fn.
func triggersOf(fn string, m *manifest.Manifest) []*trigger {
	var out []*trigger
	for _, t := range m.Triggers {
		switch {
		case t.Queue != nil:
			out = append(out, &trigger{name: consumerName(fn, t.Queue.Subject), q: t.Queue})
		case t.Object != nil:
			out = append(out, &trigger{name: objectName(fn, t.Object.Bucket), q: t.Object.Queue(), obj: t.Object})
		case t.Schedule != nil:
			if c, _, err := t.Schedule.Parsed(); err == nil {
				out = append(out, &trigger{name: scheduleName(fn, c, t.Schedule.Timezone), q: t.Schedule.Queue(m.Limits.Concurrency), sched: t.Schedule})
			}
		}
	}
	return out
}

// consumer runs one trigger's durable consumer on this node.
type consumer struct {
	name, fn string
	trig     atomic.Pointer[trigger]
	cc       jetstream.ConsumeContext
	sem      chan struct{}
	sched    *scheduleState // nil for a queue trigger
}

// Prefixes of the durable consumers' names: t_FN_HASH takes a queue
// subject, s_FN_HASH a schedule's ticks.
const (
	queuePrefix    = "t_"
	schedulePrefix = "s_"
)

// consumerName is the durable name of fn's trigger on subject: stable
// across deploys, so pending events go to the new version.
func consumerName(fn, subject string) string {
	h := sha256.Sum256([]byte(subject))
	return queuePrefix + fn + "_" + hex.EncodeToString(h[:6])
}

// scheduleName is the durable name of fn's schedule: the same for the same
// times in the same zone, however the cron expression was written.
func scheduleName(fn string, c *manifest.Cron, zone string) string {
	h := sha256.Sum256([]byte(c.Spec() + "\x00" + zone))
	return schedulePrefix + fn + "_" + hex.EncodeToString(h[:6])
}

// functionOf is the function a consumer name belongs to.
func functionOf(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, queuePrefix)
	if !ok {
		rest, ok = strings.CutPrefix(name, schedulePrefix)
	}
	if !ok {
		rest, ok = strings.CutPrefix(name, objectPrefix)
	}
	fn, _, found := strings.Cut(rest, "_")
	return fn, ok && found && manifest.ValidName(fn)
}

// Start watches the functions' records and runs a consumer for every
// queue trigger, until Stop.
func (b *Bus) Start(ctx context.Context) error {
	b.mu.Lock()
	b.ctx = ctx
	b.mu.Unlock()
	w, err := b.cfg.Functions.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("watch functions: %w", err)
	}
	seen := map[string]bool{}
	// The initial values come first, then a nil: from then on, a consumer
	// of no known function is left over from a function removed while no
	// node ran, and goes.
	for e := range w.Updates() {
		if e == nil {
			break
		}
		seen[e.Key()] = true
		b.apply(ctx, e)
	}
	b.sweep(ctx, seen)
	b.catchUpAll(ctx)
	ticks, err := b.forward(ctx)
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.ticks = ticks
	b.mu.Unlock()
	// The watcher is not among the runs Stop waits for: it ends with ctx.
	go (func() {
		defer w.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case e, ok := <-w.Updates():
				if !ok {
					return
				}
				if e != nil {
					b.apply(ctx, e)
				}
			}
		}
	})()
	return nil
}

// apply brings the consumers of one function in line with its record.
func (b *Bus) apply(ctx context.Context, e jetstream.KeyValueEntry) {
	var f *registry.Function
	if e.Operation() == jetstream.KeyValuePut {
		f = &registry.Function{}
		if err := json.Unmarshal(e.Value(), f); err != nil {
			b.log.Error("decode function record", slog.String("fn", e.Key()), slog.Any("err", err))
			return
		}
	}
	if err := b.reconcile(ctx, e.Key(), f, e.Created()); err != nil {
		b.log.Error("event triggers", slog.String("fn", e.Key()), slog.Any("err", err))
	}
}

// reconcile makes the consumers of fn those its active version declares
// (none when f is nil, a removed function); since is when that record was
// written.
func (b *Bus) reconcile(ctx context.Context, fn string, f *registry.Function, since time.Time) error {
	var want []*trigger
	if f != nil {
		if v := f.ActiveVersion(); v != nil {
			want = triggersOf(fn, v.Manifest)
		}
	}
	for _, t := range want {
		t.since = since
	}
	b.mu.Lock()
	if len(want) > 0 {
		b.triggers[fn] = want
	} else {
		delete(b.triggers, fn)
	}
	b.mu.Unlock()
	keep := map[string]bool{}
	var errs []error
	for _, t := range want {
		keep[t.name] = true
		if t.sched != nil {
			if err := b.define(ctx, fn, t); err != nil {
				errs = append(errs, err)
				continue
			}
		}
		if err := b.ensure(ctx, fn, t); err != nil {
			errs = append(errs, err)
		}
	}
	b.drop(ctx, fn, keep)
	b.relayAll(ctx)
	return errors.Join(errs...)
}

func (b *Bus) consumerConfig(fn string, t *trigger) jetstream.ConsumerConfig {
	what, filter := fn+" takes "+t.q.Subject, eventPrefix+t.q.Subject
	filters := []string{filter, replayPrefix + t.name}
	switch {
	case t.sched != nil:
		what, filters[0] = fn+" runs on schedule "+t.q.Subject, tickPrefix+t.name
	case t.obj != nil:
		what = fn + " takes " + strings.Join(t.obj.Events, " and ") + " in " + t.q.Subject
		filters = append(objectFilters(t.obj), replayPrefix+t.name)
	}
	pending := t.q.Concurrency
	if t.sched != nil && t.sched.Overlap == manifest.OverlapReplace {
		pending = 2 // the run going and the tick that replaces it
	}
	return jetstream.ConsumerConfig{
		Durable:        t.name,
		Description:    what,
		FilterSubjects: filters,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1, // the Bus counts attempts and dead-letters itself
		MaxAckPending:  pending,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		Replicas:       max(b.cfg.Replicas, 1),
	}
}

// ensure creates or updates the durable consumer and runs it here.
func (b *Bus) ensure(ctx context.Context, fn string, t *trigger) error {
	cfg := b.consumerConfig(fn, t)
	cons, err := b.events.Consumer(ctx, t.name)
	if err != nil || !consumerMatches(cons.CachedInfo().Config, cfg) {
		if cons, err = b.events.CreateOrUpdateConsumer(ctx, cfg); err != nil {
			return fmt.Errorf("consumer %s: %w", t.name, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.consumers[t.name]; c != nil {
		old := c.trig.Swap(t)
		if old.q.Concurrency == t.q.Concurrency && overlapOf(old) == overlapOf(t) {
			return nil
		}
		c.stop() // to take the new concurrency
		delete(b.consumers, t.name)
	}
	if b.ctx == nil || b.ctx.Err() != nil {
		return nil
	}
	c := &consumer{name: t.name, fn: fn, sem: make(chan struct{}, cfg.MaxAckPending)}
	c.trig.Store(t)
	if t.sched != nil {
		if c.sched, err = b.watchReplaced(t); err != nil {
			return err
		}
	}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		c.sem <- struct{}{}
		b.wg.Go(func() {
			defer func() { <-c.sem }()
			b.handle(c, msg)
		})
	}, jetstream.PullMaxMessages(cfg.MaxAckPending), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			b.log.Debug("consume", slog.String("consumer", t.name), slog.Any("err", err))
		}
	}))
	if err != nil {
		c.stop()
		return fmt.Errorf("consume %s: %w", t.name, err)
	}
	c.cc = cc
	b.consumers[t.name] = c
	return nil
}

func overlapOf(t *trigger) string {
	if t.sched == nil {
		return ""
	}
	return t.sched.Overlap
}

// stop stops taking events here.
func (c *consumer) stop() {
	if c.cc != nil {
		c.cc.Stop()
	}
	if c.sched != nil && c.sched.sub != nil {
		c.sched.sub.Unsubscribe()
	}
}

func consumerMatches(have, want jetstream.ConsumerConfig) bool {
	return have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending &&
		slices.Equal(have.FilterSubjects, want.FilterSubjects) && have.MaxDeliver == want.MaxDeliver
}

// drop stops and deletes the consumers (and schedules) of fn that keep
// does not hold.
func (b *Bus) drop(ctx context.Context, fn string, keep map[string]bool) {
	mine := func(name string) bool { f, ok := functionOf(name); return ok && f == fn && !keep[name] }
	b.mu.Lock()
	for name, c := range b.consumers {
		if mine(name) {
			c.stop()
			delete(b.consumers, name)
		}
	}
	b.mu.Unlock()
	names := b.events.ConsumerNames(ctx)
	for name := range names.Name() {
		if mine(name) {
			if err := b.events.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.log.Warn("delete consumer", slog.String("consumer", name), slog.Any("err", err))
			}
		}
	}
	b.undefine(ctx, mine)
}

// sweep deletes the consumers and schedules of functions not in seen.
func (b *Bus) sweep(ctx context.Context, seen map[string]bool) {
	gone := map[string]bool{}
	names := b.events.ConsumerNames(ctx)
	for name := range names.Name() {
		if fn, ok := functionOf(name); ok && !seen[fn] {
			gone[fn] = true
		}
	}
	b.undefine(ctx, func(name string) bool {
		fn, ok := functionOf(name)
		if ok && !seen[fn] {
			gone[fn] = true
		}
		return false
	})
	for fn := range gone {
		b.drop(ctx, fn, nil)
	}
}

// Stop stops taking events and waits, up to timeout, for those running;
// then ends them. What was not acknowledged is delivered again later.
func (b *Bus) Stop(timeout time.Duration) {
	b.mu.Lock()
	if b.ticks != nil {
		b.ticks.Stop()
	}
	for name, c := range b.consumers {
		c.stop()
		delete(b.consumers, name)
	}
	b.mu.Unlock()
	b.stopRelays()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(timeout):
	}
}

// invocationID is the id of one attempt at one event: the same on every
// node, so a dead letter can list the ids of every attempt.
func invocationID(consumer string, seq uint64, attempt int) string {
	h := sha256.Sum256([]byte(consumer + "\x00" + strconv.FormatUint(seq, 10) + "\x00" + strconv.Itoa(attempt)))
	return hex.EncodeToString(h[:12])
}

// maxWait bounds one wait for admission: the event is tried again at
// least this often, so a freed slot is taken soon.
const maxWait = 5 * time.Second

// handle takes one delivery of an event through the pipeline and acks,
// retries or dead-letters it.
func (b *Bus) handle(c *consumer, msg jetstream.Msg) {
	ctx := b.ctx
	t := c.trig.Load()
	meta, err := msg.Metadata()
	if err != nil {
		b.log.Error("event metadata", slog.String("consumer", c.name), slog.Any("err", err))
		msg.NakWithDelay(time.Second)
		return
	}
	attempt, seq := int(meta.NumDelivered), meta.Sequence.Stream
	letter := &Letter{Function: c.fn, Trigger: t.q.Subject, Attempts: attempt}
	for k := 1; k <= attempt; k++ {
		letter.InvocationIDs = append(letter.InvocationIDs, invocationID(c.name, seq, k))
	}
	var env envelope
	if err := b.open(ctx, msg.Data(), eventAAD(msg.Subject()), &env); err != nil || env.Event == nil {
		letter.Reason, letter.Detail = ReasonUnreadable, "the event could not be unsealed or decoded"
		b.deadLetter(ctx, c, msg, seq, letter)
		return
	}
	letter.Subject, letter.Publisher, letter.Event = env.Subject, env.Publisher, env.Event
	if t.obj != nil && !objectTakes(t.obj, env.Event) {
		msg.DoubleAck(context.WithoutCancel(ctx)) // another kind, or a name outside the prefix
		return
	}
	if attempt > t.q.MaxDeliver {
		// Delivered again after the node holding it stopped or crashed.
		letter.Reason, letter.Detail = ReasonUndelivered, fmt.Sprintf("delivered %d times without an answer", attempt-1)
		letter.Attempts = attempt - 1
		letter.InvocationIDs = letter.InvocationIDs[:attempt-1]
		b.deadLetter(ctx, c, msg, seq, letter)
		return
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	if c.sched != nil && strings.HasPrefix(msg.Subject(), tickPrefix) {
		if skip := c.sched.begin(t, seq, attempt, &env, b.now(), cancel); skip != "" {
			b.log.Info("schedule tick skipped", slog.String("fn", c.fn), slog.String("schedule", t.q.Subject), slog.String("why", skip))
			msg.DoubleAck(context.WithoutCancel(ctx))
			b.rec.Event(c.fn, Skipped)
			return
		}
		defer c.sched.end(seq, b.now)
		if t.sched.Overlap == manifest.OverlapReplace && attempt == 1 {
			b.replace(c, seq)
		}
	}

	// Keep the event ours while it waits or runs.
	alive, stop := context.WithCancel(ctx)
	defer stop()
	go func() {
		tick := time.NewTicker(b.cfg.AckWait / 3)
		defer tick.Stop()
		for {
			select {
			case <-alive.Done():
				return
			case <-tick.C:
				msg.InProgress()
			}
		}
	}()

	inv := b.invocation(c, msg.Subject(), &env, letter.InvocationIDs[attempt-1])
	var res *pipeline.Result
	for {
		res = b.run.Run(runCtx, inv)
		if !res.Problem.Admission() || runCtx.Err() != nil {
			break
		}
		b.rec.Event(c.fn, Waited)
		select {
		case <-runCtx.Done():
		case <-time.After(min(max(res.Problem.RetryAfter, 100*time.Millisecond), maxWait)):
		}
	}
	stop()
	switch {
	case res.Status >= 200 && res.Status < 300:
		if err := msg.DoubleAck(context.WithoutCancel(ctx)); err != nil {
			b.log.Warn("ack event", slog.String("consumer", c.name), slog.Uint64("seq", seq), slog.Any("err", err))
		}
		b.rec.Event(c.fn, Delivered)
	case ctx.Err() != nil:
		// The node is stopping: the event comes again, to this node or another.
		msg.NakWithDelay(time.Second)
	case runCtx.Err() != nil:
		// A newer tick of a schedule with overlap: replace ended this run.
		b.log.Info("schedule run replaced", slog.String("fn", c.fn), slog.String("schedule", t.q.Subject), slog.String("invocation_id", inv.ID))
		msg.DoubleAck(context.WithoutCancel(ctx))
		b.rec.Event(c.fn, Replaced)
	case retryable(res) && attempt < t.q.MaxDeliver:
		msg.NakWithDelay(jitter(t.q.RetryDelay(attempt)))
		b.rec.Event(c.fn, Retried)
	default:
		letter.Reason = ReasonRejected
		if retryable(res) {
			letter.Reason = ReasonFailed
		}
		letter.Status = res.Status
		if p := res.Problem; p != nil {
			letter.Detail = p.Detail
			if p.Reason != "" {
				letter.Detail = p.Reason + ": " + p.Detail
			}
		}
		b.deadLetter(ctx, c, msg, seq, letter)
	}
}

// retryable reports whether a result is a failure worth trying again: a
// 5xx, a timeout or a trap (502, 504), a disabled function (503).
func retryable(res *pipeline.Result) bool { return res.Status >= 500 }

// jitter spreads d by up to a fifth either way, so that events failed
// together do not all come back at once.
func jitter(d time.Duration) time.Duration {
	return d + time.Duration((rand.Float64()*0.4-0.2)*float64(d))
}

// invocation turns a delivered event into the pipeline's invocation: a
// POST in CloudEvents binary mode, from whoever published it.
func (b *Bus) invocation(c *consumer, natsSubject string, env *envelope, id string) *pipeline.Invocation {
	trigger := pipeline.Queue
	switch {
	case strings.HasPrefix(natsSubject, replayPrefix):
		trigger = pipeline.Replay
	case strings.HasPrefix(natsSubject, tickPrefix):
		trigger = pipeline.Schedule
	case strings.HasPrefix(natsSubject, objPrefix):
		trigger = pipeline.Object
	}
	data, source := env.Event.Data, env.Subject
	if c.sched != nil {
		source = "schedule " + c.trig.Load().q.Subject
	}
	return &pipeline.Invocation{
		ID: id, Function: c.fn, Trigger: trigger, Source: source, UserAgent: "moat-events",
		Method: http.MethodPost, Proto: "HTTP/1.1", Host: "moat", Header: env.Event.Header(),
		Identify: func(_ context.Context, fn *registry.Loaded) (string, *pipeline.Problem) {
			for _, t := range triggersOf(fn.Name, fn.Manifest) {
				if t.name == c.name {
					return env.Publisher, nil
				}
			}
			return "", &pipeline.Problem{Status: http.StatusNotFound, Reason: "trigger", Title: "no such trigger",
				Detail: fn.Name + " no longer takes events on " + env.Subject}
		},
		NoInput: c.sched != nil, // ticks, and ticks replayed, have no data
		Body: func(limit int64) ([]byte, error) {
			if int64(len(data)) > limit {
				return nil, pipeline.ErrTooLarge
			}
			return data, nil
		},
	}
}
