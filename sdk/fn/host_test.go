package fn

import (
	"bytes"
	"reflect"
	"testing"
)

// fakeHost stands in for the host: it records each call and answers every
// one with reply and err.
type fakeHost struct {
	calls []hostCall
	reply []byte
	err   error
}

type hostCall struct {
	op  uint32
	req []byte
}

func (h *fakeHost) call(op uint32, req []byte) ([]byte, error) {
	h.calls = append(h.calls, hostCall{op, bytes.Clone(req)})
	return h.reply, h.err
}

// check fails t unless exactly one call was made, as op, with a request
// that decodes by shape to want.
func (h *fakeHost) check(t testing.TB, op uint32, shape string, want ...any) {
	t.Helper()
	if len(h.calls) != 1 {
		t.Fatalf("%d host calls, want 1", len(h.calls))
	}
	c := h.calls[0]
	if c.op != op {
		t.Fatalf("host call op = %s, want %s", opName(c.op), opName(op))
	}
	got := mustDecode(t, shape, c.req)
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s request = %#v, want %#v", opName(op), got, want)
	}
}
