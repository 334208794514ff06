package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"testing"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/sandbox"
)

func testHost() (*Host, *Invocation) {
	h := New(slog.New(slog.NewTextHandler(io.Discard, nil)), Config{})
	inv := &Invocation{Function: "f", Version: "v1", ID: "inv", Perms: &manifest.Permissions{
		KV: map[string]string{"b": "read-write", "r": "read"}, Objects: map[string]string{"o": "read-write"}, Secrets: []string{"S"},
		Egress: []string{"https://example.net/"}, Invoke: []string{"g"},
	}}
	return h, inv
}

func status(err error) uint32 {
	var he *sandbox.HostError
	if errors.As(err, &he) {
		return he.Status
	}
	return 0
}

func TestMalformedRequests(t *testing.T) {
	h, inv := testHost()
	var good encoder
	good.string("b")
	good.string("k")
	for _, c := range []struct {
		name string
		op   uint32
		req  []byte
	}{
		{"empty", opKVGet, nil},
		{"truncated", opKVGet, good[:len(good)-1]},
		{"trailing byte", opKVGet, append(append([]byte{}, good...), 0)},
		{"length past the end", opKVGet, []byte{0x05, 'b'}},
		{"overlong varint", opKVGet, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"unknown op", 9999, good},
		{"too many headers", opLog, []byte{1, 0, 0xff, 0xff, 0x03}},
		{"log level 7", opLog, []byte{7, 0, 0}},
	} {
		_, err := h.call(context.Background(), inv, c.op, c.req)
		if got := status(err); got != sandbox.StatusInvalid {
			t.Errorf("%s: status %d (%v), want invalid", c.name, got, err)
		}
	}
}

func TestDeniedWithoutGrant(t *testing.T) {
	h, inv := testHost()
	denied := 0
	h.cfg.Denied = func(fn, capability string) { denied++ }
	req := func(fields ...string) []byte {
		var e encoder
		for _, f := range fields {
			e.string(f)
		}
		return e
	}
	put := func(bucket string) []byte {
		var e encoder
		e.string(bucket)
		e.string("k")
		e.bytes([]byte("v"))
		e.uint(0)
		return e
	}
	for _, c := range []struct {
		name string
		op   uint32
		req  []byte
	}{
		{"read-only bucket, put", opKVPut, put("r")},
		{"ungranted bucket", opKVGet, req("other", "k")},
		{"ungranted secret", opSecretGet, req("T")},
		{"invalid UTF-8 secret", opSecretGet, req("\xff\xfe")},
		{"ungranted function", opInvoke, append(req("h", "GET", "/"), 0, 0)},
		{"ungranted URL", opHTTP, append(req("GET", "https://evil.example/"), 0, 0)},
	} {
		_, err := h.call(context.Background(), inv, c.op, c.req)
		if got := status(err); got != sandbox.StatusDenied {
			t.Errorf("%s: status %d (%v), want denied", c.name, got, err)
		}
	}
	if denied != 6 {
		t.Errorf("%d denials counted, want 6", denied)
	}
}

func TestCallDepth(t *testing.T) {
	h, inv := testHost()
	inv.Depth = MaxDepth
	var e encoder
	e.string("g")
	e.string("GET")
	e.string("/")
	e.headers(http.Header{})
	e.bytes(nil)
	if _, err := h.call(context.Background(), inv, opInvoke, e); status(err) != sandbox.StatusDenied {
		t.Fatalf("a call past the depth cap: %v", err)
	}
}

func TestRedact(t *testing.T) {
	inv := &Invocation{Known: map[string]string{"UP": "parent-secret"}}
	inv.read = map[string]string{"KEY": "abcd1234", "LONG": "abcd1234-and-more", "TINY": "ab"}
	got := inv.Redact([]string{"k=abcd1234 l=abcd1234-and-more ab", "from parent-secret", "clean"})
	want := []string{"k=[redacted:KEY] l=[redacted:LONG] ab", "from [redacted:UP]", "clean"}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
}

func TestLogLineQuoting(t *testing.T) {
	for in, want := range map[string]string{
		"plain":        "plain",
		"two words":    `"two words"`,
		"":             `""`,
		"a=b":          `"a=b"`,
		"line\nbreak":  `"line\nbreak"`,
		"\xff":         "\"\uFFFD\"",
		`say "hi"`:     `"say \"hi\""`,
		"日本":           "日本",
		"tab\tinside":  `"tab\tinside"`,
		"back\\slash":  `"back\\slash"`,
		"esc\x1b[31m!": `"esc\x1b[31m!"`,
	} {
		if got := logValue(in); got != want {
			t.Errorf("logValue(%q) = %s, want %s", in, got, want)
		}
	}
}

// FuzzHostCall feeds arbitrary requests to every operation: the host must
// answer each with a reply or a status, never a panic.
func FuzzHostCall(f *testing.F) {
	var e encoder
	e.string("b")
	e.string("k")
	f.Add(uint32(opKVGet), []byte(e))
	e.bytes([]byte("v"))
	e.uint(5)
	f.Add(uint32(opKVPut), []byte(e))
	f.Add(uint32(opLog), []byte{1, 2, 'h', 'i', 1, 1, 'k', 1, 'v'})
	f.Add(uint32(opHTTP), []byte{3, 'G', 'E', 'T', 20, 'h', 't', 't', 'p', 's', ':', '/', '/', 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'n', 'e', 't', '/', 0, 0})
	f.Add(uint32(opInvoke), []byte{1, 'g', 3, 'G', 'E', 'T', 1, '/', 0, 0})
	f.Add(uint32(opSecretGet), []byte{1, 'S'})
	f.Add(uint32(opPublish), []byte{1, 'a', 0, 0, 0})
	f.Add(uint32(opObjCreate), []byte{1, 'o', 1, 'n', 0})
	f.Add(uint32(opObjRead), []byte{1, 0x80, 0x80, 0x04})
	f.Add(uint32(opObjWrite), []byte{1, 1, 'x'})
	f.Fuzz(func(t *testing.T, op uint32, req []byte) {
		h, inv := testHost()
		out, err := h.call(context.Background(), inv, op%(opObjDelete+2), req) // every operation and some that are none
		if err != nil && out != nil {
			t.Fatalf("both a reply and an error")
		}
		if err != nil && status(err) == 0 {
			t.Fatalf("an error without a status: %v", err)
		}
	})
}
