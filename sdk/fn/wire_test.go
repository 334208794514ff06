package fn

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"reflect"
	"testing"
)

// A shape names a sequence of wire values, one letter each: u a uint
// (uint64), b a bytes (string), h a headers ([]field). Tests decode the
// requests the SDK sends by shape, and build the replies it reads.

func encodeValues(vs ...any) []byte {
	var b []byte
	for _, v := range vs {
		switch v := v.(type) {
		case uint64:
			b = appendUint(b, v)
		case int:
			b = appendUint(b, uint64(v))
		case string:
			b = appendString(b, v)
		case []byte:
			b = appendBytes(b, v)
		case []field:
			b = appendFields(b, v)
		default:
			panic(fmt.Sprintf("encodeValues: %T", v))
		}
	}
	return b
}

func decodeShape(shape string, b []byte) ([]any, error) {
	d := decoder{b: b}
	var vs []any
	for _, c := range shape {
		switch c {
		case 'u':
			vs = append(vs, d.uint())
		case 'b':
			vs = append(vs, d.string())
		case 'h':
			vs = append(vs, d.fields())
		default:
			return nil, fmt.Errorf("shape letter %q", c)
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return vs, nil
}

// mustDecode decodes b by shape or fails the test.
func mustDecode(t testing.TB, shape string, b []byte) []any {
	t.Helper()
	vs, err := decodeShape(shape, b)
	if err != nil {
		t.Fatalf("decode %q of %x: %v", shape, b, err)
	}
	return vs
}

func TestWireRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		shape string
		vals  []any
		want  []byte // nil: not checked
	}{
		{"zero", "u", []any{uint64(0)}, []byte{0}},
		{"one byte max", "u", []any{uint64(127)}, []byte{0x7f}},
		{"two bytes", "u", []any{uint64(128)}, []byte{0x80, 0x01}},
		{"300", "u", []any{uint64(300)}, []byte{0xac, 0x02}},
		{"max uint64", "u", []any{uint64(math.MaxUint64)}, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
		{"empty bytes", "b", []any{""}, []byte{0}},
		{"bytes", "b", []any{"hi"}, []byte{2, 'h', 'i'}},
		{"utf-8", "b", []any{"héllo ☃"}, nil},
		{"no headers", "h", []any{[]field{}}, []byte{0}},
		{"headers", "h", []any{[]field{{"A", "1"}, {"A", "2"}, {"", ""}}}, []byte{3, 1, 'A', 1, '1', 1, 'A', 1, '2', 0, 0}},
		{"log request", "ubh", []any{uint64(2), "disk low", []field{{"free", "3%"}}}, nil},
		{"http reply", "uhb", []any{uint64(200), []field{{"Content-Type", "text/plain"}}, "ok"}, nil},
		{"long bytes", "b", []any{string(bytes.Repeat([]byte{'x'}, 300))}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := encodeValues(tt.vals...)
			if tt.want != nil && !bytes.Equal(b, tt.want) {
				t.Fatalf("encode(%v) = %x, want %x", tt.vals, b, tt.want)
			}
			got, err := decodeShape(tt.shape, b)
			if err != nil {
				t.Fatalf("decode(%x): %v", b, err)
			}
			if !reflect.DeepEqual(got, tt.vals) {
				t.Fatalf("decode(%x) = %#v, want %#v", b, got, tt.vals)
			}
		})
	}
}

func TestDecodeMalformed(t *testing.T) {
	tests := []struct {
		name  string
		shape string
		in    []byte
		want  error
	}{
		{"empty uint", "u", nil, errTruncated},
		{"unfinished varint", "u", []byte{0x80}, errTruncated},
		{"unfinished long varint", "u", []byte{0xff, 0xff, 0xff}, errTruncated},
		{"overlong zero", "u", []byte{0x80, 0x00}, errOverlong},
		{"overlong one", "u", []byte{0x81, 0x80, 0x00}, errOverlong},
		{"eleven bytes", "u", []byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01}, errOverlong},
		{"over 64 bits", "u", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}, errOverlong},
		{"trailing after uint", "u", []byte{1, 0}, errTrailing},
		{"trailing after bytes", "b", []byte{1, 'a', 'b'}, errTrailing},
		{"nothing expected", "", []byte{0}, errTrailing},
		{"bytes past end", "b", []byte{3, 'a', 'b'}, errPastEnd},
		{"bytes huge length", "b", []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}, errPastEnd},
		{"bytes no length", "b", nil, errTruncated},
		{"bytes overlong length", "b", []byte{0x81, 0x00, 'a'}, errOverlong},
		{"headers count past end", "h", []byte{3, 1, 'a', 1, 'b'}, errPastEnd},
		{"headers second pair missing", "h", []byte{2, 1, 'a', 1, 'b'}, errTruncated},
		{"headers huge count", "h", []byte{0xff, 0xff, 0xff, 0xff, 0x0f}, errPastEnd},
		{"headers value missing", "h", []byte{1, 1, 'a'}, errTruncated},
		{"headers value truncated", "h", []byte{1, 1, 'a', 2, 'b'}, errPastEnd},
		{"second value missing", "ub", []byte{5}, errTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			vs, err := decodeShape(tt.shape, tt.in)
			if !errors.Is(err, tt.want) {
				t.Fatalf("decode %q of %x = %v, %v, want error %v", tt.shape, tt.in, vs, err, tt.want)
			}
		})
	}
}

func TestDecodeReplies(t *testing.T) {
	t.Run("value", func(t *testing.T) {
		v, rev, err := decodeValue(encodeValues("v1", 7))
		if err != nil || string(v) != "v1" || rev != 7 {
			t.Fatalf("decodeValue = %q, %d, %v, want v1, 7, nil", v, rev, err)
		}
		if cap(v) != len(v) {
			t.Errorf("decodeValue: cap %d, want %d: an append could write over the reply", cap(v), len(v))
		}
		if _, _, err := decodeValue(encodeValues("v1")); !errors.Is(err, errTruncated) {
			t.Errorf("decodeValue(no revision) error = %v, want %v", err, errTruncated)
		}
	})
	t.Run("revision", func(t *testing.T) {
		if rev, err := decodeRevision(encodeValues(uint64(1) << 40)); err != nil || rev != 1<<40 {
			t.Fatalf("decodeRevision = %d, %v, want %d, nil", rev, err, uint64(1)<<40)
		}
		if _, err := decodeRevision(encodeValues(1, 2)); !errors.Is(err, errTrailing) {
			t.Errorf("decodeRevision(two uints) error = %v, want %v", err, errTrailing)
		}
	})
	t.Run("empty", func(t *testing.T) {
		if err := decodeEmpty(nil); err != nil {
			t.Fatalf("decodeEmpty(nil) = %v", err)
		}
		if err := decodeEmpty([]byte{0}); !errors.Is(err, errTrailing) {
			t.Errorf("decodeEmpty(00) = %v, want %v", err, errTrailing)
		}
	})
	t.Run("keys", func(t *testing.T) {
		keys, err := decodeKeys(encodeValues(3, "a", "b/c", ""))
		if err != nil || !reflect.DeepEqual(keys, []string{"a", "b/c", ""}) {
			t.Fatalf("decodeKeys = %q, %v", keys, err)
		}
		keys, err = decodeKeys(encodeValues(0))
		if err != nil || keys == nil || len(keys) != 0 {
			t.Fatalf("decodeKeys(0) = %#v, %v, want empty non-nil", keys, err)
		}
		if _, err := decodeKeys(encodeValues(2, "a")); !errors.Is(err, errTruncated) {
			t.Errorf("decodeKeys(count 2, one key) error = %v, want %v", err, errTruncated)
		}
		if _, err := decodeKeys(append(encodeValues(1<<40), 0, 0)); !errors.Is(err, errPastEnd) {
			t.Errorf("decodeKeys(huge count) error = %v, want %v", err, errPastEnd)
		}
	})
	t.Run("reply", func(t *testing.T) {
		r, err := decodeReply(encodeValues(404, []field{{"X", "1"}}, "gone"))
		if err != nil || r.status != 404 || !reflect.DeepEqual(r.header, []field{{"X", "1"}}) || string(r.body) != "gone" {
			t.Fatalf("decodeReply = %+v, %v", r, err)
		}
		for _, status := range []int{0, 99, 1000} {
			if _, err := decodeReply(encodeValues(status, []field{}, "")); !errors.Is(err, errStatus) {
				t.Errorf("decodeReply(status %d) error = %v, want %v", status, err, errStatus)
			}
		}
	})
}

// FuzzDecode checks that no input makes a decoder panic, and that whatever
// one accepts encodes back to the very same bytes: a value has one encoding.
func FuzzDecode(f *testing.F) {
	f.Add("u", []byte{0x80, 0x01})
	f.Add("ubh", encodeValues(1, "msg", []field{{"k", "v"}}))
	f.Add("bu", encodeValues("value", 9))
	f.Add("uhb", encodeValues(200, []field{{"A", "1"}, {"A", "2"}}, "body"))
	f.Add("ubbb", encodeValues(3, "a", "bb", "ccc"))
	f.Add("u", []byte{0x80, 0x00})
	f.Add("h", []byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, shape string, b []byte) {
		if len(shape) > 32 {
			return
		}
		if vs, err := decodeShape(shape, b); err == nil {
			if again := encodeValues(vs...); !bytes.Equal(again, b) {
				t.Fatalf("decode %q of %x = %v, which encodes to %x", shape, b, vs, again)
			}
		}
		if err := decodeEmpty(b); err == nil && len(b) != 0 {
			t.Fatalf("decodeEmpty(%x) accepted bytes", b)
		}
		if rev, err := decodeRevision(b); err == nil {
			checkEncoding(t, "decodeRevision", b, rev)
		}
		if v, rev, err := decodeValue(b); err == nil {
			checkEncoding(t, "decodeValue", b, v, rev)
		}
		if s, err := decodeString(b); err == nil {
			checkEncoding(t, "decodeString", b, s)
		}
		if keys, err := decodeKeys(b); err == nil {
			vs := []any{len(keys)}
			for _, k := range keys {
				vs = append(vs, k)
			}
			checkEncoding(t, "decodeKeys", b, vs...)
		}
		if r, err := decodeReply(b); err == nil {
			checkEncoding(t, "decodeReply", b, r.status, r.header, r.body)
		}
	})
}

func checkEncoding(t *testing.T, name string, b []byte, vs ...any) {
	t.Helper()
	if again := encodeValues(vs...); !bytes.Equal(again, b) {
		t.Fatalf("%s(%x) = %v, which encodes to %x", name, b, vs, again)
	}
}
