package fn

import "time"

// Bucket is a KV bucket the function's manifest grants (permissions.kv).
// Reading needs a read grant, and Put, Create, Update and Delete a write
// grant; without one a call fails with ErrDenied. Keys are strings; each
// value carries a revision, which rises with every write to its key.
//
// A Bucket is safe for concurrent use.
type Bucket struct {
	name string
	host caller
}

// KV returns the bucket called name. It does not call the host: a bucket
// that is not granted shows as ErrDenied on first use.
func KV(name string) *Bucket { return &Bucket{name: name} }

// Get returns the value of key and its revision. It fails with ErrNotFound
// when the key is absent or has expired.
func (b *Bucket) Get(key string) (value []byte, revision uint64, err error) {
	reply, err := b.host.call(opKVGet, b.request(key))
	if err != nil {
		return nil, 0, err
	}
	value, revision, err = decodeValue(reply)
	if err != nil {
		return nil, 0, malformed(opKVGet, err)
	}
	return value, revision, nil
}

// Put sets key to value, with no expiry, and returns the new revision (0
// under a write-only grant, which learns nothing of what else is stored).
func (b *Bucket) Put(key string, value []byte) (revision uint64, err error) {
	return b.PutTTL(key, value, 0)
}

// PutTTL sets key to value and returns the new revision (0 under a
// write-only grant). The key expires after ttl, rounded up to a whole
// millisecond; a ttl of 0 means no expiry, and a negative one fails with
// ErrInvalid.
func (b *Bucket) PutTTL(key string, value []byte, ttl time.Duration) (revision uint64, err error) {
	return b.write(opKVPut, key, value, ttl)
}

// Create sets key to value only if the key is absent, and returns the new
// revision; it fails with ErrConflict if the key exists. The key expires
// after ttl as with PutTTL; 0 means no expiry.
func (b *Bucket) Create(key string, value []byte, ttl time.Duration) (revision uint64, err error) {
	return b.write(opKVCreate, key, value, ttl)
}

// Update sets key to value only if the key's revision is still revision, as
// returned by Get, Put, Create or an earlier Update, and returns the new
// revision. It fails with ErrConflict if another write came first, and with
// ErrNotFound if the key is absent.
func (b *Bucket) Update(key string, value []byte, revision uint64) (uint64, error) {
	req := appendBytes(b.request(key), value)
	req = appendUint(req, revision)
	return b.revision(opKVUpdate, req)
}

// Delete removes key. Removing an absent key is not an error.
func (b *Bucket) Delete(key string) error {
	reply, err := b.host.call(opKVDelete, b.request(key))
	if err != nil {
		return err
	}
	if err := decodeEmpty(reply); err != nil {
		return malformed(opKVDelete, err)
	}
	return nil
}

// Keys returns the keys that begin with prefix; "" lists them all.
func (b *Bucket) Keys(prefix string) ([]string, error) {
	reply, err := b.host.call(opKVKeys, b.request(prefix))
	if err != nil {
		return nil, err
	}
	keys, err := decodeKeys(reply)
	if err != nil {
		return nil, malformed(opKVKeys, err)
	}
	return keys, nil
}

// request begins a request on the bucket: its name, then s.
func (b *Bucket) request(s string) []byte {
	req := appendString(nil, b.name)
	return appendString(req, s)
}

func (b *Bucket) write(op uint32, key string, value []byte, ttl time.Duration) (uint64, error) {
	if ttl < 0 {
		return 0, &Error{Op: opName(op), Code: Invalid, Message: "negative ttl " + ttl.String()}
	}
	ms := ttl / time.Millisecond
	if ttl%time.Millisecond != 0 {
		ms++
	}
	req := appendBytes(b.request(key), value)
	req = appendUint(req, uint64(ms))
	return b.revision(op, req)
}

func (b *Bucket) revision(op uint32, req []byte) (uint64, error) {
	reply, err := b.host.call(op, req)
	if err != nil {
		return 0, err
	}
	rev, err := decodeRevision(reply)
	if err != nil {
		return 0, malformed(op, err)
	}
	return rev, nil
}
