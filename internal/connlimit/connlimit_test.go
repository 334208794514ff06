package connlimit

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync"
	"testing"
	"time"
)

// serve runs an HTTP server on l and returns its address.
func serve(t *testing.T, l *Listener) string {
	t.Helper()
	srv := &http.Server{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		ReadHeaderTimeout: 10 * time.Second,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// dial connects from the loopback address from (127.0.0.2, ...), so that
// one machine stands for several sources.
func dial(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// served dials from from and reports whether a request was answered: a
// connection refused may be reset before the dial even returns.
func served(addr, from string) bool {
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		return false
	}
	defer c.Close()
	return works(c)
}

// works sends a request on c and reports whether it was answered.
func works(c net.Conn) bool {
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return false
	}
	b := make([]byte, 12)
	n, _ := io.ReadFull(c, b)
	return n == 12 && string(b) == "HTTP/1.1 200"
}

func TestBounds(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refused := map[string]int{}
	l := New(ln, Bounds{Max: 8, PerSource: 3}, func(src, reason string) {
		mu.Lock()
		refused[src+" "+reason]++
		mu.Unlock()
	})
	addr := serve(t, l)

	// Three idle connections from one source hold its share...
	var idle []net.Conn
	for range 3 {
		idle = append(idle, dial(t, addr, "127.0.0.1"))
	}
	waitOpen(t, l, "127.0.0.1", 3, 3)
	// ...so a fourth is closed as it comes, without an answer,
	if served(addr, "127.0.0.1") {
		t.Fatal("a fourth connection from one source was served")
	}
	// while another source is served,
	if !works(dial(t, addr, "127.0.0.2")) {
		t.Fatal("another source was refused")
	}
	// and the first source is served again once one of its own closes.
	idle[0].Close()
	waitOpen(t, l, "127.0.0.1", -1, 2)
	if !works(dial(t, addr, "127.0.0.1")) {
		t.Fatal("a connection after one closed was refused")
	}

	// The node's bound: 8 in all, whatever their sources.
	for i := 3; len(openAll(l)) < 8; i++ {
		dial(t, addr, fmt.Sprintf("127.0.0.%d", i))
		time.Sleep(5 * time.Millisecond)
	}
	if served(addr, "127.0.0.50") {
		t.Fatal("a ninth connection on an 8-connection node was served")
	}
	mu.Lock()
	if refused["127.0.0.1 source"] != 1 || refused["127.0.0.50 total"] != 1 {
		t.Errorf("refusals heard: %v", refused)
	}
	mu.Unlock()
}

// waitOpen waits until l holds total connections (-1: any) and from of
// source's.
func waitOpen(t *testing.T, l *Listener, source string, total, from int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		n, f := l.Open(source)
		if (total < 0 || n == total) && f == from {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("open %d, from %s %d; want %d, %d", n, source, f, total, from)
		}
	}
}

func openAll(l *Listener) map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := map[string]int{}
	for k, v := range l.by {
		out[k] = v
	}
	if l.total < len(out) {
		panic("total below the sources' count")
	}
	for i := len(out); i < l.total; i++ {
		out[fmt.Sprint("#", i)] = 0
	}
	return out
}

// Closed connections give their places back: after many come and go, the
// bookkeeping is empty.
func TestReleased(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Bounds{Max: 64, PerSource: 4}, nil)
	addr := serve(t, l)
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for range 50 {
				c := dial(t, addr, fmt.Sprintf("127.0.0.%d", 10+g))
				if !works(c) {
					t.Error("refused under the bound")
				}
				c.Close()
			}
		})
	}
	wg.Wait()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		l.mu.Lock()
		total, sources := l.total, len(l.by)
		l.mu.Unlock()
		if total == 0 && sources == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d connections and %d sources still counted after all closed", total, sources)
		}
	}
}

// serveState runs an HTTP server on l that reports connection states to
// it; a request for /hold waits until hold is closed.
func serveState(t *testing.T, l *Listener, hold chan struct{}) string {
	t.Helper()
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/hold" {
				<-hold
			}
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ConnState:         l.State,
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String()
}

// idleConn dials from from, makes one request and leaves the connection
// idle, kept alive.
func idleConn(t *testing.T, addr, from string) net.Conn {
	t.Helper()
	c := dial(t, addr, from)
	c.SetDeadline(time.Now().Add(5 * time.Second))
	req, _ := http.NewRequest("GET", "http://x/", nil)
	if err := req.Write(c); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("a connection from %s under the bounds was not served: %v", from, err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	c.SetDeadline(time.Time{})
	return c
}

// closed reports whether the server closed c.
func closed(c net.Conn) bool {
	c.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	_, err := c.Read(make([]byte, 1))
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// At a bound a new connection takes the place of the one idle longest, so
// that kept-alive connections cannot lock others out; busy ones are never
// closed for it.
func TestIdleGiveWay(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Bounds{Max: 4, PerSource: 3}, nil)
	hold := make(chan struct{})
	defer close(hold)
	addr := serveState(t, l, hold)

	// Three idle from one source, at its bound: its fourth takes the place
	// of its own longest idle.
	var a []net.Conn
	for range 3 {
		a = append(a, idleConn(t, addr, "127.0.0.1"))
		time.Sleep(10 * time.Millisecond) // an order of idleness
	}
	a = append(a, idleConn(t, addr, "127.0.0.1"))
	if !closed(a[0]) {
		t.Fatal("the source's longest idle connection was not closed for its new one")
	}
	if total, from := l.Open("127.0.0.1"); total != 3 || from != 3 {
		t.Fatalf("open %d, from the source %d; want 3, 3", total, from)
	}
	// Another source, at the node's bound of 4: fits, then takes the
	// place of the longest idle of all.
	b1 := idleConn(t, addr, "127.0.0.2")
	b2 := idleConn(t, addr, "127.0.0.2")
	if !closed(a[1]) {
		t.Fatal("the longest idle connection of all was not closed at the node's bound")
	}
	for _, c := range []net.Conn{a[2], a[3], b1, b2} {
		if closed(c) {
			t.Fatal("a connection was closed that did not have to be")
		}
	}

	// Busy connections hold their places: four requests held, a fifth
	// connection is refused.
	busy := make([]net.Conn, 0, 4)
	for _, c := range []net.Conn{a[2], a[3], b1, b2} {
		c.SetDeadline(time.Time{})
		if _, err := io.WriteString(c, "GET /hold HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			t.Fatal(err)
		}
		busy = append(busy, c)
	}
	time.Sleep(50 * time.Millisecond) // the four are read and held
	if served(addr, "127.0.0.3") {
		t.Fatal("a connection was served while four busy ones held the node's bound")
	}
	for _, c := range busy {
		if closed(c) {
			t.Fatal("a busy connection was closed")
		}
	}
}

// A source opening connections faster than its rate (a handshake flood
// costs the node a TLS handshake each, however briefly each stays open)
// gets its burst, then its rate; other sources are not held back.
func TestRate(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	refused := map[string]int{}
	l := New(ln, Bounds{Max: 100, PerSource: 100, Rate: 5}, func(src, reason string) {
		mu.Lock()
		refused[src+" "+reason]++
		mu.Unlock()
	})
	now := time.Now()
	l.now = func() time.Time { return now } // no refill during the test
	addr := serve(t, l)
	servedN := 0
	for range 20 {
		if served(addr, "127.0.0.1") {
			servedN++
		}
	}
	if servedN != 10 {
		t.Errorf("%d of 20 connections served at 5 a second (bursts of 10), want 10", servedN)
	}
	if !served(addr, "127.0.0.2") {
		t.Error("another source was held back")
	}
	mu.Lock()
	if refused["127.0.0.1 rate"] != 10 {
		t.Errorf("refusals heard: %v", refused)
	}
	mu.Unlock()
	// The rates kept stay bounded.
	for i := range 3 * maxRated {
		l.mu.Lock()
		l.limiter(fmt.Sprint("src", i))
		n := len(l.rated)
		l.mu.Unlock()
		if n > maxRated {
			t.Fatalf("%d sources' rates kept, cap %d", n, maxRated)
		}
	}
}
