package cloudevent

import (
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode"
)

func header(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i < len(kv); i += 2 {
		h.Add(kv[i], kv[i+1])
	}
	return h
}

func required(extra ...string) http.Header {
	return header(append([]string{"ce-id", "1", "ce-source", "/orders", "ce-type", "orders.created", "ce-specversion", "1.0"}, extra...)...)
}

func TestFromHeaderAccepts(t *testing.T) {
	e, err := FromHeader(required("ce-time", "2026-12-07T06:00:00Z", "ce-subject", "order%2042%20%C3%A9", "Content-Type", "application/json",
		"ce-traceparent", "00-abc", "ce-dataschema", "https://example.test/s.json"), []byte(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	want := &Event{ID: "1", Source: "/orders", SpecVersion: "1.0", Type: "orders.created", Time: "2026-12-07T06:00:00Z",
		Subject: "order 42 é", DataContentType: "application/json", DataSchema: "https://example.test/s.json",
		Extensions: map[string]string{"traceparent": "00-abc"}, Data: []byte(`{}`)}
	if !reflect.DeepEqual(e, want) {
		t.Fatalf("got %+v\nwant %+v", e, want)
	}
	h := e.Header()
	if h.Get("Ce-Subject") != "order 42 é" || h.Get("Content-Type") != "application/json" || h.Get("Ce-Traceparent") != "00-abc" {
		t.Fatalf("header %v", h)
	}
}

func TestFromHeaderRefuses(t *testing.T) {
	for name, h := range map[string]http.Header{
		"no id":               header("ce-source", "/s", "ce-type", "t", "ce-specversion", "1.0"),
		"no source":           header("ce-id", "1", "ce-type", "t", "ce-specversion", "1.0"),
		"no type":             header("ce-id", "1", "ce-source", "/s", "ce-specversion", "1.0"),
		"no specversion":      header("ce-id", "1", "ce-source", "/s", "ce-type", "t"),
		"specversion 0.3":     header("ce-id", "1", "ce-source", "/s", "ce-type", "t", "ce-specversion", "0.3"),
		"twice":               required("ce-id", "2"),
		"empty subject":       required("ce-subject", ""),
		"bad time":            required("ce-time", "yesterday"),
		"bad percent":         required("ce-subject", "a%2"),
		"bad hex":             required("ce-subject", "a%zz"),
		"invalid utf-8":       required("ce-subject", "a%C3%28"),
		"raw invalid utf-8":   required("ce-subject", "a\xc3\x28"),
		"newline":             required("ce-subject", "a%0Ab"),
		"nul":                 required("ce-subject", "a%00b"),
		"escape":              required("ce-subject", "%1B[31m"),
		"c1 control":          required("ce-subject", "%C2%85"),
		"noncharacter":        required("ce-subject", "%EF%BF%BF"),
		"upper name":          required("ce-Trace_Id", "x"),
		"long name":           required("ce-abcdefghijklmnopqrstu", "x"),
		"dct as header":       required("ce-datacontenttype", "text/plain"),
		"data attr":           required("ce-data", "x"),
		"relative dataschema": required("ce-dataschema", "s.json"),
		"bad content type":    required("Content-Type", "not a type;;"),
		"two content types":   required("Content-Type", "text/plain", "Content-Type", "text/html"),
		"oversized":           required("ce-subject", strings.Repeat("a", MaxValue+1)),
		"empty name":          required("ce-", "x"),
		"bad source":          required("ce-source", "%25zz%3A//"),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := FromHeader(h, nil); !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
		})
	}
	many := required()
	for i := range MaxExtensions + 1 {
		many.Set("ce-x"+string(rune('a'+i%26))+string(rune('a'+i/26)), "v")
	}
	if _, err := FromHeader(many, nil); !errors.Is(err, ErrInvalid) {
		t.Fatalf("too many extensions: %v", err)
	}
}

func TestIsEvent(t *testing.T) {
	if IsEvent(header("Content-Type", "text/plain", "Cei", "x")) {
		t.Fatal("no ce- header, yet an event")
	}
	if !IsEvent(header("CE-ID", "1")) {
		t.Fatal("a ce- header, yet not an event")
	}
}

func TestEncodeDecode(t *testing.T) {
	for _, v := range []string{"plain", "with space", `quote " and % percent`, "é ü 日本", "tab\tless"} {
		enc := Encode(v)
		for i := 0; i < len(enc); i++ {
			if c := enc[i]; c <= ' ' || c >= 0x7f || c == '"' {
				t.Fatalf("Encode(%q) = %q holds %q", v, enc, c)
			}
		}
		got, err := Decode(enc)
		if err != nil || got != v {
			t.Fatalf("Decode(Encode(%q)) = %q, %v", v, got, err)
		}
	}
}

// FuzzFromHeader checks that no header value panics the reader, that what
// it accepts carries no control character to the function, and that an
// accepted event sent again on the wire reads back the same.
func FuzzFromHeader(f *testing.F) {
	for _, s := range []string{"x", "a%20b", "%C3%A9", "%0A", "\xff", "%", "%%", "2026-12-07T06:00:00Z"} {
		f.Add("subject", s)
		f.Add("time", s)
		f.Add("ext1", s)
	}
	f.Fuzz(func(t *testing.T, name, value string) {
		h := required()
		h["Ce-"+name] = []string{value}
		e, err := FromHeader(h, []byte("data"))
		if err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		for k, vs := range e.Header() {
			for _, v := range vs {
				for _, r := range v {
					if unicode.IsControl(r) {
						t.Fatalf("%s carries the control character %U", k, r)
					}
				}
			}
		}
		again, err := FromHeader(e.WireHeader(), []byte("data"))
		if err != nil {
			t.Fatalf("the event's own wire form is refused: %v", err)
		}
		if !reflect.DeepEqual(e, again) {
			t.Fatalf("round trip: %+v != %+v", e, again)
		}
	})
}
