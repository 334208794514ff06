package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode/utf8"
)

// appendJSON writes r as encoding/json would (same fields, order, omitempty
// and escaping), without reflection: auditing sits on every invocation.
// Signature is never written here; the hash goes last, as hash.
func appendJSON(b []byte, r *Record, hash string) []byte {
	b = append(b, `{"seq":`...)
	b = strconv.AppendUint(b, r.Seq, 10)
	b = append(b, `,"time":`...)
	b = appendTime(b, r.Time)
	b = appendField(b, "node", r.Node, false)
	b = appendField(b, "actor", r.Actor, true)
	b = appendField(b, "action", r.Action, false)
	b = appendField(b, "target", r.Target, true)
	b = appendField(b, "outcome", r.Outcome, false)
	b = appendField(b, "reason", r.Reason, true)
	b = appendField(b, "source", r.Source, true)
	b = appendField(b, "user_agent", r.UserAgent, true)
	b = appendField(b, "version", r.Version, true)
	b = appendField(b, "invocation_id", r.InvocationID, true)
	b = appendField(b, "trigger", r.Trigger, true)
	if r.Status != 0 {
		b = append(b, `,"status":`...)
		b = strconv.AppendInt(b, int64(r.Status), 10)
	}
	if r.TookMS != 0 {
		b = append(b, `,"took_ms":`...)
		b = appendFloat(b, r.TookMS)
	}
	b = appendField(b, "memory", r.Memory, true)
	b = appendField(b, "capability", r.Capability, true)
	b = appendField(b, "resource", r.Resource, true)
	if r.Repeats != 0 {
		b = append(b, `,"repeats":`...)
		b = strconv.AppendInt(b, int64(r.Repeats), 10)
	}
	b = appendField(b, "prev", r.Prev, false)
	b = appendField(b, "hash", hash, false)
	return append(b, '}')
}

// encode returns r's JSON with its hash (the SHA-256 of the JSON with an
// empty hash, and no signature) and that hash.
func encode(r Record) ([]byte, string) {
	return encodeInto(nil, &r)
}

// encodeInto appends r's JSON with its hash to dst: written once with an
// empty hash, hashed, and the hash spliced in before the closing `"}`.
func encodeInto(dst []byte, r *Record) ([]byte, string) {
	start := len(dst)
	dst = appendJSON(dst, r, "")
	sum := sha256.Sum256(dst[start:])
	dst = hex.AppendEncode(dst[:len(dst)-2], sum[:])
	dst = append(dst, '"', '}')
	return dst, string(dst[len(dst)-2-2*sha256.Size : len(dst)-2])
}

func appendField(b []byte, name, v string, omitEmpty bool) []byte {
	if omitEmpty && v == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, name...)
	b = append(b, '"', ':')
	return appendString(b, v)
}

func appendTime(b []byte, t time.Time) []byte {
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	return append(b, '"')
}

// appendFloat formats as encoding/json does.
func appendFloat(b []byte, f float64) []byte {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return append(b, '0') // json.Marshal would fail; never produced by the node
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	start := len(b)
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b) - start
		if n >= 4 && b[len(b)-4] == 'e' && b[len(b)-3] == '-' && b[len(b)-2] == '0' {
			b[len(b)-2] = b[len(b)-1]
			b = b[:len(b)-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does, HTML-safe.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
