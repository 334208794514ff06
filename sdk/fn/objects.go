package fn

import (
	"io"
	"time"
)

// ObjectBucket is an object bucket the function's manifest grants
// (permissions.objects): files, such as uploads, of up to the node's cap
// (64 MiB unless the operator set another). Info, List and Open need a read
// grant; Create, Put and Delete a write grant; without one a call fails
// with ErrDenied. Objects stream through the host a piece at a time, so one
// larger than the function's memory can be copied or hashed.
//
// An object's name is input like any other: 1 to 1024 bytes of UTF-8,
// parts separated by '/', none empty, "." or "..", no control or format
// characters and no backslash. A name that breaks a rule fails with
// ErrInvalid; it is never cleaned into another name.
//
// An ObjectBucket is safe for concurrent use; the readers and writers it
// returns are not.
type ObjectBucket struct {
	name string
	host caller
}

// Objects returns the object bucket called name. It does not call the host:
// a bucket that is not granted shows as ErrDenied on first use.
func Objects(name string) *ObjectBucket { return &ObjectBucket{name: name} }

// ObjectInfo describes a stored object.
type ObjectInfo struct {
	Name        string
	Size        int64     // bytes of its content
	Digest      string    // "sha-256:" and the hex SHA-256 of its content
	ContentType string    // as it was stored; application/octet-stream if none was given
	Modified    time.Time // when it was stored
}

// Info describes the object called name; ErrNotFound if there is none.
func (b *ObjectBucket) Info(name string) (ObjectInfo, error) {
	reply, err := b.host.call(opObjInfo, b.request(name))
	if err != nil {
		return ObjectInfo{}, err
	}
	d := decoder{b: reply}
	info := decodeObjInfo(&d)
	if err := d.finish(); err != nil {
		return ObjectInfo{}, malformed(opObjInfo, err)
	}
	return info, nil
}

// List describes the objects whose names begin with prefix ("" for all),
// sorted by name. More than 10,000 fail with ErrTooLarge: list a narrower
// prefix.
func (b *ObjectBucket) List(prefix string) ([]ObjectInfo, error) {
	reply, err := b.host.call(opObjList, b.request(prefix))
	if err != nil {
		return nil, err
	}
	d := decoder{b: reply}
	n := d.uint()
	if d.err == nil && n > uint64(len(d.b))/5 { // each description takes at least 5 bytes
		d.err = errPastEnd
	}
	var out []ObjectInfo
	if d.err == nil {
		out = make([]ObjectInfo, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		out = append(out, decodeObjInfo(&d))
	}
	if err := d.finish(); err != nil {
		return nil, malformed(opObjList, err)
	}
	return out, nil
}

// Open opens the object called name for reading; ErrNotFound if there is
// none. Close the reader when done (the host closes whatever the
// invocation leaves open when it ends). Content that fails its
// authentication in the store ends the read with ErrUnavailable.
func (b *ObjectBucket) Open(name string) (*ObjectReader, error) {
	reply, err := b.host.call(opObjOpen, b.request(name))
	if err != nil {
		return nil, err
	}
	d := decoder{b: reply}
	id := d.uint()
	info := decodeObjInfo(&d)
	if err := d.finish(); err != nil {
		return nil, malformed(opObjOpen, err)
	}
	return &ObjectReader{Info: info, id: id, host: b.host}, nil
}

// Get returns the whole content of the object called name. It holds all of
// it in memory: use Open for objects that may be large.
func (b *ObjectBucket) Get(name string) ([]byte, ObjectInfo, error) {
	r, err := b.Open(name)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, ObjectInfo{}, err
	}
	return data, r.Info, nil
}

// Create begins writing the object called name with the given content type
// ("" is application/octet-stream). What is written is stored only when
// Close returns nil, and then replaces any object of that name whole:
// readers never see part of it. Abort, an error, or an invocation that ends
// first keeps nothing. More than the node's cap fails with ErrTooLarge.
func (b *ObjectBucket) Create(name, contentType string) (*ObjectWriter, error) {
	req := appendString(b.request(name), contentType)
	reply, err := b.host.call(opObjCreate, req)
	if err != nil {
		return nil, err
	}
	d := decoder{b: reply}
	id := d.uint()
	if err := d.finish(); err != nil {
		return nil, malformed(opObjCreate, err)
	}
	return &ObjectWriter{id: id, host: b.host, buf: make([]byte, 0, objectChunk)}, nil
}

// Put stores what r yields as the object called name, as Create, a copy and
// Close do.
func (b *ObjectBucket) Put(name, contentType string, r io.Reader) (ObjectInfo, error) {
	w, err := b.Create(name, contentType)
	if err != nil {
		return ObjectInfo{}, err
	}
	if _, err := io.Copy(w, r); err != nil {
		w.Abort()
		return ObjectInfo{}, err
	}
	if err := w.Close(); err != nil {
		return ObjectInfo{}, err
	}
	return w.Info, nil
}

// Delete removes the object called name. Removing an absent object is not
// an error.
func (b *ObjectBucket) Delete(name string) error {
	reply, err := b.host.call(opObjDelete, b.request(name))
	if err != nil {
		return err
	}
	if err := decodeEmpty(reply); err != nil {
		return malformed(opObjDelete, err)
	}
	return nil
}

func (b *ObjectBucket) request(s string) []byte {
	return appendString(appendString(nil, b.name), s)
}

// objectChunk is how much one obj.read asks for and one obj.write sends.
const objectChunk = 256 << 10

// ObjectReader reads an object's content. It is an io.ReadCloser.
type ObjectReader struct {
	Info ObjectInfo // the object's description as it was opened

	id     uint64
	host   caller
	buf    []byte // read from the host, not yet returned
	eof    bool
	err    error
	closed bool
}

// Read reads the next bytes of the content.
func (r *ObjectReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		switch {
		case r.err != nil:
			return 0, r.err
		case r.closed:
			return 0, &Error{Op: "obj.read", Code: Invalid, Message: "reader closed"}
		case r.eof:
			return 0, io.EOF
		case len(p) == 0:
			return 0, nil
		}
		r.fill()
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

func (r *ObjectReader) fill() {
	req := appendUint(appendUint(nil, r.id), objectChunk)
	reply, err := r.host.call(opObjRead, req)
	if err != nil {
		r.err = err
		return
	}
	d := decoder{b: reply}
	data, eof := d.bytes(), d.uint()
	if err := d.finish(); err != nil || eof > 1 || len(data) > objectChunk {
		if err == nil {
			err = errTrailing
		}
		r.err = malformed(opObjRead, err)
		return
	}
	r.buf, r.eof = data, eof == 1
}

// Close ends the read. Closing twice is not an error.
func (r *ObjectReader) Close() error {
	if r.closed {
		return nil
	}
	r.closed, r.buf = true, nil
	_, err := r.host.call(opObjClose, appendUint(nil, r.id))
	return err
}

// ObjectWriter writes an object. It is an io.WriteCloser: Close stores the
// object, Abort discards it.
type ObjectWriter struct {
	// Info describes the stored object once Close has returned nil.
	Info ObjectInfo

	id   uint64
	host caller
	buf  []byte
	err  error
	done bool
}

// Write adds p to the object.
func (w *ObjectWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.done {
		return 0, &Error{Op: "obj.write", Code: Invalid, Message: "writer closed"}
	}
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), cap(w.buf)-len(w.buf))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == cap(w.buf) {
			if err := w.flush(); err != nil {
				return n - len(p), err
			}
		}
	}
	return n, nil
}

func (w *ObjectWriter) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	req := appendBytes(appendUint(nil, w.id), w.buf)
	w.buf = w.buf[:0]
	reply, err := w.host.call(opObjWrite, req)
	if err == nil {
		if err = decodeEmpty(reply); err != nil {
			err = malformed(opObjWrite, err)
		}
	}
	if err != nil {
		w.err, w.done = err, true // the host has discarded the object
	}
	return err
}

// Close stores the object and sets Info. After an error nothing is stored.
func (w *ObjectWriter) Close() error {
	if w.done {
		return w.err
	}
	if err := w.flush(); err != nil {
		return err
	}
	w.done = true
	reply, err := w.host.call(opObjCommit, appendUint(nil, w.id))
	if err != nil {
		w.err = err
		return err
	}
	d := decoder{b: reply}
	w.Info = decodeObjInfo(&d)
	if err := d.finish(); err != nil {
		w.err = malformed(opObjCommit, err)
		return w.err
	}
	return nil
}

// Abort discards what was written; nothing is stored. It is a no-op after
// Close.
func (w *ObjectWriter) Abort() error {
	if w.done {
		return nil
	}
	w.done, w.buf = true, nil
	w.err = &Error{Op: "obj.write", Code: Invalid, Message: "writer aborted"}
	_, err := w.host.call(opObjClose, appendUint(nil, w.id))
	return err
}

func decodeObjInfo(d *decoder) ObjectInfo {
	info := ObjectInfo{Name: d.string(), Size: int64(min(d.uint(), 1<<62)), Digest: d.string(), ContentType: d.string()}
	if ms := d.uint(); d.err == nil && ms <= 1<<62 {
		info.Modified = time.UnixMilli(int64(ms)).UTC()
	}
	return info
}
