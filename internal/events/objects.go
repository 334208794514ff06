package events

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/objstore"
)

// Object triggers. The object store writes a description message for
// every object stored or removed, in the bucket's own stream, kept as long
// as the object. A relay, one durable consumer per bucket that some
// trigger watches (shared by every node), turns each into a CloudEvent in
// MOAT_EVENTS on moat.obj.BUCKET.KIND, acknowledging the description only
// once the event is kept; from there delivery, retries and dead letters
// are a queue's. The event's id comes from the description's place in the
// bucket's stream, so a description relayed twice (a crash between the
// publish and the ack) is kept once.
//
// The bucket's stream keeps only the latest description of a name: while
// the relay is behind (no node running), a name stored several times
// yields one event, for its latest state.

const (
	objPrefix    = "moat.obj."    // + bucket + "." + kind
	objectPrefix = "o_"           // durable consumer of an object trigger
	relayName    = "moat_relay"   // durable consumer of a bucket's descriptions
	objectType   = "moat.object." // + kind: the CloudEvent's type
)

// ObjectEvent is the data of an object event, as JSON: what a trigger's
// input.schema constrains.
type ObjectEvent struct {
	Kind        string    `json:"kind"` // put or delete
	Bucket      string    `json:"bucket"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	Digest      string    `json:"digest,omitempty"`
	ContentType string    `json:"content_type,omitempty"`
	Modified    time.Time `json:"modified"`
}

func objectName(fn, bucket string) string {
	h := sha256.Sum256([]byte(bucket))
	return objectPrefix + fn + "_" + hex.EncodeToString(h[:6])
}

// objectFilters are the subjects an object trigger's consumer takes.
func objectFilters(o *manifest.ObjectTrigger) []string {
	out := make([]string, 0, len(o.Events))
	for _, k := range o.Events {
		out = append(out, objPrefix+o.Bucket+"."+k)
	}
	return out
}

// watchedBuckets is every bucket some trigger watches, with the earliest
// time such a trigger was declared.
func (b *Bus) watchedBuckets() map[string]time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]time.Time{}
	for _, ts := range b.triggers {
		for _, t := range ts {
			if t.obj == nil {
				continue
			}
			if since, ok := out[t.obj.Bucket]; !ok || t.since.Before(since) {
				out[t.obj.Bucket] = t.since
			}
		}
	}
	return out
}

// relayAll runs a relay for every watched bucket and ends the others.
func (b *Bus) relayAll(ctx context.Context) {
	want := b.watchedBuckets()
	b.relayMu.Lock()
	defer b.relayMu.Unlock()
	for bucket, cc := range b.relays {
		if _, ok := want[bucket]; !ok {
			cc.Stop()
			delete(b.relays, bucket)
			if err := b.js.DeleteConsumer(ctx, objstore.Stream(bucket), relayName); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				b.log.Warn("delete relay", slog.String("bucket", bucket), slog.Any("err", err))
			}
		}
	}
	if b.ctx == nil || b.ctx.Err() != nil {
		return
	}
	for bucket, since := range want {
		if b.relays[bucket] != nil {
			continue
		}
		cc, err := b.relay(ctx, bucket, since)
		if err != nil {
			b.log.Error("object trigger relay", slog.String("bucket", bucket), slog.Any("err", err))
			continue
		}
		b.relays[bucket] = cc
	}
}

// relay consumes bucket's descriptions into events. A relay made anew
// starts at since, when the trigger watching the bucket was declared, so
// that an object stored between a deploy and the relay's start (made as
// the node sees the deploy) is not missed; a relay already there goes on
// from where it was.
func (b *Bus) relay(ctx context.Context, bucket string, since time.Time) (jetstream.ConsumeContext, error) {
	cons, err := b.js.Consumer(ctx, objstore.Stream(bucket), relayName)
	if err != nil {
		cfg := jetstream.ConsumerConfig{
			Durable:       relayName,
			Description:   "Moat: object events of bucket " + bucket,
			FilterSubject: objstore.MetaSubjects(bucket),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       30 * time.Second,
			MaxAckPending: 256,
			DeliverPolicy: jetstream.DeliverNewPolicy,
			Replicas:      max(b.cfg.Replicas, 1),
		}
		if !since.IsZero() {
			start := since.Add(-time.Second) // a clock a little behind the writer's
			cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &start
		}
		if cons, err = b.js.CreateConsumer(ctx, objstore.Stream(bucket), cfg); errors.Is(err, jetstream.ErrConsumerExists) {
			cons, err = b.js.Consumer(ctx, objstore.Stream(bucket), relayName) // another node made it first
		}
		if err != nil {
			return nil, err
		}
	}
	return b.consumeAcking(cons, "relay "+bucket, "object event not kept; tried again", func(msg jetstream.Msg) error {
		return b.relayOne(b.ctx, bucket, msg)
	})
}

// relayOne keeps the event of one description message.
func (b *Bus) relayOne(ctx context.Context, bucket string, msg jetstream.Msg) error {
	info, deleted, ok := objstore.DescribeMeta(bucket, msg.Data())
	if !ok {
		return nil // the first step of a put, or no object's description
	}
	meta, err := msg.Metadata()
	if err != nil {
		return err
	}
	kind := manifest.ObjectPut
	if deleted {
		kind = manifest.ObjectDelete
	}
	// A description carries no time of its own (a put's is written before
	// its body is read): the stream's is when the change was made.
	info.Modified = meta.Timestamp.UTC()
	data, err := json.Marshal(ObjectEvent{Kind: kind, Bucket: bucket, Name: info.Name, Size: info.Size,
		Digest: info.Digest, ContentType: info.ContentType, Modified: info.Modified})
	if err != nil {
		return err
	}
	id := sha256.Sum256([]byte("object\x00" + bucket + "\x00" + strconv.FormatUint(meta.Sequence.Stream, 10)))
	ev := &cloudevent.Event{
		ID: hex.EncodeToString(id[:16]), Source: "/objects/" + bucket, SpecVersion: cloudevent.SpecVersion,
		Type: objectType + kind, Subject: info.Name, DataContentType: "application/json",
		Time: meta.Timestamp.UTC().Format(time.RFC3339Nano), Data: data,
	}
	natsSubject := objPrefix + bucket + "." + kind
	body, err := b.seal(ctx, envelope{Event: ev, Subject: "objects." + bucket, Publisher: "bucket:" + bucket, Published: b.now().UTC()}, eventAAD(natsSubject))
	if err != nil {
		return err
	}
	_, err = b.js.Publish(ctx, natsSubject, body, jetstream.WithMsgID(msgID(ev)), jetstream.WithExpectStream(StreamEvents))
	if err != nil {
		return fmt.Errorf("publish: %w", err)
	}
	return nil
}

// objectTakes reports whether an object trigger takes the event: its kind
// and the object's name within the trigger's prefix.
func objectTakes(o *manifest.ObjectTrigger, ev *cloudevent.Event) bool {
	kind, ok := strings.CutPrefix(ev.Type, objectType)
	return ok && o.Takes(kind, ev.Subject)
}

func (b *Bus) stopRelays() {
	b.relayMu.Lock()
	defer b.relayMu.Unlock()
	for bucket, cc := range b.relays {
		cc.Stop()
		delete(b.relays, bucket)
	}
}
