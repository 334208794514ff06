// Package audit keeps Moat's append-only, hash-chained record of control
// actions, authentication failures, invocations, refusals and denials: who
// did what, when, from where, with what result.
//
// Each node appends its own chain to a JetStream stream (subject
// moat.audit.NODE): every record carries the SHA-256 of the one before, and
// the node signs its chain head with an ed25519 key kept under the data
// directory. Verify walks a chain and names exactly which record was
// modified, removed, inserted or reordered, or that the tail was cut.
package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Stream and subjects.
const (
	Stream        = "MOAT_AUDIT"
	SubjectPrefix = "moat.audit."
)

// Outcomes.
const (
	OK      = "ok"
	Refused = "refused"
	Failed  = "failed"
)

// Record is one audited event. Records never hold secrets, tokens or
// request bodies.
type Record struct {
	Seq          uint64    `json:"seq"`
	Time         time.Time `json:"time"`
	Node         string    `json:"node"`
	Actor        string    `json:"actor,omitempty"`  // key:ID, admin, jwt:SUB, or "" for anonymous
	Action       string    `json:"action"`           // deploy, rollback, remove, key.create, key.revoke, auth.fail, invoke, refuse, ...
	Target       string    `json:"target,omitempty"` // the function or key acted on
	Outcome      string    `json:"outcome"`          // ok, refused, failed
	Reason       string    `json:"reason,omitempty"`
	Source       string    `json:"source,omitempty"` // the caller's address
	UserAgent    string    `json:"user_agent,omitempty"`
	Version      string    `json:"version,omitempty"`
	InvocationID string    `json:"invocation_id,omitempty"`
	Trigger      string    `json:"trigger,omitempty"`
	Status       int       `json:"status,omitempty"`
	TookMS       float64   `json:"took_ms,omitempty"`
	Memory       string    `json:"memory,omitempty"`
	// Capability and Resource name what a host call reached for: "kv.get"
	// and "contacts/KEY", "secret.get" and "MAILER_KEY", ...
	Capability string `json:"capability,omitempty"`
	Resource   string `json:"resource,omitempty"`
	// Repeats, on a refusal summary, is how many refusals it stands for:
	// those of the same kind (action, target, reason, source address,
	// actor, trigger) after the one audited in full, within its window.
	Repeats int    `json:"repeats,omitempty"`
	Prev    string `json:"prev"`
	Hash    string `json:"hash"`
	// Signature, on a checkpoint record (Action "checkpoint"), signs the
	// record's Hash with the node's key.
	Signature string `json:"sig,omitempty"`
}

// digest is the SHA-256 of r's JSON without its Hash and Signature.
func digest(r Record) string {
	_, h := encode(r)
	return h
}

// Log appends to one node's chain. It is safe for concurrent use.
type Log struct {
	log      *slog.Logger
	js       jetstream.JetStream
	node     string
	key      ed25519.PrivateKey
	headFile string
	now      func() time.Time
	subject  string

	mu      sync.Mutex
	seq     uint64
	head    string
	signed  uint64 // seq of the last checkpoint
	pending []byte // chained records not yet published, each followed by a comma
	npend   int
	first   uint64 // seq of the first pending record
}

// Records are published in batches, one JetStream message holding a JSON
// array of consecutive records: with the store syncing every message to
// disk, one sync per batch instead of per record keeps auditing off the
// invocation's critical path. A synchronous append publishes the pending
// batch with it and waits for the store.
const (
	maxBatch      = 256
	flushInterval = 50 * time.Millisecond
)

// Node returns the id of the node whose chain this is.
func (l *Log) Node() string { return l.node }

type streamer interface {
	Stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error)
}

// Config says whose chain a Log appends to.
type Config struct {
	Node     string             // the node's id; its chain's subject
	Key      ed25519.PrivateKey // signs checkpoints
	HeadFile string             // where the last signed head is kept, outside the stream
	MaxAge   time.Duration      // retention; 0 keeps everything
}

// Open creates or opens the audit stream and resumes the node's chain from
// its last record.
func Open(ctx context.Context, log *slog.Logger, st streamer, js jetstream.JetStream, cfg Config) (*Log, error) {
	s, err := st.Stream(ctx, jetstream.StreamConfig{
		Name:     Stream,
		Subjects: []string{SubjectPrefix + "*"},
		MaxAge:   cfg.MaxAge,
		Discard:  jetstream.DiscardOld,
	})
	if err != nil {
		return nil, err
	}
	l := &Log{log: log.With("component", "audit"), js: js, node: cfg.Node, key: cfg.Key, headFile: cfg.HeadFile, now: time.Now, subject: SubjectPrefix + cfg.Node}
	last, err := s.GetLastMsgForSubject(ctx, l.subject)
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
	case err != nil:
		return nil, fmt.Errorf("audit: resume: %w", err)
	default:
		var batch []Record
		if err := json.Unmarshal(last.Data, &batch); err != nil || len(batch) == 0 {
			return nil, fmt.Errorf("audit: resume: the last batch does not decode: %v", err)
		}
		r := batch[len(batch)-1]
		l.seq, l.head = r.Seq, r.Hash
		if r.Action == "checkpoint" {
			l.signed = r.Seq
		}
	}
	return l, nil
}

// Append adds rec to the chain. With sync it returns once the store has the
// record on disk; otherwise it returns at once and the record follows
// within the publish window (docs/audit.md says what a crash can lose).
func (l *Log) Append(ctx context.Context, rec Record, sync bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.appendLocked(ctx, rec, sync)
}

func (l *Log) appendLocked(ctx context.Context, rec Record, sync bool) error {
	rec.Seq = l.seq + 1
	rec.Node = l.node
	if rec.Time.IsZero() {
		rec.Time = l.now().UTC()
	}
	rec.Prev = l.head
	if l.npend == 0 {
		l.first = rec.Seq
		l.pending = append(l.pending[:0], '[')
	}
	if rec.Action == "checkpoint" {
		_, rec.Hash = encode(rec)
		rec.Signature = hex.EncodeToString(ed25519.Sign(l.key, []byte(rec.Hash)))
		b, err := json.Marshal(rec)
		if err != nil {
			return err
		}
		l.pending = append(l.pending, b...)
	} else {
		l.pending, rec.Hash = encodeInto(l.pending, &rec)
	}
	l.pending = append(l.pending, ',')
	l.npend++
	l.seq, l.head = rec.Seq, rec.Hash
	if sync || l.npend >= maxBatch {
		return l.flushLocked(ctx, sync)
	}
	return nil
}

// flushLocked publishes the pending records as one message.
func (l *Log) flushLocked(ctx context.Context, sync bool) error {
	if l.npend == 0 {
		return nil
	}
	b := append(l.pending[:len(l.pending)-1:len(l.pending)-1], ']') // the last comma becomes the bracket
	first := l.first
	l.pending, l.npend = l.pending[:0], 0 // b is a copy: the buffer is reused
	var err error
	if sync {
		_, err = l.js.Publish(ctx, l.subject, b)
	} else {
		_, err = l.js.PublishAsync(l.subject, b)
	}
	if err != nil {
		// The records are chained but lost: Verify will name the gap.
		return fmt.Errorf("audit: records from %d: %w", first, err)
	}
	return nil
}

// Flush publishes pending records and waits for the store.
func (l *Log) Flush(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.flushLocked(ctx, true)
}

// Checkpoint signs the chain head if records came since the last one.
func (l *Log) Checkpoint(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.seq == l.signed {
		return nil
	}
	if err := l.appendLocked(ctx, Record{Action: "checkpoint", Outcome: OK}, true); err != nil {
		return err
	}
	l.signed = l.seq
	if l.headFile != "" {
		return WriteHead(l.headFile, Head{Seq: l.seq, Hash: l.head})
	}
	return nil
}

// Run publishes pending records every 50ms and signs the head every
// interval until ctx ends, then flushes and signs once more.
func (l *Log) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	f := time.NewTicker(flushInterval)
	defer f.Stop()
	for {
		select {
		case <-f.C:
			l.mu.Lock()
			err := l.flushLocked(ctx, false)
			l.mu.Unlock()
			if err != nil {
				l.log.WarnContext(ctx, "audit flush", slog.Any("err", err))
			}
		case <-t.C:
			if err := l.Checkpoint(ctx); err != nil {
				l.log.WarnContext(ctx, "audit checkpoint", slog.Any("err", err))
			}
		case <-ctx.Done():
			fctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			select {
			case <-l.js.PublishAsyncComplete():
			case <-fctx.Done():
			}
			if err := l.Checkpoint(fctx); err != nil {
				l.log.Warn("audit checkpoint", slog.Any("err", err))
			}
			cancel()
			return
		}
	}
}
