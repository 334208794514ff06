// Package objstore keeps the object buckets that functions reach through
// their grants (permissions.objects) and operators through the control API.
// Each bucket is a JetStream object store; every object is sealed with
// AES-256-GCM under the bucket's own data key as it streams in, in segments,
// so no object is ever held whole in memory and the store's files hold no
// plaintext.
//
// # Sealed format
//
// An object is stored as
//
//	magic "moatobj1" (8) | object id (16 random bytes) | segment...
//	segment: final flag (1: 0 more, 1 last) | seal.Seal(plaintext of at most SegmentSize)
//
// Every segment but the last holds exactly SegmentSize bytes of plaintext;
// the last holds the rest (possibly none) and is always there. Each segment
// is authenticated with the bucket, the object's name, its id, its index and
// its flag, so a segment cannot be moved to another object, another place in
// the same object or another name, a stream cut short after a segment
// fails (no final flag), and bytes after the last one are refused.
//
// Names are not encrypted (they are subjects in the store) and are data: a
// name is 1 to MaxName bytes of UTF-8 without control or format characters,
// made of '/'-separated parts none of which is empty, "." or "..", and holds
// no backslash, so that no name reads as a path that leaves its prefix.
package objstore

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"mime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/seal"
	"github.com/moatfn/moat/internal/store"
)

// Limits of names and listings.
const (
	MaxName        = manifest.MaxObjectName // bytes of an object's name
	MaxList        = 10000
	MaxContentType = 200
	SegmentSize    = 64 << 10 // plaintext bytes per sealed segment
)

// Defaults of the node's caps.
const (
	DefaultMaxObject = 64 << 20 // bytes of one object
	DefaultMaxBucket = 1 << 30  // bytes of one bucket, as stored
)

// bucketPrefix names the JetStream object stores of functions.
const bucketPrefix = "fnobj_"

const magic = "moatobj1"

// jsStoreFailed is the server's error code for a message its stream's
// limits refuse ("maximum bytes exceeded": the bucket is full).
const jsStoreFailed jetstream.ErrorCode = 10077

// Metadata keys of an object's plaintext description.
const (
	metaSize   = "moat-size"
	metaDigest = "moat-sha256"
	metaType   = "moat-type"
)

// Errors a caller maps to statuses.
var (
	ErrNotFound = errors.New("no such object")
	ErrInvalid  = errors.New("invalid object name")
	ErrTooLarge = errors.New("too large")
	ErrCorrupt  = errors.New("stored object does not open")
)

// Info describes an object.
type Info struct {
	Bucket      string    `json:"bucket"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	Digest      string    `json:"digest"` // "sha-256:" and the hex digest of the plaintext
	ContentType string    `json:"content_type"`
	Modified    time.Time `json:"modified"`
}

// Limits caps what a Store keeps.
type Limits struct {
	Object int64 // bytes of one object's plaintext; 0 is DefaultMaxObject
	Bucket int64 // bytes one bucket stores; 0 is DefaultMaxBucket
}

// Store is every object bucket of a node. It is safe for concurrent use.
type Store struct {
	st     *store.Store
	keys   *seal.DataKeys
	limits Limits

	mu      sync.Mutex
	buckets map[string]jetstream.ObjectStore
}

// New returns a Store over st whose objects are sealed with keys.
func New(st *store.Store, keys *seal.DataKeys, l Limits) *Store {
	if l.Object <= 0 {
		l.Object = DefaultMaxObject
	}
	if l.Bucket <= 0 {
		l.Bucket = DefaultMaxBucket
	}
	return &Store{st: st, keys: keys, limits: l, buckets: map[string]jetstream.ObjectStore{}}
}

// MaxObject is the node's cap on one object.
func (s *Store) MaxObject() int64 { return s.limits.Object }

// Stream is the JetStream stream holding bucket, for consumers of its
// changes (object triggers).
func Stream(bucket string) string { return "OBJ_" + bucketPrefix + bucket }

// MetaSubjects is the filter of the stream's descriptions: one message per
// put or delete.
func MetaSubjects(bucket string) string { return "$O." + bucketPrefix + bucket + ".M.>" }

func scope(bucket string) string { return "obj/" + bucket }

// Ensure creates bucket when it does not exist yet, with its data key, and
// keeps its cap current.
func (s *Store) Ensure(ctx context.Context, bucket string) error {
	s.mu.Lock()
	delete(s.buckets, bucket)
	s.mu.Unlock()
	if _, err := s.bucket(ctx, bucket, true); err != nil {
		return err
	}
	_, err := s.keys.Sealer(ctx, scope(bucket))
	return err
}

func (s *Store) bucket(ctx context.Context, name string, create bool) (jetstream.ObjectStore, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b, ok := s.buckets[name]; ok {
		return b, nil
	}
	var b jetstream.ObjectStore
	var err error
	if create {
		b, err = s.st.ObjectsCapped(ctx, bucketPrefix+name, s.limits.Bucket)
	} else {
		b, err = s.st.JS.ObjectStore(ctx, bucketPrefix+name)
		if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			return nil, fmt.Errorf("bucket %s does not exist: %w", name, ErrNotFound)
		}
	}
	if err != nil {
		return nil, err
	}
	s.buckets[name] = b
	return b, nil
}

// Buckets lists the object buckets that exist.
func (s *Store) Buckets(ctx context.Context) ([]string, error) {
	return store.Prefixed(s.st.JS.ObjectStoreNames(ctx), bucketPrefix)
}

// CheckName explains why name cannot name an object (the rules of
// manifest.CheckObjectName), or returns nil.
func CheckName(name string) error {
	if err := manifest.CheckObjectName(name); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// checkPrefix accepts "" or the beginning of a valid name.
func checkPrefix(p string) error {
	if err := manifest.CheckObjectPrefix(p); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	return nil
}

// CheckContentType returns the media type to keep for ct: "" is
// application/octet-stream; anything mime cannot parse is refused.
func CheckContentType(ct string) (string, error) {
	if ct == "" {
		return "application/octet-stream", nil
	}
	if len(ct) > MaxContentType {
		return "", fmt.Errorf("%w: content type longer than %d bytes", ErrInvalid, MaxContentType)
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		return "", fmt.Errorf("%w: content type %q: %v", ErrInvalid, ct, err)
	}
	return mime.FormatMediaType(mt, params), nil
}

// Put stores what r yields under name, replacing any object of that name
// once the whole of it is stored (readers never see half an object). More
// than max bytes (0: the node's cap; never above it) fails with ErrTooLarge
// and keeps nothing of it.
func (s *Store) Put(ctx context.Context, bucket, name, contentType string, r io.Reader, max int64) (*Info, error) {
	b, err := s.named(ctx, bucket, name)
	if err != nil {
		return nil, err
	}
	ct, err := CheckContentType(contentType)
	if err != nil {
		return nil, err
	}
	if max <= 0 || max > s.limits.Object {
		max = s.limits.Object
	}
	sl, err := s.keys.Sealer(ctx, scope(bucket))
	if err != nil {
		return nil, err
	}
	enc := newSealing(sl, bucket, name, r, max)
	meta := jetstream.ObjectMeta{Name: name}
	oi, err := b.Put(ctx, meta, enc)
	if err != nil {
		if enc.err != nil {
			return nil, enc.err
		}
		if apiErr := (*jetstream.APIError)(nil); errors.As(err, &apiErr) && apiErr.ErrorCode == jsStoreFailed {
			return nil, fmt.Errorf("%w: bucket %s is full", ErrTooLarge, bucket)
		}
		return nil, err
	}
	info := &Info{Bucket: bucket, Name: name, Size: enc.n, Digest: "sha-256:" + hex.EncodeToString(enc.sum.Sum(nil)),
		ContentType: ct, Modified: oi.ModTime.UTC()}
	// The plaintext's description goes into the object's metadata in a
	// second step: the object store takes metadata before it reads the body.
	meta.Metadata = map[string]string{metaSize: strconv.FormatInt(info.Size, 10), metaDigest: info.Digest, metaType: ct}
	if err := b.UpdateMeta(ctx, name, meta); err != nil {
		return nil, fmt.Errorf("describe %s: %w", name, err)
	}
	return info, nil
}

// named checks name and opens bucket for it.
func (s *Store) named(ctx context.Context, bucket, name string) (jetstream.ObjectStore, error) {
	if err := CheckName(name); err != nil {
		return nil, err
	}
	return s.bucket(ctx, bucket, false)
}

// Info describes the object called name.
func (s *Store) Info(ctx context.Context, bucket, name string) (*Info, error) {
	b, err := s.named(ctx, bucket, name)
	if err != nil {
		return nil, err
	}
	oi, err := b.GetInfo(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return describe(bucket, oi), nil
}

func describe(bucket string, oi *jetstream.ObjectInfo) *Info {
	size, _ := strconv.ParseInt(oi.Metadata[metaSize], 10, 64)
	return &Info{Bucket: bucket, Name: oi.Name, Size: size, Digest: oi.Metadata[metaDigest],
		ContentType: oi.Metadata[metaType], Modified: oi.ModTime.UTC()}
}

// DescribeMeta reads a description message of the object store's stream
// (written per put, description update or delete; the stream keeps the
// latest per name) as Info, with deleted telling a delete. ok is false for
// a message that is no object's description, or for the first step of a
// put, whose description follows it.
func DescribeMeta(bucket string, data []byte) (info *Info, deleted, ok bool) {
	oi, err := parseMeta(data)
	if err != nil || CheckName(oi.Name) != nil {
		return nil, false, false
	}
	if !oi.Deleted && oi.Metadata[metaDigest] == "" {
		return nil, false, false
	}
	return describe(bucket, oi), oi.Deleted, true
}

// Object is an object being read: its description and its plaintext.
type Object struct {
	Info
	io.ReadCloser
}

// Get opens the object called name for reading. The plaintext streams out
// as it is opened; a segment that does not authenticate ends the read with
// ErrCorrupt.
func (s *Store) Get(ctx context.Context, bucket, name string) (*Object, error) {
	b, err := s.named(ctx, bucket, name)
	if err != nil {
		return nil, err
	}
	sl, err := s.keys.Sealer(ctx, scope(bucket))
	if err != nil {
		return nil, err
	}
	res, err := b.Get(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	oi, err := res.Info()
	if err != nil {
		res.Close()
		return nil, err
	}
	return &Object{Info: *describe(bucket, oi), ReadCloser: newOpening(sl, aadBase(bucket, name), res)}, nil
}

// Delete removes the object called name; an absent one is not an error.
func (s *Store) Delete(ctx context.Context, bucket, name string) error {
	b, err := s.named(ctx, bucket, name)
	if err != nil {
		return err
	}
	err = b.Delete(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil
	}
	return err
}

// List describes the objects whose names start with prefix, sorted by
// name; more than MaxList is ErrTooLarge.
func (s *Store) List(ctx context.Context, bucket, prefix string) ([]Info, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	b, err := s.bucket(ctx, bucket, false)
	if err != nil {
		return nil, err
	}
	all, err := b.List(ctx)
	if errors.Is(err, jetstream.ErrNoObjectsFound) {
		return []Info{}, nil
	}
	if err != nil {
		return nil, err
	}
	out := []Info{}
	for _, oi := range all {
		if !strings.HasPrefix(oi.Name, prefix) || oi.Metadata[metaDigest] == "" {
			continue // another prefix, or a put not yet described
		}
		if len(out) == MaxList {
			return nil, fmt.Errorf("%w: more than %d objects start with %q", ErrTooLarge, MaxList, prefix)
		}
		out = append(out, *describe(bucket, oi))
	}
	slices.SortFunc(out, func(a, b Info) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// aadBase is what every segment of an object is bound to besides its id,
// index and flag.
func aadBase(bucket, name string) []byte {
	return []byte(scope(bucket) + "\x00" + name + "\x00")
}

func segmentAAD(base, id []byte, index uint64, final byte) []byte {
	a := make([]byte, 0, len(base)+len(id)+10)
	a = append(a, base...)
	a = append(a, id...)
	a = binary.BigEndian.AppendUint64(a, index)
	return append(a, final)
}

// sealing reads plaintext from src and yields the sealed format.
type sealing struct {
	sl   *seal.Sealer
	base []byte
	id   []byte
	src  *bufio.Reader
	max  int64

	n     int64
	sum   hash.Hash
	index uint64
	out   bytes.Buffer
	buf   []byte
	done  bool
	err   error // why the plaintext was refused (too large, a read error)
}

func newSealing(sl *seal.Sealer, bucket, name string, src io.Reader, max int64) *sealing {
	id := make([]byte, 16)
	rand.Read(id)
	s := &sealing{sl: sl, base: aadBase(bucket, name), id: id, src: bufio.NewReaderSize(src, 4096), max: max,
		sum: sha256.New(), buf: make([]byte, SegmentSize)}
	s.out.WriteString(magic)
	s.out.Write(id)
	return s
}

func (s *sealing) Read(p []byte) (int, error) {
	for s.out.Len() == 0 {
		if s.done {
			return 0, io.EOF
		}
		if s.err != nil {
			return 0, s.err
		}
		if err := s.next(); err != nil {
			s.err = err
			return 0, err
		}
	}
	return s.out.Read(p)
}

// next seals the next segment; it is the last when the plaintext ends
// within or right after it.
func (s *sealing) next() error {
	n, err := io.ReadFull(s.src, s.buf)
	final := byte(0)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		final = 1
	case err != nil:
		return fmt.Errorf("reading the object: %w", err)
	default:
		if _, err := s.src.Peek(1); err == io.EOF {
			final = 1
		} else if err != nil {
			return fmt.Errorf("reading the object: %w", err)
		}
	}
	seg := s.buf[:n]
	s.n += int64(n)
	if s.n > s.max {
		return fmt.Errorf("%w: object is more than %d bytes", ErrTooLarge, s.max)
	}
	s.sum.Write(seg)
	s.out.WriteByte(final)
	s.out.Write(s.sl.Seal(seg, segmentAAD(s.base, s.id, s.index, final)))
	s.index++
	s.done = final == 1
	return nil
}

// opening reads the sealed format from src and yields the plaintext.
type opening struct {
	sl    *seal.Sealer
	aad   []byte
	src   *bufio.Reader
	close io.Closer
	id    []byte
	index uint64
	plain []byte
	done  bool
	err   error
}

func newOpening(sl *seal.Sealer, aad []byte, src io.ReadCloser) *opening {
	return &opening{sl: sl, aad: aad, src: bufio.NewReaderSize(src, 4096), close: src}
}

const sealedSegment = seal.SealOverhead + SegmentSize

func (o *opening) Read(p []byte) (int, error) {
	for len(o.plain) == 0 {
		if o.err != nil {
			return 0, o.err
		}
		if o.done {
			return 0, io.EOF
		}
		if err := o.next(); err != nil {
			o.err = err
			return 0, err
		}
	}
	n := copy(p, o.plain)
	o.plain = o.plain[n:]
	return n, nil
}

func (o *opening) next() error {
	if o.id == nil {
		head := make([]byte, len(magic)+16)
		if _, err := io.ReadFull(o.src, head); err != nil || string(head[:len(magic)]) != magic {
			return fmt.Errorf("%w: no header", ErrCorrupt)
		}
		o.id = head[len(magic):]
	}
	final, err := o.src.ReadByte()
	if err == io.EOF {
		return fmt.Errorf("%w: cut short after segment %d", ErrCorrupt, o.index)
	}
	if err != nil {
		return err
	}
	var sealed []byte
	switch final {
	case 0:
		sealed = make([]byte, sealedSegment)
		if _, err := io.ReadFull(o.src, sealed); err != nil {
			return fmt.Errorf("%w: segment %d is short and not the last", ErrCorrupt, o.index)
		}
	case 1:
		sealed, err = io.ReadAll(io.LimitReader(o.src, sealedSegment))
		if err != nil {
			return err
		}
		if _, err := o.src.Peek(1); err != io.EOF {
			return fmt.Errorf("%w: bytes after the last segment", ErrCorrupt)
		}
	default:
		return fmt.Errorf("%w: segment %d has flag %d", ErrCorrupt, o.index, final)
	}
	plain, err := o.sl.Open(sealed, segmentAAD(o.aad, o.id, o.index, final))
	if err != nil {
		return fmt.Errorf("%w: segment %d: %v", ErrCorrupt, o.index, err)
	}
	o.index++
	o.plain = plain
	o.done = final == 1
	return nil
}

func (o *opening) Close() error { return o.close.Close() }

// parseMeta reads an object store description message.
func parseMeta(data []byte) (*jetstream.ObjectInfo, error) {
	var oi jetstream.ObjectInfo
	if err := json.Unmarshal(data, &oi); err != nil {
		return nil, err
	}
	return &oi, nil
}
