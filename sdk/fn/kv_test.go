package fn

import (
	"errors"
	"reflect"
	"testing"
	"time"
)

func TestBucketRequests(t *testing.T) {
	tests := []struct {
		name  string
		call  func(b *Bucket) (any, error)
		reply []byte
		op    uint32
		shape string
		req   []any // the request, decoded by shape
		want  any   // what call returns besides its error
	}{
		{
			name:  "Get",
			call:  func(b *Bucket) (any, error) { v, rev, err := b.Get("cart/1"); return []any{string(v), rev}, err },
			reply: encodeValues("3 widgets", 12),
			op:    opKVGet, shape: "bb", req: []any{"carts", "cart/1"},
			want: []any{"3 widgets", uint64(12)},
		},
		{
			name:  "Put",
			call:  func(b *Bucket) (any, error) { return b.Put("k", []byte("v")) },
			reply: encodeValues(1),
			op:    opKVPut, shape: "bbbu", req: []any{"carts", "k", "v", uint64(0)},
			want: uint64(1),
		},
		{
			name:  "PutTTL whole",
			call:  func(b *Bucket) (any, error) { return b.PutTTL("k", nil, 90*time.Second) },
			reply: encodeValues(2),
			op:    opKVPut, shape: "bbbu", req: []any{"carts", "k", "", uint64(90000)},
			want: uint64(2),
		},
		{
			name:  "PutTTL rounds up",
			call:  func(b *Bucket) (any, error) { return b.PutTTL("k", nil, time.Millisecond+time.Nanosecond) },
			reply: encodeValues(3),
			op:    opKVPut, shape: "bbbu", req: []any{"carts", "k", "", uint64(2)},
			want: uint64(3),
		},
		{
			name:  "PutTTL under a millisecond",
			call:  func(b *Bucket) (any, error) { return b.PutTTL("k", nil, time.Nanosecond) },
			reply: encodeValues(3),
			op:    opKVPut, shape: "bbbu", req: []any{"carts", "k", "", uint64(1)},
			want: uint64(3),
		},
		{
			name:  "Create",
			call:  func(b *Bucket) (any, error) { return b.Create("lock", []byte("me"), 5*time.Second) },
			reply: encodeValues(4),
			op:    opKVCreate, shape: "bbbu", req: []any{"carts", "lock", "me", uint64(5000)},
			want: uint64(4),
		},
		{
			name:  "Create without ttl",
			call:  func(b *Bucket) (any, error) { return b.Create("lock", []byte("me"), 0) },
			reply: encodeValues(4),
			op:    opKVCreate, shape: "bbbu", req: []any{"carts", "lock", "me", uint64(0)},
			want: uint64(4),
		},
		{
			name:  "Update",
			call:  func(b *Bucket) (any, error) { return b.Update("k", []byte("v2"), 1<<33) },
			reply: encodeValues(1<<33 + 1),
			op:    opKVUpdate, shape: "bbbu", req: []any{"carts", "k", "v2", uint64(1 << 33)},
			want: uint64(1<<33 + 1),
		},
		{
			name:  "Delete",
			call:  func(b *Bucket) (any, error) { return nil, b.Delete("k") },
			reply: nil,
			op:    opKVDelete, shape: "bb", req: []any{"carts", "k"},
			want: nil,
		},
		{
			name:  "Keys",
			call:  func(b *Bucket) (any, error) { return b.Keys("cart/") },
			reply: encodeValues(2, "cart/1", "cart/2"),
			op:    opKVKeys, shape: "bb", req: []any{"carts", "cart/"},
			want: []string{"cart/1", "cart/2"},
		},
		{
			name:  "Keys none",
			call:  func(b *Bucket) (any, error) { return b.Keys("") },
			reply: encodeValues(0),
			op:    opKVKeys, shape: "bb", req: []any{"carts", ""},
			want: []string{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &fakeHost{reply: tt.reply}
			got, err := tt.call(&Bucket{name: "carts", host: host.call})
			if err != nil {
				t.Fatalf("%s: %v", tt.name, err)
			}
			host.check(t, tt.op, tt.shape, tt.req...)
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("%s = %#v, want %#v", tt.name, got, tt.want)
			}
		})
	}
}

func TestBucketErrors(t *testing.T) {
	calls := map[string]struct {
		op   uint32
		call func(b *Bucket) error
	}{
		"Get":    {opKVGet, func(b *Bucket) error { _, _, err := b.Get("k"); return err }},
		"Put":    {opKVPut, func(b *Bucket) error { _, err := b.Put("k", nil); return err }},
		"Create": {opKVCreate, func(b *Bucket) error { _, err := b.Create("k", nil, 0); return err }},
		"Update": {opKVUpdate, func(b *Bucket) error { _, err := b.Update("k", nil, 1); return err }},
		"Delete": {opKVDelete, func(b *Bucket) error { return b.Delete("k") }},
		"Keys":   {opKVKeys, func(b *Bucket) error { _, err := b.Keys(""); return err }},
	}
	for name, c := range calls {
		t.Run(name+"/host error", func(t *testing.T) {
			hostErr := &Error{Op: opName(c.op), Code: Conflict, Message: "stale"}
			host := &fakeHost{err: hostErr}
			if err := c.call(&Bucket{name: "b", host: host.call}); err != hostErr {
				t.Fatalf("%s error = %v, want the host's %v", name, err, hostErr)
			}
		})
		t.Run(name+"/malformed reply", func(t *testing.T) {
			host := &fakeHost{reply: []byte{0x80, 0x80}}
			err := c.call(&Bucket{name: "b", host: host.call})
			var e *Error
			if !errors.As(err, &e) || e.Code != Invalid || e.Op != opName(c.op) {
				t.Fatalf("%s error = %v, want %s: invalid", name, err, opName(c.op))
			}
		})
	}
}

func TestBucketNegativeTTL(t *testing.T) {
	host := &fakeHost{reply: encodeValues(1)}
	b := &Bucket{name: "b", host: host.call}
	if _, err := b.PutTTL("k", nil, -time.Second); !errors.Is(err, ErrInvalid) {
		t.Errorf("PutTTL(-1s) error = %v, want ErrInvalid", err)
	}
	if _, err := b.Create("k", nil, -time.Nanosecond); !errors.Is(err, ErrInvalid) {
		t.Errorf("Create(-1ns) error = %v, want ErrInvalid", err)
	}
	if len(host.calls) != 0 {
		t.Errorf("negative ttl made %d host calls, want 0", len(host.calls))
	}
}

func TestSecret(t *testing.T) {
	host := &fakeHost{reply: encodeValues("s3cr3t")}
	v, err := secret(host.call, "MAILER_KEY")
	if err != nil || v != "s3cr3t" {
		t.Fatalf("secret(MAILER_KEY) = %q, %v, want s3cr3t, nil", v, err)
	}
	host.check(t, opSecretGet, "b", "MAILER_KEY")

	host = &fakeHost{err: &Error{Op: "secret.get", Code: Denied}}
	if _, err := secret(host.call, "OTHER"); !errors.Is(err, ErrDenied) {
		t.Errorf("secret(OTHER) error = %v, want ErrDenied", err)
	}
	host = &fakeHost{reply: encodeValues("a", "b")}
	if _, err := secret(host.call, "X"); !errors.Is(err, ErrInvalid) {
		t.Errorf("secret(X) with two values error = %v, want ErrInvalid", err)
	}
}
