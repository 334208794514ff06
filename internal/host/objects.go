package host

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"

	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/objstore"
	"github.com/moatfn/moat/internal/sandbox"
)

// Object host calls stream: a read or a write is a handle that the guest
// feeds or drains a piece at a time, so that an object larger than the
// guest's memory (or the 16 MiB request cap) passes through. Handles belong
// to one invocation and are closed when it ends: a write never committed
// keeps nothing.

// Caps of the object calls.
const (
	MaxObjectHandles = 16      // open at once in one invocation
	MaxObjectRead    = 1 << 20 // bytes one obj.read returns
)

// errAbandoned ends a write the guest never committed.
var errAbandoned = errors.New("object write abandoned")

// objHandle is an object being read or written.
type objHandle struct {
	bucket, name string
	r            io.ReadCloser // reading

	w    *io.PipeWriter // writing: the guest's bytes go to a Put reading the other end
	done chan struct{}  // closed when that Put has returned
	info *objstore.Info
	err  error
}

// objects is one invocation's open handles.
type objects struct {
	mu      sync.Mutex
	next    uint64
	handles map[uint64]*objHandle
}

func (o *objects) add(hd *objHandle) (uint64, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.handles) >= MaxObjectHandles {
		return 0, statusErr(sandbox.StatusTooLarge, "more than %d objects open at once: close some", MaxObjectHandles)
	}
	if o.handles == nil {
		o.handles = map[uint64]*objHandle{}
	}
	o.next++
	o.handles[o.next] = hd
	return o.next, nil
}

func (o *objects) get(id uint64) *objHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.handles[id]
}

func (o *objects) remove(id uint64) *objHandle {
	o.mu.Lock()
	defer o.mu.Unlock()
	hd := o.handles[id]
	delete(o.handles, id)
	return hd
}

// close ends hd: a read is closed, a write not committed is abandoned and
// waited for, so that nothing of it is kept.
func (hd *objHandle) close() {
	if hd.r != nil {
		hd.r.Close()
		return
	}
	hd.w.CloseWithError(errAbandoned)
	<-hd.done
}

// Close ends what the invocation left open: reads are closed and writes
// never committed are discarded. The pipeline calls it when the run ends.
func (inv *Invocation) Close() {
	inv.objs.mu.Lock()
	hs := inv.objs.handles
	inv.objs.handles = nil
	inv.objs.mu.Unlock()
	for _, hd := range hs {
		hd.close()
	}
}

// objCapabilities names each object operation as denials and errors show it.
var objCapabilities = map[uint32]string{
	opObjInfo: "obj.info", opObjList: "obj.list", opObjOpen: "obj.open", opObjRead: "obj.read",
	opObjCreate: "obj.create", opObjWrite: "obj.write", opObjCommit: "obj.commit", opObjClose: "obj.close",
	opObjDelete: "obj.delete",
}

func (h *Host) objects(ctx context.Context, inv *Invocation, op uint32, d *decoder) ([]byte, error) {
	capability := objCapabilities[op]
	switch op {
	case opObjRead, opObjWrite, opObjCommit, opObjClose:
		return h.objHandleCall(ctx, inv, op, capability, d)
	}
	bucket, name := d.string(), d.string()
	var contentType string
	if op == opObjCreate {
		contentType = d.string()
	}
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	if !manifest.ValidName(bucket) {
		return nil, statusErr(sandbox.StatusInvalid, "%s: %q is not a bucket name", capability, truncate(bucket, 80))
	}
	access := inv.Perms.Objects[bucket]
	need := "read"
	if op == opObjCreate || op == opObjDelete {
		need = "write"
	}
	if err := h.allowed(ctx, inv, capability, "object bucket", bucket, access, need); err != nil {
		return nil, err
	}
	if h.cfg.Objects == nil {
		return nil, statusErr(sandbox.StatusUnavailable, "object buckets are not available on this node")
	}
	h.used(inv, "objects:"+bucket+":"+access)
	var e encoder
	var err error
	switch op {
	case opObjInfo:
		var info *objstore.Info
		if info, err = h.cfg.Objects.Info(ctx, bucket, name); err == nil {
			e.objInfo(info)
		}
	case opObjList:
		var infos []objstore.Info
		if infos, err = h.cfg.Objects.List(ctx, bucket, name); err == nil {
			e.uint(uint64(len(infos)))
			for i := range infos {
				e.objInfo(&infos[i])
			}
		}
	case opObjOpen:
		var obj *objstore.Object
		if obj, err = h.cfg.Objects.Get(ctx, bucket, name); err == nil {
			id, aerr := inv.objs.add(&objHandle{bucket: bucket, name: name, r: obj.ReadCloser})
			if aerr != nil {
				obj.Close()
				return nil, aerr
			}
			e.uint(id)
			e.objInfo(&obj.Info)
		}
	case opObjCreate:
		return h.objCreate(ctx, inv, capability, bucket, name, contentType)
	case opObjDelete:
		err = h.cfg.Objects.Delete(ctx, bucket, name)
	}
	if err != nil {
		return nil, storeErr(ctx, capability, err)
	}
	return e, nil
}

// objCreate begins a write: a Put reading what obj.write feeds it, which
// replaces the object only once obj.commit ends it.
func (h *Host) objCreate(ctx context.Context, inv *Invocation, capability, bucket, name, contentType string) ([]byte, error) {
	if err := objstore.CheckName(name); err != nil {
		return nil, storeErr(ctx, capability, err)
	}
	if _, err := objstore.CheckContentType(contentType); err != nil {
		return nil, storeErr(ctx, capability, err)
	}
	pr, pw := io.Pipe()
	hd := &objHandle{bucket: bucket, name: name, w: pw, done: make(chan struct{})}
	id, err := inv.objs.add(hd)
	if err != nil {
		return nil, err
	}
	// An invocation out of time ends its writes even before Close.
	stop := context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		defer close(hd.done)
		defer stop()
		hd.info, hd.err = h.cfg.Objects.Put(ctx, bucket, name, contentType, pr, 0)
		if hd.err != nil {
			pr.CloseWithError(hd.err) // a write still blocked learns why
		} else {
			pr.Close()
		}
		if hd.err != nil && !errors.Is(hd.err, errAbandoned) && !errors.Is(hd.err, objstore.ErrTooLarge) && ctx.Err() == nil {
			h.log.WarnContext(ctx, "object write failed", slog.String("fn", inv.Function),
				slog.String("bucket", bucket), slog.String("invocation_id", inv.ID), slog.Any("err", hd.err))
		}
	}()
	var e encoder
	e.uint(id)
	return e, nil
}

func (h *Host) objHandleCall(ctx context.Context, inv *Invocation, op uint32, capability string, d *decoder) ([]byte, error) {
	id := d.uint()
	var max uint64
	var data []byte
	switch op {
	case opObjRead:
		max = d.uint()
	case opObjWrite:
		data = d.bytes()
	}
	if err := d.done(); err != nil {
		return nil, invalid(err)
	}
	hd := inv.objs.get(id)
	if hd == nil {
		return nil, statusErr(sandbox.StatusInvalid, "%s: no open object %d", capability, id)
	}
	var e encoder
	switch op {
	case opObjRead:
		if hd.r == nil {
			return nil, statusErr(sandbox.StatusInvalid, "%s: object %d is open for writing", capability, id)
		}
		buf := make([]byte, min(max, MaxObjectRead))
		n, err := io.ReadFull(hd.r, buf)
		eof := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !eof {
			if errors.Is(err, objstore.ErrCorrupt) {
				h.log.ErrorContext(ctx, "stored object does not open", slog.String("fn", inv.Function),
					slog.String("bucket", hd.bucket), slog.String("invocation_id", inv.ID), slog.Any("err", err))
			}
			return nil, storeErr(ctx, capability, err)
		}
		e.bytes(buf[:n])
		e.uint(boolUint(eof))
	case opObjWrite:
		if hd.w == nil {
			return nil, statusErr(sandbox.StatusInvalid, "%s: object %d is open for reading", capability, id)
		}
		if _, err := hd.w.Write(data); err != nil {
			inv.objs.remove(id)
			hd.close()
			return nil, storeErr(ctx, capability, err)
		}
	case opObjCommit:
		if hd.w == nil {
			return nil, statusErr(sandbox.StatusInvalid, "%s: object %d is open for reading", capability, id)
		}
		inv.objs.remove(id)
		hd.w.Close()
		<-hd.done
		if hd.err != nil {
			return nil, storeErr(ctx, capability, hd.err)
		}
		e.objInfo(hd.info)
	case opObjClose:
		inv.objs.remove(id)
		hd.close()
	}
	return e, nil
}

func boolUint(b bool) uint64 {
	if b {
		return 1
	}
	return 0
}

// objInfo encodes an object's description: name, size, digest, content
// type and modification time in Unix milliseconds.
func (e *encoder) objInfo(info *objstore.Info) {
	e.string(info.Name)
	e.uint(uint64(max(info.Size, 0)))
	e.string(info.Digest)
	e.string(info.ContentType)
	e.uint(uint64(max(info.Modified.UnixMilli(), 0)))
}
