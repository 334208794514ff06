// Command caps is a test guest that exercises every host capability through
// the SDK, one per path, and answers what happened as JSON.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cgi"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"github.com/moatfn/moat/sdk/fn"
)

type result struct {
	OK     bool              `json:"ok"`
	Code   uint32            `json:"code,omitempty"`
	Err    string            `json:"err,omitempty"`
	Value  string            `json:"value,omitempty"`
	Rev    uint64            `json:"rev,omitempty"`
	Keys   []string          `json:"keys,omitempty"`
	Status int               `json:"status,omitempty"`
	Header map[string]string `json:"header,omitempty"`
	Env    []string          `json:"env,omitempty"`
	Digest string            `json:"digest,omitempty"` // of what the guest read, computed by it
	Size   int64             `json:"size,omitempty"`   // of what the guest read
	Infos  []fn.ObjectInfo   `json:"infos,omitempty"`
}

func (r *result) fail(err error) {
	r.OK = false
	r.Err = err.Error()
	var e *fn.Error
	if errors.As(err, &e) {
		r.Code = uint32(e.Code)
	}
}

//go:wasmimport moat call
func rawCall(op, ptr, size uint32) uint64

//go:wasmimport moat take
func rawTake(ptr, size uint32) int32

// seen is what the guest records of each delivery of an event, in the KV
// bucket "seen" under the event's id.
type seen struct {
	Count   int               `json:"count"`
	User    string            `json:"user"`
	Trigger string            `json:"trigger"`
	Remote  string            `json:"remote"`
	Method  string            `json:"method"`
	Type    string            `json:"type"`
	Source  string            `json:"source"`
	Subject string            `json:"subject"`
	CT      string            `json:"ct"`
	Data    string            `json:"data"`
	Ext     map[string]string `json:"ext,omitempty"`
	Time    string            `json:"time,omitempty"`
	Version string            `json:"version,omitempty"` // $V`
	Start   int64             `json:"start,omitempty"`   // unix ms of the last delivery's start
	End     int64             `json:"end,omitempty"`     // and of its end, when TICK_SLEEP is set
}

// event handles a delivered event as its data says: {"mode": "ok"},
// "fail" (500), "reject" (422), "failonce" (500 on the first delivery),
// "sleep" (ms milliseconds, then 200).
func event(w http.ResponseWriter, r *http.Request) {
	ev, ok := fn.ReadEvent(r)
	if !ok {
		http.Error(w, "no event", http.StatusBadRequest)
		return
	}
	data, _ := io.ReadAll(r.Body)
	var cmd struct {
		Mode string `json:"mode"`
		MS   int    `json:"ms"`
	}
	json.NewDecoder(bytes.NewReader(data)).Decode(&cmd) // the first value: what follows may be anything
	b := fn.KV("seen")
	// An object's events are also counted under its name, which a test
	// knows before the event's id.
	key := ev.ID
	if fn.Trigger() == "object" || ev.Source != "" && strings.HasPrefix(ev.Source, "/objects/") {
		key = "object:" + ev.Subject
	}
	var rec seen
	for range 20 {
		v, rev, err := b.Get(key)
		rec = seen{}
		if err == nil {
			json.Unmarshal(v, &rec)
		}
		rec.Count++
		rec.User, rec.Trigger, rec.Remote, rec.Method = os.Getenv("REMOTE_USER"), fn.Trigger(), os.Getenv("REMOTE_ADDR"), r.Method
		rec.Type, rec.Source, rec.Subject, rec.CT, rec.Data, rec.Ext = ev.Type, ev.Source, ev.Subject, ev.DataContentType, string(data), ev.Extensions
		rec.Time, rec.Start, rec.End, rec.Version = ev.Time, time.Now().UnixMilli(), 0, os.Getenv("V")
		nv, _ := json.Marshal(rec)
		if errors.Is(err, fn.ErrNotFound) {
			_, err = b.Create(key, nv, 0)
		} else if err == nil {
			_, err = b.Update(key, nv, rev)
		}
		if err == nil {
			break
		}
	}
	if os.Getenv("FORCE_OK") != "" {
		return // the fixed version: every event is handled
	}
	// A schedule's tick: TICK_SLEEP long, then the end recorded; 500 with
	// TICK_FAIL.
	if d, err := time.ParseDuration(os.Getenv("TICK_SLEEP")); err == nil && fn.Trigger() == "schedule" {
		time.Sleep(d)
		rec.End = time.Now().UnixMilli()
		nv, _ := json.Marshal(rec)
		b.Put(key, nv)
	}
	// An object's event: OBJECT_SLEEP long (to be killed under).
	if d, err := time.ParseDuration(os.Getenv("OBJECT_SLEEP")); err == nil && fn.Trigger() == "object" {
		time.Sleep(d)
	}
	if os.Getenv("TICK_FAIL") != "" {
		http.Error(w, "tick failing on purpose", http.StatusInternalServerError)
		return
	}
	switch cmd.Mode {
	case "fail":
		http.Error(w, "failing on purpose", http.StatusInternalServerError)
	case "reject":
		http.Error(w, "not for me", http.StatusUnprocessableEntity)
	case "failonce":
		if rec.Count == 1 {
			http.Error(w, "failing once", http.StatusInternalServerError)
			return
		}
	case "sleep":
		time.Sleep(time.Duration(cmd.MS) * time.Millisecond)
	}
}

func handle(w http.ResponseWriter, r *http.Request) {
	if t := fn.Trigger(); t == "queue" || t == "replay" || t == "schedule" || t == "object" {
		event(w, r)
		return
	}
	q := r.URL.Query()
	res := &result{OK: true}
	b := fn.KV(q.Get("b"))
	ttl, _ := time.ParseDuration(q.Get("ttl"))
	var err error
	switch r.URL.Path {
	case "/kv/get":
		var v []byte
		v, res.Rev, err = b.Get(q.Get("k"))
		res.Value = string(v)
	case "/kv/put":
		if ttl > 0 {
			res.Rev, err = b.PutTTL(q.Get("k"), []byte(q.Get("v")), ttl)
		} else {
			res.Rev, err = b.Put(q.Get("k"), []byte(q.Get("v")))
		}
	case "/kv/create":
		res.Rev, err = b.Create(q.Get("k"), []byte(q.Get("v")), ttl)
	case "/kv/update":
		rev, _ := strconv.ParseUint(q.Get("rev"), 10, 64)
		res.Rev, err = b.Update(q.Get("k"), []byte(q.Get("v")), rev)
	case "/kv/delete":
		err = b.Delete(q.Get("k"))
	case "/kv/keys":
		res.Keys, err = b.Keys(q.Get("prefix"))
	case "/secret":
		res.Value, err = fn.Secret(q.Get("name"))
	case "/secret/log":
		// A careless function: it logs the secret it read, both ways.
		var v string
		v, err = fn.Secret(q.Get("name"))
		fmt.Fprintf(os.Stderr, "using key %s now\n", v)
		fn.Logger().Info("mail sent", "key", v, "to", "carole@example.com")
	case "/env":
		res.Env = os.Environ()
	case "/http":
		var resp *http.Response
		resp, err = fn.HTTPClient().Get(q.Get("url"))
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			res.Status, res.Value = resp.StatusCode, string(body)
		}
	case "/invoke":
		var resp *http.Response
		resp, err = fn.Call(q.Get("fn"), r.Method, q.Get("path"), []byte(q.Get("body")), http.Header{"Content-Type": {"application/json"}})
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			res.Status, res.Value = resp.StatusCode, string(body)
		}
	case "/loop":
		// n host calls of one kind, for benchmarks of the host-call cost.
		count, _ := strconv.Atoi(q.Get("n"))
		for i := 0; i < count && err == nil; i++ {
			switch q.Get("op") {
			case "kvget":
				_, _, err = b.Get(q.Get("k"))
			case "secret":
				_, err = fn.Secret(q.Get("name"))
			case "nop":
				rawCall(9999, 0, 0)
				rawTake(0, 0)
			}
		}
	case "/obj/put", "/obj/get", "/obj/info", "/obj/list", "/obj/delete", "/obj/abandon", "/obj/abort", "/obj/leak", "/obj/copy":
		err = objects(r.URL.Path, q, res)
	case "/publish":
		body := []byte(q.Get("body"))
		if n, e := strconv.Atoi(q.Get("size")); e == nil {
			body = bytes.Repeat([]byte("x"), n)
		}
		res.Value, err = fn.Publish(q.Get("subject"), q.Get("type"), "application/json", body)
	case "/seen":
		var v []byte
		v, _, err = fn.KV("seen").Get(q.Get("id"))
		res.Value = string(v)
	case "/whoami":
		res.Value = os.Getenv("REMOTE_USER")
	case "/log":
		fn.Logger().Warn("structured", "n", 42, "who", "carole smith")
		fmt.Fprintln(os.Stderr, "plain line")
	case "/raw":
		// Hostile host calls: pointers and lengths outside memory.
		op, _ := strconv.ParseUint(q.Get("op"), 10, 32)
		ptr, _ := strconv.ParseUint(q.Get("ptr"), 10, 32)
		n, _ := strconv.ParseUint(q.Get("len"), 10, 32)
		ret := rawCall(uint32(op), uint32(ptr), uint32(n))
		res.Code, res.Rev = uint32(ret>>32), uint64(uint32(ret))
		var took int32
		if q.Get("takeptr") != "" {
			tp, _ := strconv.ParseUint(q.Get("takeptr"), 10, 32)
			took = rawTake(uint32(tp), 1<<20)
		} else {
			buf := make([]byte, 16)
			took = rawTake(uint32(uintptr(unsafe.Pointer(&buf[0]))), 16)
		}
		res.Status = int(took)
	case "/raw/garbage":
		// A well-formed pointer to bytes that do not decode.
		junk := []byte(strings.Repeat("\xff", 20))
		ret := rawCall(10, uint32(uintptr(unsafe.Pointer(&junk[0]))), uint32(len(junk)))
		res.Code = uint32(ret >> 32)
	default:
		http.NotFound(w, r)
		return
	}
	if err != nil {
		res.fail(err)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(res)
}

// pattern yields n bytes of a pattern the tests recompute.
func pattern(n int) io.Reader {
	return io.LimitReader(patternReader{}, int64(n))
}

type patternReader struct{}

var patternBlock = func() []byte {
	b := make([]byte, 4096)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}()

func (patternReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		n += copy(p[n:], patternBlock)
	}
	return n, nil
}

// objects exercises object buckets: q names the bucket (b), the object
// (name), a content type (ct), a size of pattern bytes to write (n) or a
// value (v), a prefix and a copy's destination (to).
func objects(path string, q url.Values, res *result) error {
	b := fn.Objects(q.Get("b"))
	name := q.Get("name")
	size, _ := strconv.Atoi(q.Get("n"))
	content := func() io.Reader {
		if q.Has("v") {
			return strings.NewReader(q.Get("v"))
		}
		return pattern(size)
	}
	info := func(i fn.ObjectInfo) { res.Infos = []fn.ObjectInfo{i} }
	switch path {
	case "/obj/put":
		i, err := b.Put(name, q.Get("ct"), content())
		if err != nil {
			return err
		}
		info(i)
	case "/obj/get":
		r, err := b.Open(name)
		if err != nil {
			return err
		}
		defer r.Close()
		h := sha256.New()
		var keep bytes.Buffer
		n, err := io.Copy(io.MultiWriter(h, &limitedBuffer{&keep, 4096}), r)
		if err != nil {
			return err
		}
		res.Size, res.Digest = n, "sha-256:"+hex.EncodeToString(h.Sum(nil))
		if n <= 4096 {
			res.Value = keep.String()
		}
		info(r.Info)
	case "/obj/info":
		i, err := b.Info(name)
		if err != nil {
			return err
		}
		info(i)
	case "/obj/list":
		infos, err := b.List(q.Get("prefix"))
		if err != nil {
			return err
		}
		res.Infos = infos
		res.Size = int64(len(infos))
	case "/obj/delete":
		return b.Delete(name)
	case "/obj/abandon":
		// Written but never closed: the invocation's end must discard it.
		w, err := b.Create(name, q.Get("ct"))
		if err != nil {
			return err
		}
		_, err = io.Copy(w, content())
		return err
	case "/obj/abort":
		w, err := b.Create(name, q.Get("ct"))
		if err != nil {
			return err
		}
		if _, err := io.Copy(w, content()); err != nil {
			return err
		}
		return w.Abort()
	case "/obj/leak":
		// Opens without closing until the host refuses.
		for i := range 100 {
			var err error
			if q.Get("mode") == "write" {
				_, err = b.Create(name+strconv.Itoa(i), "")
			} else {
				_, err = b.Open(name)
			}
			if err != nil {
				res.Size = int64(i)
				return err
			}
		}
	case "/obj/copy":
		r, err := b.Open(name)
		if err != nil {
			return err
		}
		defer r.Close()
		i, err := b.Put(q.Get("to"), r.Info.ContentType, r)
		if err != nil {
			return err
		}
		info(i)
	}
	return nil
}

// limitedBuffer keeps the first max bytes written to it.
type limitedBuffer struct {
	b   *bytes.Buffer
	max int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.max - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

func main() {
	cgi.Serve(http.HandlerFunc(handle))
}
