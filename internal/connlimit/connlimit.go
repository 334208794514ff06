// Package connlimit bounds the connections a node holds open: all of them,
// and those from one source address. An open connection costs the node a
// goroutine and its buffers for as long as the client keeps it, idle or
// trickling its headers, and costs the client almost nothing: without a
// bound, one machine can hold enough of them to exhaust the node's memory
// or file descriptors. A connection past a bound is closed as it is
// accepted, before TLS or HTTP: a reset, no answer.
package connlimit

import (
	"net"
	"sync"

	"github.com/moatfn/moat/internal/auth"
)

// Reasons a connection is refused.
const (
	ReasonTotal  = "total"  // the node holds its maximum
	ReasonSource = "source" // the source address holds its maximum
)

// Listener accepts connections within its bounds. It is safe for
// concurrent use.
type Listener struct {
	net.Listener
	max, perSource int
	refused        func(source, reason string)

	mu    sync.Mutex
	total int
	by    map[string]int // open connections by source address; none at zero
}

// New bounds ln to max connections open at once and perSource from one
// source address (0: no bound). refused, if not nil, hears of each
// connection closed for a bound; it must be quick.
func New(ln net.Listener, max, perSource int, refused func(source, reason string)) *Listener {
	return &Listener{Listener: ln, max: max, perSource: perSource, refused: refused, by: map[string]int{}}
}

// Accept returns the next connection within the bounds, closing those past
// them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		src := auth.Block(c.RemoteAddr().String())
		reason := l.take(src)
		if reason == "" {
			return &conn{Conn: c, l: l, src: src}, nil
		}
		if tc, ok := c.(*net.TCPConn); ok {
			tc.SetLinger(0) // a reset: no TIME_WAIT left here for each
		}
		c.Close()
		if l.refused != nil {
			l.refused(src, reason)
		}
	}
}

func (l *Listener) take(src string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.max > 0 && l.total >= l.max:
		return ReasonTotal
	case l.perSource > 0 && l.by[src] >= l.perSource:
		return ReasonSource
	}
	l.total++
	l.by[src]++
	return ""
}

func (l *Listener) release(src string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if l.by[src]--; l.by[src] <= 0 {
		delete(l.by, src)
	}
}

// Open returns the connections open now, in all and from source.
func (l *Listener) Open(source string) (total, from int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.total, l.by[source]
}

// conn gives its place back when closed, once.
type conn struct {
	net.Conn
	l    *Listener
	src  string
	once sync.Once
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c.src) })
	return err
}
