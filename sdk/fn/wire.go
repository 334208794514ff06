package fn

import (
	"encoding/binary"
	"errors"
	"strconv"
)

// This file is the wire of docs/hostcalls.md: the operation numbers, the
// status codes, and the encoding of requests and replies. A uint is an
// unsigned LEB128 varint of at most 10 bytes, bytes are a uint length and
// that many bytes, and headers are a uint count and that many name/value
// pairs of bytes.

// Operation numbers of the host call "moat" "call".
const (
	opLog       uint32 = 1
	opRequest   uint32 = 2
	opKVGet     uint32 = 10
	opKVPut     uint32 = 11
	opKVCreate  uint32 = 12
	opKVUpdate  uint32 = 13
	opKVDelete  uint32 = 14
	opKVKeys    uint32 = 15
	opSecretGet uint32 = 20
	opHTTPDo    uint32 = 30
	opFnInvoke  uint32 = 40
	opPublish   uint32 = 50
	opObjInfo   uint32 = 60
	opObjList   uint32 = 61
	opObjOpen   uint32 = 62
	opObjRead   uint32 = 63
	opObjCreate uint32 = 64
	opObjWrite  uint32 = 65
	opObjCommit uint32 = 66
	opObjClose  uint32 = 67
	opObjDelete uint32 = 68
)

// opName returns the name docs/hostcalls.md gives op, such as "kv.get".
func opName(op uint32) string {
	switch op {
	case opLog:
		return "log"
	case opRequest:
		return "request"
	case opKVGet:
		return "kv.get"
	case opKVPut:
		return "kv.put"
	case opKVCreate:
		return "kv.create"
	case opKVUpdate:
		return "kv.update"
	case opKVDelete:
		return "kv.delete"
	case opKVKeys:
		return "kv.keys"
	case opSecretGet:
		return "secret.get"
	case opHTTPDo:
		return "http.do"
	case opFnInvoke:
		return "fn.invoke"
	case opPublish:
		return "event.publish"
	case opObjInfo:
		return "obj.info"
	case opObjList:
		return "obj.list"
	case opObjOpen:
		return "obj.open"
	case opObjRead:
		return "obj.read"
	case opObjCreate:
		return "obj.create"
	case opObjWrite:
		return "obj.write"
	case opObjCommit:
		return "obj.commit"
	case opObjClose:
		return "obj.close"
	case opObjDelete:
		return "obj.delete"
	}
	return "op " + strconv.FormatUint(uint64(op), 10)
}

// Code is the status of a failed host call. The host never reports 0, which
// means success; programs branch on the code, never on an error's message.
type Code uint32

// The status codes of docs/hostcalls.md, and NotOnMoat.
const (
	Denied      Code = 1 // no grant covers the call; it was recorded as a security event
	NotFound    Code = 2 // no such key or secret
	Conflict    Code = 3 // the key exists (Create) or the revision is stale (Update)
	Invalid     Code = 4 // the request is malformed or breaks a rule, or the reply did not decode
	TooLarge    Code = 5 // a value, reply or response is over its cap
	Unavailable Code = 6 // the store or the network failed; the call may be retried
	Timeout     Code = 7 // the call ran out of the invocation's time

	// NotOnMoat reports that the program is not running on Moat: it was
	// built for another target than wasip1, as when its tests run on a
	// developer's machine. The host never sends it.
	NotOnMoat Code = 1<<32 - 1
)

// String returns the code's name, such as "not found".
func (c Code) String() string {
	switch c {
	case Denied:
		return "denied"
	case NotFound:
		return "not found"
	case Conflict:
		return "conflict"
	case Invalid:
		return "invalid"
	case TooLarge:
		return "too large"
	case Unavailable:
		return "unavailable"
	case Timeout:
		return "timeout"
	case NotOnMoat:
		return "not on moat"
	}
	return "status " + strconv.FormatUint(uint64(c), 10)
}

// field is one name/value pair of a headers value.
type field struct{ name, value string }

func appendUint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

func appendBytes(b, p []byte) []byte {
	return append(appendUint(b, uint64(len(p))), p...)
}

func appendString(b []byte, s string) []byte {
	return append(appendUint(b, uint64(len(s))), s...)
}

func appendFields(b []byte, fs []field) []byte {
	b = appendUint(b, uint64(len(fs)))
	for _, f := range fs {
		b = appendString(b, f.name)
		b = appendString(b, f.value)
	}
	return b
}

// Errors of a decoder. Each makes the whole value undecodable.
var (
	errTruncated = errors.New("truncated")
	errOverlong  = errors.New("overlong varint")
	errPastEnd   = errors.New("length past end")
	errTrailing  = errors.New("trailing bytes")
)

// decoder reads values from b. The first error sticks: later reads return
// zero values, and err (or finish) reports it.
//
// Decoding is strict, so that a value decodes only from the bytes that encode
// it: a varint must be minimal and at most 10 bytes, a length or count must
// fit in what is left, and finish refuses trailing bytes.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.err = errTruncated
		return 0
	case n < 0:
		d.err = errOverlong // more than 10 bytes, or more than 64 bits
		return 0
	case n > 1 && d.b[n-1] == 0:
		d.err = errOverlong // not minimal: a final byte of zero adds nothing
		return 0
	}
	d.b = d.b[n:]
	return v
}

// bytes returns the next bytes value. It aliases the decoder's input, with
// its capacity cut to its length.
func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errPastEnd
		return nil
	}
	p := d.b[:n:n]
	d.b = d.b[n:]
	return p
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) fields() []field {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b))/2 { // each pair takes at least two bytes
		d.err = errPastEnd
		return nil
	}
	fs := make([]field, 0, n)
	for range n {
		f := field{name: d.string(), value: d.string()}
		if d.err != nil {
			return nil
		}
		fs = append(fs, f)
	}
	return fs
}

// finish reports the first error, or errTrailing if input is left.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = errTrailing
	}
	return d.err
}

// The decoders of replies. Each decodes the whole reply or fails.

func decodeEmpty(reply []byte) error {
	d := decoder{b: reply}
	return d.finish()
}

func decodeRevision(reply []byte) (uint64, error) {
	d := decoder{b: reply}
	rev := d.uint()
	return rev, d.finish()
}

func decodeValue(reply []byte) (value []byte, revision uint64, err error) {
	d := decoder{b: reply}
	value, revision = d.bytes(), d.uint()
	if err := d.finish(); err != nil {
		return nil, 0, err
	}
	return value, revision, nil
}

func decodeKeys(reply []byte) ([]string, error) {
	d := decoder{b: reply}
	n := d.uint()
	if d.err == nil && n > uint64(len(d.b)) { // each key takes at least a byte
		d.err = errPastEnd
	}
	var keys []string
	if d.err == nil {
		keys = make([]string, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		keys = append(keys, d.string())
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return keys, nil
}

func decodeString(reply []byte) (string, error) {
	d := decoder{b: reply}
	s := d.string()
	return s, d.finish()
}

// errStatus reports an HTTP status outside 100..999.
var errStatus = errors.New("status out of range")

// reply is the decoded reply of http.do and fn.invoke.
type reply struct {
	status uint64
	header []field
	body   []byte
}

func decodeReply(b []byte) (reply, error) {
	d := decoder{b: b}
	r := reply{status: d.uint(), header: d.fields(), body: d.bytes()}
	if err := d.finish(); err != nil {
		return reply{}, err
	}
	if r.status < 100 || r.status > 999 {
		return reply{}, errStatus
	}
	return r, nil
}

// malformed returns the error for a reply to op that did not decode.
func malformed(op uint32, err error) error {
	return &Error{Op: opName(op), Code: Invalid, Message: "malformed reply: " + err.Error()}
}
