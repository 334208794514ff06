package host

import (
	"encoding/binary"
	"errors"
	"net/http"
)

// The wire of docs/hostcalls.md: uint (uvarint), bytes (uint length, then
// the bytes), headers (uint count, then name and value bytes).

// Operations, as docs/hostcalls.md numbers them.
const (
	opLog       = 1
	opKVGet     = 10
	opKVPut     = 11
	opKVCreate  = 12
	opKVUpdate  = 13
	opKVDelete  = 14
	opKVKeys    = 15
	opSecretGet = 20
	opHTTP      = 30
	opInvoke    = 40
	opPublish   = 50
	opObjInfo   = 60
	opObjList   = 61
	opObjOpen   = 62
	opObjRead   = 63
	opObjCreate = 64
	opObjWrite  = 65
	opObjCommit = 66
	opObjClose  = 67
	opObjDelete = 68
)

var errMalformed = errors.New("malformed host call request")

// maxHeaders caps the header count in one request.
const maxHeaders = 256

// decoder reads a request strictly: any error sticks, and done fails on
// trailing bytes.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errMalformed
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.err = errMalformed
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) string() string { return string(d.bytes()) }

func (d *decoder) headers() http.Header {
	n := d.uint()
	if d.err != nil {
		return nil
	}
	if n > maxHeaders || n > uint64(len(d.b)) {
		d.err = errMalformed
		return nil
	}
	h := make(http.Header, n)
	for range n {
		k, v := d.string(), d.string()
		if d.err != nil {
			return nil
		}
		h[http.CanonicalHeaderKey(k)] = append(h[http.CanonicalHeaderKey(k)], v)
	}
	return h
}

// done reports the first error, or one for bytes left over.
func (d *decoder) done() error {
	if d.err == nil && len(d.b) > 0 {
		d.err = errMalformed
	}
	return d.err
}

type encoder []byte

func (e *encoder) uint(v uint64) { *e = binary.AppendUvarint(*e, v) }

func (e *encoder) bytes(b []byte) {
	e.uint(uint64(len(b)))
	*e = append(*e, b...)
}

func (e *encoder) string(s string) {
	e.uint(uint64(len(s)))
	*e = append(*e, s...)
}

func (e *encoder) headers(h http.Header) {
	n := 0
	for _, vs := range h {
		n += len(vs)
	}
	e.uint(uint64(n))
	for k, vs := range h {
		for _, v := range vs {
			e.string(k)
			e.string(v)
		}
	}
}
