package node

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/moatfn/moat/internal/cloudevent"
	"github.com/moatfn/moat/internal/egress"
	"github.com/moatfn/moat/internal/events"
	"github.com/moatfn/moat/internal/gateway"
	"github.com/moatfn/moat/internal/host"
	"github.com/moatfn/moat/internal/kvstore"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/metrics"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/secrets"
)

// DataKeysBucket holds the wrapped data keys of secrets and KV buckets.
const DataKeysBucket = "moat_datakeys"

type capabilities struct {
	kv      *kvstore.Store
	objects *objstore.Store
	secrets *secrets.Store
	host    *host.Host
}

// ensureBuckets makes the KV and object buckets m grants: a bucket comes into being
// with the first deploy that grants it.
func (c *capabilities) ensureBuckets(ctx context.Context, m *manifest.Manifest) error {
	for b := range m.Permissions.KV {
		if err := c.kv.Ensure(ctx, b); err != nil {
			return fmt.Errorf("kv bucket %s: %w", b, err)
		}
	}
	for b := range m.Permissions.Objects {
		if err := c.objects.Ensure(ctx, b); err != nil {
			return fmt.Errorf("object bucket %s: %w", b, err)
		}
	}
	return nil
}

// capabilities opens what host calls reach (sealed KV buckets, secrets,
// egress, function calls) and makes gw serve host calls with them.
func (n *Node) capabilities(ctx context.Context, gw *gateway.Gateway) (*capabilities, error) {
	keyFile := n.cfg.MasterKeyFile
	if keyFile == "" {
		keyFile = filepath.Join(n.cfg.DataDir, "master.key")
	}
	ring, err := seal.LoadKeyring(keyFile, true)
	if err != nil {
		return nil, fmt.Errorf("master key: %w", err)
	}
	n.keyring = ring
	dkKV, err := n.store.KV(ctx, DataKeysBucket, 1)
	if err != nil {
		return nil, err
	}
	n.dataKeys = seal.NewDataKeys(dkKV, ring)
	kv := kvstore.New(n.store, n.dataKeys)
	sec, err := secrets.Open(ctx, n.store, n.dataKeys)
	if err != nil {
		return nil, err
	}
	n.secrets = sec
	n.grants, err = host.OpenGrants(ctx, n.log, n.store)
	if err != nil {
		return nil, err
	}
	ecfg := egress.Config{Allow: n.cfg.EgressAllow}
	if n.cfg.EgressCAFile != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		pem, err := os.ReadFile(n.cfg.EgressCAFile)
		if err != nil {
			return nil, fmt.Errorf("egress CA file: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("egress CA file %s: no PEM certificate in it", n.cfg.EgressCAFile)
		}
		ecfg.RootCAs = pool
	}
	objects := objstore.New(n.store, n.dataKeys, n.cfg.ObjectLimits)
	h := host.New(n.log, host.Config{
		KV: kv, Objects: objects, Secrets: sec, Egress: egress.New(ecfg), Invoker: gw, Audit: n.audit,
		Denied: n.metrics.Denied, Grants: n.grants, EgressBytes: n.usage.Egress,
	})
	n.pipeline.SetHost(h)
	return &capabilities{kv: kv, objects: objects, secrets: sec, host: h}, nil
}

var rotating sync.Mutex

// rotateMaster makes a new master key, re-wraps every data key under it and
// makes it the only one. A crash at any step leaves keys that the next
// start can read and a rotation that can be run again.
func (n *Node) rotateMaster(ctx context.Context) (int, string, error) {
	rotating.Lock()
	defer rotating.Unlock()
	if n.keyring == nil {
		return 0, "", errors.New("no master key")
	}
	next, err := n.keyring.BeginRotation()
	if err != nil {
		return 0, "", err
	}
	count, err := n.dataKeys.Rewrap(ctx, next)
	if err != nil {
		return count, "", fmt.Errorf("re-wrap data keys: %w", err)
	}
	if err := next.CommitRotation(); err != nil {
		return count, "", err
	}
	n.keyring = next
	n.log.Info("master key rotated", slog.Int("data_keys", count))
	return count, next.ID(), nil
}

// eventRecorder counts what happens to events in the metrics and, when a
// benchmark watches, tells it.
type eventRecorder struct {
	metrics *metrics.Metrics
	watch   atomic.Pointer[func(fn, outcome string)]
}

func (r *eventRecorder) Event(fn, outcome string) {
	r.metrics.Event(fn, outcome)
	if w := r.watch.Load(); w != nil {
		(*w)(fn, outcome)
	}
}

// hostEvents is the events bus as host calls reach it: its refusals become
// the guest's statuses.
type hostEvents struct{ bus *events.Bus }

func (h hostEvents) Publish(ctx context.Context, subject, typ, contentType string, data []byte, source, publisher string) (string, error) {
	ev := events.NewEvent(source, typ, subject, contentType, data)
	pub, err := h.bus.Publish(ctx, subject, ev, publisher)
	switch {
	case errors.Is(err, events.ErrNoListener):
		return "", &sandbox.HostError{Status: sandbox.StatusNotFound, Message: "publish " + subject + ": no function's trigger takes it"}
	case errors.Is(err, events.ErrFull):
		return "", &sandbox.HostError{Status: sandbox.StatusUnavailable, Message: "publish " + subject + ": the event store is full"}
	case errors.Is(err, events.ErrTooLarge):
		return "", &sandbox.HostError{Status: sandbox.StatusTooLarge, Message: "publish " + subject + ": " + err.Error()}
	case errors.Is(err, cloudevent.ErrInvalid):
		return "", &sandbox.HostError{Status: sandbox.StatusInvalid, Message: "publish " + subject + ": " + err.Error()}
	case err != nil:
		return "", err
	}
	return pub.ID, nil
}
