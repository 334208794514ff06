package logcap

import (
	"bytes"
	"context"
	"fmt"
	"log"
	"log/slog"
	"strings"
	"testing"
	"time"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func newAt(window time.Duration, max int) (*Limiter, *clock) {
	c := &clock{t: time.Date(2026, 11, 29, 0, 0, 0, 0, time.UTC)}
	l := New(window, max)
	l.now = c.now
	return l, c
}

// One line a window per key; the next says how many were dropped.
func TestAllow(t *testing.T) {
	l, c := newAt(time.Second, 16)
	if ok, d := l.Allow("a"); !ok || d != 0 {
		t.Fatalf("first: %v %d", ok, d)
	}
	for range 999 {
		if ok, _ := l.Allow("a"); ok {
			t.Fatal("a second line inside the window got through")
		}
	}
	if ok, _ := l.Allow("b"); !ok {
		t.Fatal("another key was held back by a's flood")
	}
	c.t = c.t.Add(time.Second)
	if ok, d := l.Allow("a"); !ok || d != 999 {
		t.Fatalf("after the window: %v, dropped %d, want 999", ok, d)
	}
	if ok, d := l.Allow("b"); !ok || d != 0 {
		t.Fatalf("b after the window: %v %d", ok, d)
	}
}

// Keys from ever new sources (an IPv6 flood) fold into one once the table
// is full: it never grows past max+1, and what forgotten keys dropped is
// kept to be told, not lost.
func TestManyKeys(t *testing.T) {
	l, c := newAt(time.Second, 8)
	through, dropped := 0, 0
	for i := range 100_000 {
		if i%10_000 == 0 {
			c.t = c.t.Add(time.Second)
		}
		key := fmt.Sprint("k", i%5000)
		if ok, d := l.Allow(key); ok {
			through++
			dropped += d
		}
		if len(l.keys) > 9 {
			t.Fatalf("%d keys tracked, cap 8", len(l.keys))
		}
	}
	c.t = c.t.Add(time.Second)
	for i := range 10 {
		if ok, d := l.Allow(fmt.Sprint("new", i)); ok {
			through++
			dropped += d
		}
	}
	if through > 200 {
		t.Errorf("%d lines of 100,010 got through", through)
	}
	pending := 0 // dropped, to be told on each key's next line
	for _, s := range l.keys {
		pending += s.dropped
	}
	if through+dropped+pending != 100_010 {
		t.Errorf("through %d + dropped %d + pending %d != 100,010: counts were lost", through, dropped, pending)
	}
}

// Log keys by message and source address, not port: a client cannot get a
// line per connection by changing ports.
func TestLog(t *testing.T) {
	l, c := newAt(time.Second, 16)
	var buf bytes.Buffer
	lg := slog.New(slog.NewTextHandler(&buf, nil))
	ctx := context.Background()
	for port := range 500 {
		l.Log(ctx, lg, slog.LevelWarn, fmt.Sprintf("192.0.2.7:%d", 1024+port), "authentication failed", slog.String("reason", "no token"))
	}
	l.Log(ctx, lg, slog.LevelWarn, "192.0.2.8:1024", "authentication failed")
	l.Log(ctx, lg, slog.LevelWarn, "192.0.2.7:1024", "input refused")
	c.t = c.t.Add(time.Second)
	l.Log(ctx, lg, slog.LevelWarn, "192.0.2.7:9", "authentication failed")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("%d lines, want 4:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[3], "dropped=499") {
		t.Errorf("the line after the window does not tell the 499 dropped: %s", lines[3])
	}
	// A level the logger does not log costs no slot.
	l.Log(ctx, lg, slog.LevelDebug, "192.0.2.9:1", "debug")
	if _, ok := l.keys["debug\x00192.0.2.9"]; ok {
		t.Error("a disabled level took a key")
	}
}

// Handler caps net/http's ErrorLog, whose lines name their source in the
// message.
func TestHandler(t *testing.T) {
	l, c := newAt(time.Second, 16)
	var buf bytes.Buffer
	errLog := slog.NewLogLogger(l.Handler(slog.NewTextHandler(&buf, nil), "http server"), slog.LevelWarn)
	for i := range 1000 {
		errLog.Printf("http: TLS handshake error from 192.0.2.7:%d: EOF", 1024+i)
	}
	c.t = c.t.Add(time.Second)
	log.New(errLog.Writer(), "", 0).Print("http: TLS handshake error from 192.0.2.7:1: EOF")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[1], "dropped=999") {
		t.Fatalf("want 2 lines, the second with dropped=999:\n%s", buf.String())
	}
}

func BenchmarkAllow(b *testing.B) {
	l := New(time.Second, 4096)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			l.Allow("authentication failed\x00192.0.2.7")
		}
	})
}
