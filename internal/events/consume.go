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
)

// consumer runs one trigger's durable consumer on this node.
type consumer struct {
	name, fn string
	trig     atomic.Pointer[manifest.QueueTrigger]
	cc       jetstream.ConsumeContext
	sem      chan struct{}
}

// consumerName is the durable name of fn's trigger on subject: stable
// across deploys, so pending events go to the new version.
func consumerName(fn, subject string) string {
	h := sha256.Sum256([]byte(subject))
	return "t_" + fn + "_" + hex.EncodeToString(h[:6])
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
	if err := b.reconcile(ctx, e.Key(), f); err != nil {
		b.log.Error("event triggers", slog.String("fn", e.Key()), slog.Any("err", err))
	}
}

// reconcile makes the consumers of fn those its active version declares
// (none when f is nil, a removed function).
func (b *Bus) reconcile(ctx context.Context, fn string, f *registry.Function) error {
	var want []*manifest.QueueTrigger
	if f != nil {
		if v := f.ActiveVersion(); v != nil {
			for _, t := range v.Manifest.Triggers {
				if t.Queue != nil {
					want = append(want, t.Queue)
				}
			}
		}
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
		name := consumerName(fn, t.Subject)
		keep[name] = true
		if err := b.ensure(ctx, fn, name, t); err != nil {
			errs = append(errs, err)
		}
	}
	b.drop(ctx, "t_"+fn+"_", keep)
	return errors.Join(errs...)
}

func (b *Bus) consumerConfig(fn, name string, t *manifest.QueueTrigger) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:        name,
		Description:    fn + " takes " + t.Subject,
		FilterSubjects: []string{eventPrefix + t.Subject, replayPrefix + name},
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        b.cfg.AckWait,
		MaxDeliver:     -1, // the Bus counts attempts and dead-letters itself
		MaxAckPending:  t.Concurrency,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		Replicas:       max(b.cfg.Replicas, 1),
	}
}

// ensure creates or updates the durable consumer and runs it here.
func (b *Bus) ensure(ctx context.Context, fn, name string, t *manifest.QueueTrigger) error {
	cfg := b.consumerConfig(fn, name, t)
	cons, err := b.events.Consumer(ctx, name)
	if err != nil || !consumerMatches(cons.CachedInfo().Config, cfg) {
		if cons, err = b.events.CreateOrUpdateConsumer(ctx, cfg); err != nil {
			return fmt.Errorf("consumer %s: %w", name, err)
		}
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.consumers[name]; c != nil {
		old := c.trig.Swap(t)
		if old.Concurrency == t.Concurrency {
			return nil
		}
		c.cc.Stop() // to take the new concurrency
		delete(b.consumers, name)
	}
	if b.ctx == nil || b.ctx.Err() != nil {
		return nil
	}
	c := &consumer{name: name, fn: fn, sem: make(chan struct{}, t.Concurrency)}
	c.trig.Store(t)
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		c.sem <- struct{}{}
		b.wg.Go(func() {
			defer func() { <-c.sem }()
			b.handle(c, msg)
		})
	}, jetstream.PullMaxMessages(t.Concurrency), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		if !errors.Is(err, jetstream.ErrNoHeartbeat) {
			b.log.Debug("consume", slog.String("consumer", name), slog.Any("err", err))
		}
	}))
	if err != nil {
		return fmt.Errorf("consume %s: %w", name, err)
	}
	c.cc = cc
	b.consumers[name] = c
	return nil
}

func consumerMatches(have, want jetstream.ConsumerConfig) bool {
	return have.AckWait == want.AckWait && have.MaxAckPending == want.MaxAckPending &&
		slices.Equal(have.FilterSubjects, want.FilterSubjects) && have.MaxDeliver == want.MaxDeliver
}

// drop stops and deletes the consumers named with prefix that keep does
// not hold.
func (b *Bus) drop(ctx context.Context, prefix string, keep map[string]bool) {
	b.mu.Lock()
	for name, c := range b.consumers {
		if strings.HasPrefix(name, prefix) && !keep[name] {
			c.cc.Stop()
			delete(b.consumers, name)
		}
	}
	b.mu.Unlock()
	names := b.events.ConsumerNames(ctx)
	for name := range names.Name() {
		if strings.HasPrefix(name, prefix) && !keep[name] {
			if err := b.events.DeleteConsumer(ctx, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.log.Warn("delete consumer", slog.String("consumer", name), slog.Any("err", err))
			}
		}
	}
}

// sweep deletes the consumers of functions not in seen.
func (b *Bus) sweep(ctx context.Context, seen map[string]bool) {
	names := b.events.ConsumerNames(ctx)
	for name := range names.Name() {
		fn, _, ok := strings.Cut(strings.TrimPrefix(name, "t_"), "_")
		if !strings.HasPrefix(name, "t_") || !ok || seen[fn] {
			continue
		}
		b.drop(ctx, "t_"+fn+"_", nil)
	}
}

// Stop stops taking events and waits, up to timeout, for those running;
// then ends them. What was not acknowledged is delivered again later.
func (b *Bus) Stop(timeout time.Duration) {
	b.mu.Lock()
	for name, c := range b.consumers {
		c.cc.Stop()
		delete(b.consumers, name)
	}
	b.mu.Unlock()
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
	letter := &Letter{Function: c.fn, Trigger: t.Subject, Attempts: attempt}
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
	if attempt > t.MaxDeliver {
		// Delivered again after the node holding it stopped or crashed.
		letter.Reason, letter.Detail = ReasonUndelivered, fmt.Sprintf("delivered %d times without an answer", attempt-1)
		letter.Attempts = attempt - 1
		letter.InvocationIDs = letter.InvocationIDs[:attempt-1]
		b.deadLetter(ctx, c, msg, seq, letter)
		return
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
		res = b.run.Run(ctx, inv)
		if !res.Problem.Admission() || ctx.Err() != nil {
			break
		}
		b.rec.Event(c.fn, Waited)
		select {
		case <-ctx.Done():
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
	case retryable(res) && attempt < t.MaxDeliver:
		msg.NakWithDelay(jitter(t.RetryDelay(attempt)))
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
	if strings.HasPrefix(natsSubject, replayPrefix) {
		trigger = pipeline.Replay
	}
	data := env.Event.Data
	return &pipeline.Invocation{
		ID: id, Function: c.fn, Trigger: trigger, Source: env.Subject, UserAgent: "moat-events",
		Method: http.MethodPost, Proto: "HTTP/1.1", Host: "moat", Header: env.Event.Header(),
		Identify: func(_ context.Context, fn *registry.Loaded) (string, *pipeline.Problem) {
			for _, t := range fn.Manifest.Triggers {
				if t.Queue != nil && consumerName(fn.Name, t.Queue.Subject) == c.name {
					return env.Publisher, nil
				}
			}
			return "", &pipeline.Problem{Status: http.StatusNotFound, Reason: "trigger", Title: "no such trigger",
				Detail: fn.Name + " no longer takes events on " + env.Subject}
		},
		Body: func(limit int64) ([]byte, error) {
			if int64(len(data)) > limit {
				return nil, pipeline.ErrTooLarge
			}
			return data, nil
		},
	}
}
