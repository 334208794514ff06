// Package fnlog keeps functions' logs: what each invocation wrote to stderr,
// with its invocation id, status and duration, in a JetStream stream that
// keeps the newest entries of each function.
//
// Entries are published without waiting for the store's acknowledgement, so
// logging never slows an invocation down; a crash can lose the entries of
// the last moments (docs/storage.md).
package fnlog

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream is the stream's name; subjects are SubjectPrefix + function.
const (
	Stream        = "MOAT_LOGS"
	SubjectPrefix = "moat.logs."
	// PerFunction is how many entries are kept for each function.
	PerFunction = 1000
)

// Entry is one invocation's log.
type Entry struct {
	Time         time.Time `json:"time"`
	Function     string    `json:"fn"`
	Version      string    `json:"version"`
	InvocationID string    `json:"invocation_id"`
	Status       int       `json:"status"`
	TookMS       float64   `json:"took_ms"`
	Lines        []string  `json:"lines,omitempty"`
	Dropped      int       `json:"dropped_bytes,omitempty"`
	Error        string    `json:"error,omitempty"`
}

type streamer interface {
	Stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

// Log is safe for concurrent use.
type Log struct {
	log    *slog.Logger
	js     jetstream.JetStream
	stream jetstream.Stream
}

// Open creates or opens the log stream.
func Open(ctx context.Context, log *slog.Logger, st streamer, js jetstream.JetStream) (*Log, error) {
	s, err := st.Stream(ctx, jetstream.StreamConfig{
		Name:              Stream,
		Subjects:          []string{SubjectPrefix + "*"},
		MaxMsgsPerSubject: PerFunction,
		MaxAge:            30 * 24 * time.Hour,
		MaxBytes:          1 << 30,
		MaxMsgSize:        1 << 20,
		Discard:           jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	return &Log{log: log.With("component", "fnlog"), js: js, stream: s}, nil
}

// Append publishes e without waiting for the acknowledgement.
func (l *Log) Append(e *Entry) {
	b, err := json.Marshal(e)
	if err != nil {
		return
	}
	if _, err := l.js.PublishAsync(SubjectPrefix+e.Function, b); err != nil {
		l.log.Warn("log entry dropped", slog.String("fn", e.Function), slog.String("invocation_id", e.InvocationID), slog.Any("err", err))
	}
}

// Flush waits until every appended entry is acknowledged, or ctx ends.
func (l *Log) Flush(ctx context.Context) error {
	select {
	case <-l.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Range calls fn for the entries of function written from since on and
// not after until (zero: no bound), oldest first: the newest n of them
// (n <= 0: all) or, if follow is set, all of them and then each new entry
// until ctx ends. A zero since is Tail, with until applied.
func (l *Log) Range(ctx context.Context, function string, n int, since, until time.Time, follow bool, fn func(*Entry) error) error {
	// within hands to to the entries not after until.
	within := func(to func(*Entry) error) func(*Entry) error {
		return func(e *Entry) error {
			if !until.IsZero() && e.Time.After(until) {
				return nil
			}
			return to(e)
		}
	}
	inRange := within(fn)
	if since.IsZero() {
		return l.Tail(ctx, function, n, follow, inRange)
	}
	subject := SubjectPrefix + function
	last, err := l.stream.GetLastMsgForSubject(ctx, subject)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && last.Time.Before(since) {
		if !follow {
			return nil
		}
		return l.consume(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}, 0, 0, true, inRange)
	}
	if err != nil {
		return fmt.Errorf("log range %s: %w", function, err)
	}
	start := since
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverByStartTimePolicy, OptStartTime: &start}
	if follow || n <= 0 {
		return l.consume(ctx, cfg, 0, last.Sequence, follow, inRange)
	}
	// The newest n of the range: keep the last n, then hand them on.
	ring := make([]*Entry, n)
	seen := 0
	err = l.consume(ctx, cfg, 0, last.Sequence, false, within(func(e *Entry) error {
		ring[seen%n] = e
		seen++
		return nil
	}))
	if err != nil {
		return err
	}
	for i := max(0, seen-n); i < seen; i++ {
		if err := fn(ring[i%n]); err != nil {
			return err
		}
	}
	return nil
}

// Tail calls fn for the newest n entries of function, oldest first, then,
// if follow is set, for each new entry until ctx ends.
func (l *Log) Tail(ctx context.Context, function string, n int, follow bool, fn func(*Entry) error) error {
	subject := SubjectPrefix + function
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}, DeliverPolicy: jetstream.DeliverNewPolicy}
	info, err := l.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return fmt.Errorf("log info %s: %w", function, err)
	}
	pending := info.State.Subjects[subject]
	if n > 0 && pending > 0 {
		// Start n entries back from the last of this subject.
		last, err := l.stream.GetLastMsgForSubject(ctx, subject)
		if err != nil {
			return fmt.Errorf("log tail %s: %w", function, err)
		}
		cfg.DeliverPolicy = jetstream.DeliverAllPolicy
		skip := int64(pending) - int64(n)
		return l.consume(ctx, cfg, skip, last.Sequence, follow, fn)
	}
	if !follow {
		return nil
	}
	return l.consume(ctx, cfg, 0, 0, true, fn)
}

// consume delivers entries, skipping the first skip, stopping after the
// stream sequence last unless follow is set.
func (l *Log) consume(ctx context.Context, cfg jetstream.OrderedConsumerConfig, skip int64, last uint64, follow bool, fn func(*Entry) error) error {
	c, err := l.stream.OrderedConsumer(ctx, cfg)
	if err != nil {
		return fmt.Errorf("log consumer: %w", err)
	}
	it, err := c.Messages()
	if err != nil {
		return fmt.Errorf("log consumer: %w", err)
	}
	defer it.Stop()
	go func() {
		<-ctx.Done()
		it.Stop()
	}()
	for {
		msg, err := it.Next()
		if errors.Is(err, jetstream.ErrMsgIteratorClosed) {
			return ctx.Err()
		}
		if err != nil {
			return fmt.Errorf("log read: %w", err)
		}
		meta, err := msg.Metadata()
		if err != nil {
			return fmt.Errorf("log read: %w", err)
		}
		if skip > 0 {
			skip--
		} else {
			var e Entry
			if err := json.Unmarshal(msg.Data(), &e); err == nil {
				if err := fn(&e); err != nil {
					return err
				}
			}
		}
		if !follow && meta.Sequence.Stream >= last {
			return nil
		}
	}
}
