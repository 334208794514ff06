// Package events is the queue trigger: events published on subjects, kept
// in a JetStream stream, delivered to the functions whose triggers take
// them through the same pipeline as an HTTP request, retried with backoff
// and, when they cannot be handled, kept as dead letters (docs/events.md).
//
// Every event is a CloudEvent. Its attributes and data are sealed at rest
// (the KV's data keys, scope "events"), in the live stream and in the dead
// letters alike; the stream sees only a subject and a message id.
//
// Delivery is at least once. Each trigger is a durable consumer, shared by
// every node that runs the function, so an event is handled by one node at
// a time. The consumer acknowledges an event only after the function
// answered 2xx; a 5xx, timeout or trap is retried after the trigger's
// backoff until max_deliver attempts, then dead-lettered; any other answer
// (a 4xx, a schema refusal) is dead-lettered at once; a refusal by the
// limits (rate, concurrency, budget) waits and tries again without
// counting as an attempt.
package events

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/pipeline"
	"github.com/moatfn/moat/internal/seal"
)

// Streams and the subjects under them.
const (
	StreamEvents = "MOAT_EVENTS"
	StreamDLQ    = "MOAT_DLQ"

	eventPrefix  = "moat.ev."     // + the event's subject
	replayPrefix = "moat.replay." // + consumer name: a dead letter sent again to one trigger
	dlqPrefix    = "moat.dlq."    // + function: its dead letters
)

// MaxData is the largest event data a publish accepts: sealed and
// encoded, an event must fit in one NATS message.
const MaxData = 512 << 10

// Errors of Publish.
var (
	ErrNoListener = errors.New("no function's trigger takes this subject")
	ErrTooLarge   = fmt.Errorf("event data over %d KiB", MaxData>>10)
	ErrFull       = errors.New("the event store is full")
)

// Runner runs invocations: the pipeline.
type Runner interface {
	Run(ctx context.Context, inv *pipeline.Invocation) *pipeline.Result
}

// Recorder counts what happens to events, for /metrics.
type Recorder interface {
	Event(fn, outcome string) // delivered, retried, dead_lettered, waited
}

// Config configures a Bus.
type Config struct {
	// Functions is the registry's bucket, watched for triggers.
	Functions jetstream.KeyValue
	// AckWait is how long a delivered event may go without word from the
	// node holding it before it is delivered again: 0 is 30s. A running
	// event is kept alive every third of it.
	AckWait time.Duration
	// MaxBytes caps the live events kept; a publish past it fails with
	// ErrFull rather than drop an event. 0 is 1 GiB.
	MaxBytes int64
	// MaxDeadBytes caps the dead letters kept. 0 is 1 GiB.
	MaxDeadBytes int64
	// Replicas of the streams; 0 is 1.
	Replicas int
}

// Bus publishes events and runs the consumers of every trigger.
type Bus struct {
	log       *slog.Logger
	js        jetstream.JetStream
	events    jetstream.Stream
	dlq       jetstream.Stream
	schedules jetstream.Stream
	ticks     jetstream.ConsumeContext // forwards schedule ticks
	keys      *seal.DataKeys
	run       Runner
	rec       Recorder
	cfg       Config
	now       func() time.Time

	mu        sync.Mutex
	triggers  map[string][]*trigger // active triggers by function
	consumers map[string]*consumer  // running consumers by name
	ctx       context.Context       // ends the consumers
	wg        sync.WaitGroup

	relayMu sync.Mutex
	relays  map[string]jetstream.ConsumeContext // object events, by bucket
}

// Open creates (or binds) the streams. Start runs the consumers.
func Open(ctx context.Context, log *slog.Logger, js jetstream.JetStream, keys *seal.DataKeys, run Runner, rec Recorder, cfg Config) (*Bus, error) {
	if cfg.AckWait == 0 {
		cfg.AckWait = 30 * time.Second
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = 1 << 30
	}
	if cfg.MaxDeadBytes == 0 {
		cfg.MaxDeadBytes = 1 << 30
	}
	b := &Bus{log: log.With("component", "events"), js: js, keys: keys, run: run, rec: rec, cfg: cfg, now: time.Now,
		triggers: map[string][]*trigger{}, consumers: map[string]*consumer{}, relays: map[string]jetstream.ConsumeContext{}}
	var err error
	b.events, err = stream(ctx, js, jetstream.StreamConfig{
		Name:        StreamEvents,
		Description: "Moat events, sealed; kept until every trigger that takes them is done",
		Subjects:    []string{eventPrefix + ">", replayPrefix + ">", tickPrefix + ">", objPrefix + ">"},
		Retention:   jetstream.InterestPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    cfg.MaxBytes,
		Duplicates:  2 * time.Minute,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	b.dlq, err = stream(ctx, js, jetstream.StreamConfig{
		Name:        StreamDLQ,
		Description: "Moat dead letters, sealed; kept until purged",
		Subjects:    []string{dlqPrefix + ">"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Discard:     jetstream.DiscardNew,
		MaxBytes:    cfg.MaxDeadBytes,
		Duplicates:  2 * time.Minute,
		Replicas:    max(cfg.Replicas, 1),
	})
	if err != nil {
		return nil, err
	}
	if err := b.openSchedules(ctx); err != nil {
		return nil, err
	}
	return b, nil
}

// stream binds the stream cfg describes, creating or updating it when it
// differs (an update rewrites the stream's metadata, which every start
// would otherwise pay for).
func stream(ctx context.Context, js jetstream.JetStream, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	if s, err := js.Stream(ctx, cfg.Name); err == nil {
		have := s.CachedInfo().Config
		if have.MaxBytes == cfg.MaxBytes && have.Replicas == cfg.Replicas && have.Retention == cfg.Retention && len(have.Subjects) == len(cfg.Subjects) {
			return s, nil
		}
	}
	s, err := js.CreateOrUpdateStream(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", cfg.Name, err)
	}
	return s, nil
}

// envelope is what the stream keeps of an event, sealed.
type envelope struct {
	Event     *cloudevent.Event `json:"event"`
	Subject   string            `json:"subject"`
	Publisher string            `json:"publisher,omitempty"` // REMOTE_USER of whoever published
	Published time.Time         `json:"published"`
	Next      time.Time         `json:"next,omitzero"` // a schedule's tick: when the one after it is due
}

const sealScope = "events"

func eventAAD(natsSubject string) []byte { return []byte("moat event\x00" + natsSubject) }

func (b *Bus) seal(ctx context.Context, v any, aad []byte) ([]byte, error) {
	s, err := b.keys.Sealer(ctx, sealScope)
	if err != nil {
		return nil, err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return s.Seal(plain, aad), nil
}

func (b *Bus) open(ctx context.Context, sealed, aad []byte, v any) error {
	s, err := b.keys.Sealer(ctx, sealScope)
	if err != nil {
		return err
	}
	plain, err := s.Open(sealed, aad)
	if err != nil {
		return err
	}
	return json.Unmarshal(plain, v)
}

// Published is what a publish did.
type Published struct {
	ID        string `json:"id"` // the CloudEvent id
	Subject   string `json:"subject"`
	Sequence  uint64 `json:"sequence"`
	Duplicate bool   `json:"duplicate"` // the same source and id came within the last two minutes: kept once
}

// NewEvent returns an event on subject with a fresh id, the time now, and
// type the subject when typ is "".
func NewEvent(source, typ, subject, contentType string, data []byte) *cloudevent.Event {
	if typ == "" {
		typ = subject
	}
	return &cloudevent.Event{
		ID: newEventID(), Source: source, SpecVersion: cloudevent.SpecVersion, Type: typ,
		DataContentType: contentType, Time: time.Now().UTC().Format(time.RFC3339Nano), Data: data,
	}
}

func newEventID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Publish keeps ev for every trigger that takes subject. publisher is who
// publishes, as REMOTE_USER will show it to the function. It refuses a
// malformed subject or event, data over MaxData, a subject no trigger
// takes (ErrNoListener: nobody would ever handle it) and a full store
// (ErrFull). The same source and id published twice within two minutes is
// kept once.
func (b *Bus) Publish(ctx context.Context, subject string, ev *cloudevent.Event, publisher string) (*Published, error) {
	if err := manifest.CheckSubject(subject); err != nil {
		return nil, err
	}
	if err := ev.Check(); err != nil {
		return nil, err
	}
	if len(ev.Data) > MaxData {
		return nil, ErrTooLarge
	}
	if !b.Listened(subject) {
		return nil, fmt.Errorf("%s: %w", subject, ErrNoListener)
	}
	natsSubject := eventPrefix + subject
	body, err := b.seal(ctx, envelope{Event: ev, Subject: subject, Publisher: publisher, Published: b.now().UTC()}, eventAAD(natsSubject))
	if err != nil {
		return nil, err
	}
	ack, err := b.js.Publish(ctx, natsSubject, body, jetstream.WithMsgID(msgID(ev)), jetstream.WithExpectStream(StreamEvents))
	if err != nil {
		if strings.Contains(err.Error(), "maximum bytes") {
			return nil, ErrFull
		}
		return nil, fmt.Errorf("publish: %w", err)
	}
	return &Published{ID: ev.ID, Subject: subject, Sequence: ack.Sequence, Duplicate: ack.Duplicate}, nil
}

// msgID is the stream's deduplication id of an event: its source and id,
// which CloudEvents says identify it.
func msgID(ev *cloudevent.Event) string {
	h := sha256.Sum256([]byte(ev.Source + "\x00" + ev.ID))
	return hex.EncodeToString(h[:16])
}

// Functions returns the functions that have event triggers, by name.
func (b *Bus) Functions() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]string, 0, len(b.triggers))
	for fn := range b.triggers {
		out = append(out, fn)
	}
	slices.Sort(out)
	return out
}

// Listened reports whether some function's trigger takes subject.
func (b *Bus) Listened(subject string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, ts := range b.triggers {
		for _, t := range ts {
			if t.sched == nil && t.obj == nil && manifest.SubjectMatches(t.q.Subject, subject) {
				return true
			}
		}
	}
	return false
}
