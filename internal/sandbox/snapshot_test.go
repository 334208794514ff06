package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/cgi"
	"github.com/moatfn/moat/internal/testwasm"
)

func compileReactor(t testing.TB, r *Runtime, memory int64, env ...string) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), testwasm.Bytes(t, "reactor"), memory, env)
	if err != nil {
		t.Fatal(err)
	}
	if !m.Snapshot() {
		t.Fatal("reactor module not served from a snapshot")
	}
	return m
}

// call runs one request of the reactor and decodes its JSON answer.
func call(t testing.TB, m *Module, path string, out any) *cgi.Response {
	t.Helper()
	req := request(path)
	res, err := m.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("%s: %v (log %q)", path, err, res.Log)
	}
	resp, err := cgi.ParseResponse(res.Stdout)
	if err != nil {
		t.Fatalf("%s: %v in %q", path, err, res.Stdout)
	}
	if out != nil {
		if err := json.Unmarshal(resp.Body, out); err != nil {
			t.Fatalf("%s: %v in %q", path, err, resp.Body)
		}
	}
	return resp
}

// TestSnapshotStateDoesNotCarryOver: a package-level counter, a map, a
// slice, a sync.Map and a goroutine's own state are as init left them on
// every request, sequential or concurrent.
func TestSnapshotStateDoesNotCarryOver(t *testing.T) {
	r := newRuntime(t)
	m := compileReactor(t, r, 64<<20)
	want := map[string]any{"counter": 0.0, "seen": 0.0, "list": 0.0, "cached": false, "tick": 1.0}
	check := func() {
		var got map[string]any
		call(t, m, "/state", &got)
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s = %v, want %v (state carried over: %v)", k, got[k], v, got)
			}
		}
	}
	for range 5 {
		check()
	}
	var wg sync.WaitGroup
	for range 16 {
		wg.Add(1)
		go func() { defer wg.Done(); check() }()
	}
	wg.Wait()
	// Only the kept instances hold memories.
	if n, idle := m.snap.memory.inUse(), len(m.snap.pool.idle); n != idle {
		t.Fatalf("%d memories in use, %d instances kept", n, idle)
	}
}

// TestSnapshotReseeds: two requests draw different values from math/rand,
// math/rand/v2 and a new map's iteration order, though both start from the
// same snapshot; what init drew stays as init drew it.
func TestSnapshotReseeds(t *testing.T) {
	r := newRuntime(t)
	m := compileReactor(t, r, 64<<20)
	if len(m.snap.rngs) == 0 {
		t.Fatal("no runtime random state found in the snapshot")
	}
	type draw struct {
		V1    int64  `json:"v1"`
		V2    uint64 `json:"v2"`
		Order []int  `json:"order"`
		Init  int64  `json:"init"`
	}
	var a, b draw
	call(t, m, "/rand", &a)
	call(t, m, "/rand", &b)
	if a.V1 == b.V1 || a.V2 == b.V2 {
		t.Fatalf("two requests drew the same numbers: %+v %+v", a, b)
	}
	if a.Init != b.Init {
		t.Fatalf("init's draw changed between requests: %d %d", a.Init, b.Init)
	}
	// Map order: 8 of 64 keys in the same order twice in a row happens by
	// chance with probability 1/64 or so; five draws make it negligible.
	same := 0
	for range 5 {
		var c draw
		call(t, m, "/rand", &c)
		if orderKey(c.Order) == orderKey(a.Order) {
			same++
		}
	}
	if same == 5 {
		t.Fatalf("map iteration order never changes: %v", a.Order)
	}
}

func orderKey(v []int) string { b, _ := json.Marshal(v); return string(b) }

// TestSnapshotClock: a request reads the time of the request, and the
// monotonic clock runs on from the snapshot.
func TestSnapshotClock(t *testing.T) {
	r := newRuntime(t)
	m := compileReactor(t, r, 64<<20)
	time.Sleep(300 * time.Millisecond)
	before := time.Now()
	var got struct {
		Now   int64 `json:"now"`
		Since int64 `json:"since_init_ns"`
		Init  int64 `json:"init"`
	}
	call(t, m, "/time", &got)
	after := time.Now()
	if got.Now < before.UnixNano() || got.Now > after.UnixNano() {
		t.Fatalf("guest time %d outside the request [%d, %d]", got.Now, before.UnixNano(), after.UnixNano())
	}
	if got.Since < int64(300*time.Millisecond) {
		t.Fatalf("time since init %v, want at least the 300ms slept since the snapshot", time.Duration(got.Since))
	}
}

func TestSnapshotRequest(t *testing.T) {
	r := newRuntime(t)
	m := compileReactor(t, r, 64<<20, "GREETING=hello")
	req := request("/echo")
	req.Env = []string{"REQUEST_METHOD=POST", "PATH_INFO=/echo", "QUERY_STRING=a=1", "SERVER_PROTOCOL=HTTP/1.1",
		"SERVER_NAME=test", "SERVER_PORT=80", "HTTP_X_TEST=yes", "CONTENT_LENGTH=5", "REMOTE_USER=key:abc", "GREETING=hello"}
	req.Stdin = []byte("body!")
	// Several times: a kept instance reads each request's body and
	// variables, not its first one's.
	for i := range 4 {
		req.Env[len(req.Env)-2] = "REMOTE_USER=key:" + strconv.Itoa(i)
		req.Stdin = []byte("body" + strconv.Itoa(i))
		res, err := m.Run(context.Background(), req)
		if err != nil {
			t.Fatal(err, res.Log)
		}
		resp, err := cgi.ParseResponse(res.Stdout)
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := json.Unmarshal(resp.Body, &got); err != nil {
			t.Fatal(err, string(resp.Body))
		}
		want := map[string]string{"method": "POST", "path": "/echo", "query": "a=1", "header": "yes",
			"body": "body" + strconv.Itoa(i), "env": "hello", "remote_user": "key:" + strconv.Itoa(i)}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("request %d: %s = %q, want %q", i, k, got[k], v)
			}
		}
	}
	if len(m.snap.pool.idle) != 1 {
		t.Fatalf("%d instances kept, want 1 reused", len(m.snap.pool.idle))
	}
}

// TestSnapshotLimits: the limits hold for a reactor as for a command.
func TestSnapshotLimits(t *testing.T) {
	r := newRuntime(t)
	m := compileReactor(t, r, 64<<20)
	run := func(path string, timeout time.Duration) (*Result, error) {
		req := request(path)
		req.Timeout = timeout
		req.MaxOut = 1 << 20
		return m.Run(context.Background(), req)
	}
	var limit *LimitError
	if _, err := run("/spin", 200*time.Millisecond); !errors.As(err, &limit) || limit.Limit != "timeout" {
		t.Errorf("spin: %v, want the timeout", err)
	}
	if _, err := run("/alloc", 5*time.Second); !errors.As(err, &limit) || limit.Limit != "memory" {
		t.Errorf("alloc: %v, want the memory limit", err)
	}
	if _, err := run("/flood", 5*time.Second); !errors.As(err, &limit) || limit.Limit != "response" {
		t.Errorf("flood: %v, want the response limit", err)
	}
	res, err := run("/panic", 5*time.Second)
	if !errors.Is(err, ErrGuestFailed) || !strings.Contains(strings.Join(res.Log, "\n"), "handler panicked") {
		t.Errorf("panic: %v %q", err, res.Log)
	}
	if res, err = run("/exit", 5*time.Second); !errors.Is(err, ErrGuestFailed) || res.ExitCode != 3 {
		t.Errorf("exit: %v code %d", err, res.ExitCode)
	}
	if _, err = run("/sleep", 5*time.Second); err != nil {
		t.Errorf("sleep: %v", err)
	}
	// And after all that, the next request starts clean.
	var got map[string]any
	call(t, m, "/state", &got)
	if got["counter"] != 0.0 {
		t.Fatalf("state after failures: %v", got)
	}
}

func TestSnapshotInitFailure(t *testing.T) {
	r := newRuntime(t)
	_, err := r.Compile(context.Background(), testwasm.Bytes(t, "reactor"), 64<<20, []string{"FAIL_INIT=1"})
	var ie *InitError
	if !errors.As(err, &ie) || !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), "init failed on purpose") {
		t.Fatalf("err = %v, want an InitError naming the panic", err)
	}
}

// TestKeptCommandStartsClean: a non-Go command whose instances are kept
// sees its initial global and memory on every request.
func TestKeptCommandStartsClean(t *testing.T) {
	r := newRuntime(t)
	m, err := r.Compile(context.Background(), testwasm.Counter(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	if m.snap == nil || !m.snap.pool.reuse {
		t.Fatal("the counter's instances are not kept")
	}
	for i := range 5 {
		res, err := m.Run(context.Background(), request("/"))
		if err != nil {
			t.Fatal(err)
		}
		resp, err := cgi.ParseResponse(res.Stdout)
		if err != nil || string(resp.Body) != "00" {
			t.Fatalf("request %d: %q (%v): state carried over", i, res.Stdout, err)
		}
	}
	if len(m.snap.pool.idle) != 1 {
		t.Fatalf("%d instances kept, want the one reused", len(m.snap.pool.idle))
	}
}
