package sandbox

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/cgi"
	"github.com/moatfn/moat/internal/testwasm"
)

func newRuntime(t testing.TB) *Runtime {
	t.Helper()
	r, err := New(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close(context.Background()) })
	return r
}

func compileKitchen(t testing.TB, r *Runtime, memory int64) *Module {
	t.Helper()
	m, err := r.Compile(context.Background(), testwasm.Bytes(t, "kitchen"), memory, nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func request(path string) *Request {
	return &Request{
		Args:     []string{"kitchen"},
		Env:      []string{"REQUEST_METHOD=GET", "PATH_INFO=" + path, "SERVER_PROTOCOL=HTTP/1.1", "QUERY_STRING=", "SERVER_NAME=test", "SERVER_PORT=80"},
		Timeout:  5 * time.Second,
		MaxOut:   1 << 20,
		MaxLog:   64 << 10,
		MaxLines: 100,
	}
}

func TestCompileRefuses(t *testing.T) {
	r := newRuntime(t)
	tests := []struct {
		name    string
		wasm    []byte
		memory  int64
		wantErr string
	}{
		{"not wasm", []byte("#!/bin/sh\necho pwned\n"), 64 << 20, "not WebAssembly"},
		{"empty", nil, 64 << 20, "not WebAssembly"},
		{"truncated", testwasm.MinimalCGI()[:20], 64 << 20, "invalid module"},
		{"no _start", testwasm.NoStart(), 64 << 20, "no _start"},
		{"foreign import", testwasm.ForeignImport(), 64 << 20, "imports env.system"},
		{"cap below minimum", testwasm.Bytes(t, "kitchen"), 1 << 20, "invalid module"},
		{"cap not pages", testwasm.MinimalCGI(), 1000, "multiple of 64KiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := r.Compile(context.Background(), tt.wasm, tt.memory, nil)
			if !errors.Is(err, ErrInvalidModule) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Compile(%s) error = %v, want ErrInvalidModule with %q", tt.name, err, tt.wantErr)
			}
		})
	}
}

func TestRunHello(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	req := request("/hello")
	req.Env = append(req.Env, "QUERY_STRING=name=moat")
	res, err := m.Run(context.Background(), req)
	if err != nil {
		t.Fatalf("Run: %v (log %q)", err, res.Log)
	}
	if !strings.Contains(string(res.Stdout), "hello, moat") {
		t.Fatalf("stdout = %q, want hello, moat", res.Stdout)
	}
}

func TestRunMinimal(t *testing.T) {
	r := newRuntime(t)
	m, err := r.Compile(context.Background(), testwasm.MinimalCGI(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := m.Run(context.Background(), request("/"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "Status: 200 OK\nContent-Type: text/plain\n\nhello\n"; string(res.Stdout) != want {
		t.Fatalf("stdout = %q, want %q", res.Stdout, want)
	}
}

// TestFreshInstance shows that nothing of one request is seen by the next:
// a global counter is 1 on every run, concurrent or not.
func TestFreshInstance(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := m.Run(context.Background(), request("/counter"))
			if err != nil {
				t.Error(err)
				return
			}
			resp, err := cgi.ParseResponse(res.Stdout)
			if err != nil || string(resp.Body) != "1" {
				t.Errorf("counter = %q (%v), want 1", res.Stdout, err)
			}
		}()
	}
	wg.Wait()
}

func TestRunEnvironmentIsOnlyWhatWasGiven(t *testing.T) {
	t.Setenv("MOAT_NODE_SECRET", "do-not-leak")
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	req := request("/env")
	req.Env = append(req.Env, "TITLE=Widgets")
	res, err := m.Run(context.Background(), req)
	if err != nil {
		t.Fatal(err)
	}
	out := string(res.Stdout)
	if strings.Contains(out, "do-not-leak") || strings.Contains(out, "HOME=") || strings.Contains(out, "PATH=/") {
		t.Fatalf("guest saw the node's environment:\n%s", out)
	}
	if !strings.Contains(out, "TITLE=Widgets") {
		t.Fatalf("guest lacks its declared env:\n%s", out)
	}
}

func TestRunFailures(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	trap, err := r.Compile(context.Background(), testwasm.Trap(), 1<<20, nil)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		mod       *Module
		path      string
		timeout   time.Duration
		wantLimit string // "" means ErrGuestFailed
		wantLog   string
	}{
		{"exit 3", m, "/exit3", 5 * time.Second, "", "about to exit 3"},
		{"panic", m, "/panic", 5 * time.Second, "", "guest panic"},
		{"trap", trap, "/", 5 * time.Second, "", ""},
		{"loop", m, "/loop", 300 * time.Millisecond, "timeout", ""},
		{"sleep", m, "/sleep", 300 * time.Millisecond, "timeout", ""},
		{"alloc", m, "/alloc", 10 * time.Second, "memory", "out of memory"},
		{"spew", m, "/spew", 10 * time.Second, "response", ""},
		{"spewerr", m, "/spewerr", 500 * time.Millisecond, "timeout", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := request(tt.path)
			req.Env = append(req.Env, "QUERY_STRING=d=1h")
			req.Timeout = tt.timeout
			res, err := tt.mod.Run(context.Background(), req)
			var lim *LimitError
			switch {
			case tt.wantLimit == "" && !errors.Is(err, ErrGuestFailed):
				t.Fatalf("Run(%s) error = %v, want ErrGuestFailed", tt.path, err)
			case tt.wantLimit != "" && (!errors.As(err, &lim) || lim.Limit != tt.wantLimit):
				t.Fatalf("Run(%s) error = %v, want %s limit", tt.path, err, tt.wantLimit)
			}
			if tt.wantLog != "" && !strings.Contains(strings.Join(res.Log, "\n"), tt.wantLog) {
				t.Errorf("log = %q, want %q", res.Log, tt.wantLog)
			}
			if len(res.Stdout) > req.MaxOut {
				t.Errorf("stdout %d bytes over cap %d", len(res.Stdout), req.MaxOut)
			}
			if n := len(strings.Join(res.Log, "")); n > req.MaxLog {
				t.Errorf("log %d bytes over cap %d", n, req.MaxLog)
			}
		})
	}
	// The runtime is unharmed: a normal request still works.
	if _, err := m.Run(context.Background(), request("/hello")); err != nil {
		t.Fatalf("Run after failures: %v", err)
	}
}

// TestLoopDoesNotFreezeOthers runs spinning guests beside a garbage
// collection and well-behaved requests: the loops must not stall them. A
// guest that Go cannot stop holds the collection's mark phase until it
// ends. The collection is timed to the end of its cycle, not to the return
// of runtime.GC, which then sweeps with a Gosched per span: on a busy
// machine each waits behind the spinning guests' time slices, 10 ms to 2 s
// in all, whatever the guests do.
func TestLoopDoesNotFreezeOthers(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	var wg sync.WaitGroup
	for i := 0; i < 2; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := request("/loop")
			req.Timeout = 2 * time.Second
			m.Run(context.Background(), req)
		}()
	}
	time.Sleep(100 * time.Millisecond)
	done := make(chan error, 1)
	cycles := func() uint64 {
		s := []metrics.Sample{{Name: "/gc/cycles/total:gc-cycles"}}
		metrics.Read(s)
		return s[0].Value.Uint64()
	}
	before := cycles()
	start := time.Now()
	go func() {
		runtime.GC()
		_, err := m.Run(context.Background(), request("/hello"))
		done <- err
	}()
	for cycles() == before && time.Since(start) < 30*time.Second {
		time.Sleep(time.Millisecond)
	}
	gcTook := time.Since(start)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("a spinning guest froze GC and other requests")
	}
	// The guests spin for 2s; a collection that waited on them would take
	// about that long.
	if gcTook > time.Second {
		t.Fatalf("a garbage collection beside spinning guests took %v", gcTook)
	}
	t.Logf("the collection's cycle took %v", gcTook)
	wg.Wait()
}

func TestRunCallerCancel(t *testing.T) {
	r := newRuntime(t)
	m := compileKitchen(t, r, 64<<20)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(100*time.Millisecond, cancel)
	req := request("/loop")
	req.Timeout = 10 * time.Second
	if _, err := m.Run(ctx, req); !errors.Is(err, context.Canceled) {
		t.Fatalf("Run after cancel: %v, want context.Canceled", err)
	}
}
