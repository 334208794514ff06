// Package cloudevent reads, checks and writes CloudEvents 1.0 in the HTTP
// binding's binary mode: attributes in ce-* headers, data as the body.
//
// Every event Moat delivers, and every one it accepts over HTTP, passes
// Check: the required attributes are there, names and values follow the
// specification, values are percent-decoded as the HTTP binding says and
// must then be valid UTF-8 without control characters. A function is
// handed the decoded values, so an attribute can carry no line break, NUL
// or escape sequence into its environment or its logs.
package cloudevent

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/textproto"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// SpecVersion is the only version Moat speaks.
const SpecVersion = "1.0"

// Bounds on what one event may carry besides its data.
const (
	MaxValue      = 4096 // bytes of one attribute's value, decoded
	MaxExtensions = 32
	MaxName       = 20 // the specification's bound on attribute names
)

// Event is a CloudEvent. Time is kept as written (RFC 3339); "" is absent.
type Event struct {
	ID              string            `json:"id"`
	Source          string            `json:"source"`
	SpecVersion     string            `json:"specversion"`
	Type            string            `json:"type"`
	DataContentType string            `json:"datacontenttype,omitempty"`
	DataSchema      string            `json:"dataschema,omitempty"`
	Subject         string            `json:"subject,omitempty"`
	Time            string            `json:"time,omitempty"`
	Extensions      map[string]string `json:"extensions,omitempty"`
	Data            []byte            `json:"data,omitempty"`
}

// ErrInvalid reports an event that does not follow the specification.
var ErrInvalid = errors.New("invalid CloudEvent")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// headerPrefix is the canonical spelling of the binary mode's prefix.
const headerPrefix = "Ce-"

// IsEvent reports whether h carries any ce-* header: a request that claims
// to be a CloudEvent in binary mode, which must then pass FromHeader.
func IsEvent(h http.Header) bool {
	for k := range h {
		if hasPrefixFold(k, headerPrefix) {
			return true
		}
	}
	return false
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}

// FromHeader reads the event of a binary-mode request: its attributes from
// the ce-* headers (percent-decoded), its datacontenttype from
// Content-Type, its data from body. A header given twice, a value that
// does not decode to valid text, and an event Check refuses are
// ErrInvalid.
func FromHeader(h http.Header, body []byte) (*Event, error) {
	e := &Event{Data: body}
	for k, vs := range h {
		if !hasPrefixFold(k, headerPrefix) {
			continue
		}
		name := strings.ToLower(k[len(headerPrefix):])
		if len(vs) != 1 {
			return nil, invalid("ce-%s is given %d times", name, len(vs))
		}
		v, err := Decode(vs[0])
		if err != nil {
			return nil, invalid("ce-%s: %v", name, err)
		}
		if v == "" {
			return nil, invalid("ce-%s is empty", name)
		}
		if err := e.set(name, v); err != nil {
			return nil, err
		}
	}
	if ct := h.Values("Content-Type"); len(ct) > 0 {
		if len(ct) > 1 {
			return nil, invalid("Content-Type is given %d times", len(ct))
		}
		e.DataContentType = ct[0]
	}
	if err := e.Check(); err != nil {
		return nil, err
	}
	return e, nil
}

// set gives attribute name the value v.
func (e *Event) set(name, v string) error {
	if err := checkName(name); err != nil {
		return err
	}
	switch name {
	case "id":
		e.ID = v
	case "source":
		e.Source = v
	case "specversion":
		e.SpecVersion = v
	case "type":
		e.Type = v
	case "datacontenttype":
		// In binary mode it is Content-Type, never a ce- header.
		return invalid("datacontenttype travels as Content-Type, not as ce-datacontenttype")
	case "dataschema":
		e.DataSchema = v
	case "subject":
		e.Subject = v
	case "time":
		e.Time = v
	case "data", "data_base64":
		return invalid("%s is not an attribute", name)
	default:
		if e.Extensions == nil {
			e.Extensions = map[string]string{}
		}
		e.Extensions[name] = v
	}
	return nil
}

// checkName applies the specification's grammar of attribute names:
// lowercase ASCII letters and digits, at most 20 of them.
func checkName(name string) error {
	if name == "" || len(name) > MaxName {
		return invalid("attribute name %q: want 1 to %d characters", truncate(name, 40), MaxName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9') {
			return invalid("attribute name %q: only a-z and 0-9", truncate(name, 40))
		}
	}
	return nil
}

// Check reports whether e follows the specification: id, source, type and
// specversion 1.0 present; every value text without control characters
// and within MaxValue; source and dataschema URI references (dataschema
// absolute); time RFC 3339; datacontenttype a media type.
func (e *Event) Check() error {
	for _, a := range []struct{ name, v string }{{"id", e.ID}, {"source", e.Source}, {"type", e.Type}, {"specversion", e.SpecVersion}} {
		if a.v == "" {
			return invalid("%s is required", a.name)
		}
	}
	if e.SpecVersion != SpecVersion {
		return invalid("specversion %q: Moat speaks %s", truncate(e.SpecVersion, 40), SpecVersion)
	}
	if len(e.Extensions) > MaxExtensions {
		return invalid("%d extension attributes: at most %d", len(e.Extensions), MaxExtensions)
	}
	for name, v := range e.attributes() {
		if err := checkValue(v); err != nil {
			return invalid("%s: %v", name, err)
		}
	}
	for name := range e.Extensions {
		if err := checkName(name); err != nil {
			return err
		}
		switch name {
		case "id", "source", "specversion", "type", "datacontenttype", "dataschema", "subject", "time", "data", "data_base64":
			return invalid("extension %q is a core attribute's name", name)
		}
	}
	if _, err := url.Parse(e.Source); err != nil {
		return invalid("source is not a URI reference")
	}
	if e.DataSchema != "" {
		if u, err := url.Parse(e.DataSchema); err != nil || !u.IsAbs() {
			return invalid("dataschema is not an absolute URI")
		}
	}
	if e.Time != "" {
		if _, err := time.Parse(time.RFC3339Nano, e.Time); err != nil {
			return invalid("time %q is not an RFC 3339 timestamp", truncate(e.Time, 40))
		}
	}
	if e.DataContentType != "" {
		if _, _, err := mime.ParseMediaType(e.DataContentType); err != nil {
			return invalid("datacontenttype %q is not a media type", truncate(e.DataContentType, 40))
		}
	}
	return nil
}

// attributes returns every attribute set, by name, datacontenttype included.
func (e *Event) attributes() map[string]string {
	out := make(map[string]string, 8+len(e.Extensions))
	for k, v := range e.Extensions {
		out[k] = v
	}
	for k, v := range map[string]string{
		"id": e.ID, "source": e.Source, "specversion": e.SpecVersion, "type": e.Type,
		"datacontenttype": e.DataContentType, "dataschema": e.DataSchema, "subject": e.Subject, "time": e.Time,
	} {
		if v != "" {
			out[k] = v
		}
	}
	return out
}

// checkValue applies the specification's String type: any Unicode text
// but control characters, surrogates and noncharacters.
func checkValue(v string) error {
	if len(v) > MaxValue {
		return fmt.Errorf("value of %d bytes: at most %d", len(v), MaxValue)
	}
	if !utf8.ValidString(v) {
		return errors.New("value is not valid UTF-8")
	}
	for _, r := range v {
		switch {
		case r < 0x20, 0x7f <= r && r <= 0x9f:
			return fmt.Errorf("value holds the control character %U", r)
		case 0xfdd0 <= r && r <= 0xfdef, r&0xfffe == 0xfffe:
			return fmt.Errorf("value holds the noncharacter %U", r)
		}
	}
	return nil
}

// Decode percent-decodes a header value as the HTTP binding says (%XX,
// nothing else: url.PathUnescape leaves '+' alone) and requires the result
// to be valid UTF-8.
func Decode(s string) (string, error) {
	out, err := url.PathUnescape(s)
	if err != nil {
		return "", errors.New("malformed percent-encoding")
	}
	if !utf8.ValidString(out) {
		return "", errors.New("value does not decode to valid UTF-8")
	}
	return out, nil
}

// Encode percent-encodes a value for a ce-* header: space, '"', '%' and
// every byte outside printable ASCII.
func Encode(v string) string {
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c <= ' ' || c >= 0x7f || c == '"' || c == '%' {
			fmt.Fprintf(&b, "%%%02X", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Header returns e's attributes as binary-mode headers, as the function
// sees them: ce-* with the decoded values (Check has made them safe) and
// Content-Type.
func (e *Event) Header() http.Header {
	h := make(http.Header, 8+len(e.Extensions))
	for name, v := range e.attributes() {
		if name == "datacontenttype" {
			h["Content-Type"] = []string{v}
			continue
		}
		h[textproto.CanonicalMIMEHeaderKey(headerPrefix+name)] = []string{v}
	}
	return h
}

// WireHeader is Header with the values percent-encoded, for sending the
// event over HTTP.
func (e *Event) WireHeader() http.Header {
	h := e.Header()
	for k, vs := range h {
		if hasPrefixFold(k, headerPrefix) {
			h[k] = []string{Encode(vs[0])}
		}
	}
	return h
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}
