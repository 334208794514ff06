package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"

	"github.com/nats-io/nats.go/jetstream"
)

// Problem kinds Verify reports.
const (
	Modified     = "modified"      // a record's content does not match its hash
	Removed      = "removed"       // a sequence number is missing
	Inserted     = "inserted"      // two records claim one sequence number
	Reordered    = "reordered"     // a record comes after a later one
	Broken       = "broken"        // a record's prev is not the hash before it: a record was rewritten with a new hash
	BadSignature = "bad_signature" // a checkpoint's signature does not verify
	TailCut      = "tail_cut"      // the chain ends before the last head the node signed
)

// Problem is one thing Verify found wrong.
type Problem struct {
	Kind   string `json:"kind"`
	Seq    uint64 `json:"seq"`
	Detail string `json:"detail"`
}

// Report is what Verify found in one node's chain.
type Report struct {
	Node       string    `json:"node"`
	Records    int       `json:"records"`
	LastSeq    uint64    `json:"last_seq"`
	LastSigned uint64    `json:"last_signed"` // seq of the last valid checkpoint
	Unsigned   int       `json:"unsigned"`    // records after it, not yet signed
	Problems   []Problem `json:"problems"`
}

// OK reports whether the chain verified.
func (r *Report) OK() bool { return len(r.Problems) == 0 }

// Head is the last chain head a node signed, kept outside the stream so
// that a cut tail shows.
type Head struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// Verify checks records, in the order the stream holds them, against pub;
// head, if not nil, is the node's last signed head.
func Verify(node string, records []Record, pub ed25519.PublicKey, head *Head) *Report {
	rep := &Report{Node: node, Records: len(records)}
	add := func(kind string, seq uint64, format string, args ...any) {
		rep.Problems = append(rep.Problems, Problem{Kind: kind, Seq: seq, Detail: fmt.Sprintf(format, args...)})
	}
	bySeq := map[uint64]Record{}
	var maxSeen uint64
	for _, r := range records {
		if _, dup := bySeq[r.Seq]; dup {
			add(Inserted, r.Seq, "a second record claims seq %d", r.Seq)
			continue
		}
		if r.Seq < maxSeen {
			add(Reordered, r.Seq, "seq %d comes after seq %d", r.Seq, maxSeen)
		}
		maxSeen = max(maxSeen, r.Seq)
		bySeq[r.Seq] = r
	}
	rep.LastSeq = maxSeen
	seqs := make([]uint64, 0, len(bySeq))
	for s := range bySeq {
		seqs = append(seqs, s)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	var first uint64 = 1
	if len(seqs) > 0 && seqs[0] > 1 && bySeq[seqs[0]].Prev != "" {
		// Retention dropped the start of the chain: begin where it begins.
		first = seqs[0]
	}
	// Walk the sequence numbers present, in order: gaps between them are
	// removals (never a scan of every integer: a forged seq may be huge).
	next := first
	for _, s := range seqs {
		if s < first {
			continue
		}
		if s > next {
			if s == next+1 {
				add(Removed, next, "record %d is missing", next)
			} else {
				add(Removed, next, "records %d to %d are missing", next, s-1)
			}
		}
		next = s + 1
		r := bySeq[s]
		if digest(r) != r.Hash {
			add(Modified, s, "record %d does not match its hash", s)
		}
		if prev, ok := bySeq[s-1]; ok && s > first && r.Prev != prev.Hash {
			add(Broken, s, "record %d does not follow record %d: one of them was rewritten", s, s-1)
		}
		if r.Action == "checkpoint" {
			sig, err := hex.DecodeString(r.Signature)
			if err != nil || !ed25519.Verify(pub, []byte(r.Hash), sig) {
				add(BadSignature, s, "checkpoint %d is not signed by the node's key", s)
			} else if digest(r) == r.Hash {
				rep.LastSigned = s
			}
		}
	}
	if head != nil && head.Seq > maxSeen {
		add(TailCut, maxSeen, "the chain ends at %d but the node signed up to %d", maxSeen, head.Seq)
	} else if head != nil && head.Seq > 0 {
		if r, ok := bySeq[head.Seq]; ok && r.Hash != head.Hash {
			add(Modified, head.Seq, "record %d is not the one the node signed", head.Seq)
		}
	}
	for _, s := range seqs {
		if s > rep.LastSigned {
			rep.Unsigned++
		}
	}
	return rep
}

// Read returns every record of node's chain, in stream order: each
// message is a batch of consecutive records.
func Read(ctx context.Context, js jetstream.JetStream, node string) ([]Record, error) {
	s, err := js.Stream(ctx, Stream)
	if err != nil {
		return nil, err
	}
	subject := SubjectPrefix + node
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, err
	}
	n := info.State.Subjects[subject]
	if n == 0 {
		return nil, nil
	}
	c, err := s.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, err
	}
	out := make([]Record, 0, n)
	for read := uint64(0); read < n; {
		batch, err := c.Fetch(int(min(n-read, 1000)))
		if err != nil {
			return nil, err
		}
		got := 0
		for m := range batch.Messages() {
			var recs []Record
			if err := json.Unmarshal(m.Data(), &recs); err != nil {
				recs = []Record{{Action: "undecodable"}}
			}
			out = append(out, recs...)
			got++
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, err
		}
		if got == 0 {
			break
		}
		read += uint64(got)
	}
	return out, nil
}

// WriteHead records the signed head outside the stream (0600).
func WriteHead(path string, h Head) error {
	b, _ := json.Marshal(h)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// ReadHead reads what WriteHead wrote; no file is no head.
func ReadHead(path string) (*Head, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var h Head
	if err := json.Unmarshal(b, &h); err != nil {
		return nil, fmt.Errorf("audit head %s: %w", path, err)
	}
	return &h, nil
}

// Trail reads and verifies the node's own chain. It is safe for
// concurrent use.
type Trail struct {
	Log      *Log
	JS       jetstream.JetStream
	Public   ed25519.PublicKey
	HeadFile string
}

// Records returns the chain, pending records published first.
func (t *Trail) Records(ctx context.Context) ([]Record, error) {
	if err := t.Log.Flush(ctx); err != nil {
		return nil, err
	}
	return Read(ctx, t.JS, t.Log.Node())
}

// Verify verifies the chain against the node's key and signed head.
func (t *Trail) Verify(ctx context.Context) (*Report, error) {
	recs, err := t.Records(ctx)
	if err != nil {
		return nil, err
	}
	head, err := ReadHead(t.HeadFile)
	if err != nil {
		return nil, err
	}
	return Verify(t.Log.Node(), recs, t.Public, head), nil
}
