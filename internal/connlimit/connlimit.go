// Package connlimit bounds the connections a node holds open: all of them,
// and those from one source address. An open connection costs the node a
// goroutine and its buffers for as long as the client keeps it, idle or
// trickling its headers, and costs the client almost nothing: without a
// bound, one machine can hold enough of them to exhaust the node's memory
// or file descriptors.
//
// At a bound, a new connection takes the place of the connection that has
// been idle longest (kept alive between requests, or open without a byte
// of a request yet; within the source, at a source's bound), which is
// closed: idle connections cannot be held to lock others out. Only when every connection in the way is busy is the
// new one closed as it is accepted, before TLS or HTTP: a reset, no
// answer. The server reports idle and busy through State, which must be
// its http.Server.ConnState.
package connlimit

import (
	"container/list"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/moatfn/moat/internal/auth"
)

// Reasons a connection is refused.
const (
	ReasonTotal  = "total"  // the node holds its maximum
	ReasonSource = "source" // the source address holds its maximum
	ReasonRate   = "rate"   // the source opens connections faster than its rate
)

// Bounds are a Listener's bounds; 0 is no bound.
type Bounds struct {
	Max       int     // connections open at once, all sources
	PerSource int     // connections open at once from one source
	Rate      float64 // new connections a second from one source, in bursts of twice that
}

// maxRated is how many sources' rates are kept; past it half are
// forgotten, which gives them only a fresh bucket.
const maxRated = 10_000

// Listener accepts connections within its bounds. It is safe for
// concurrent use.
type Listener struct {
	net.Listener
	max, perSource int
	rate           rate.Limit
	burst          int
	refused        func(source, reason string)
	now            func() time.Time

	mu     sync.Mutex
	total  int
	by     map[string]int        // open connections by source; none at zero
	idle   list.List             // idle connections, longest idle first
	idleBy map[string]*list.List // the same, by source
	rated  map[string]*rate.Limiter
}

// New bounds ln by b. refused, if not nil, hears of each connection
// closed for a bound; it must be quick.
func New(ln net.Listener, b Bounds, refused func(source, reason string)) *Listener {
	return &Listener{
		Listener: ln, max: b.Max, perSource: b.PerSource,
		rate: rate.Limit(b.Rate), burst: max(int(2*b.Rate), 1),
		refused: refused, now: time.Now,
		by: map[string]int{}, idleBy: map[string]*list.List{}, rated: map[string]*rate.Limiter{},
	}
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
		reason, evicted := l.take(src)
		for _, e := range evicted {
			e.Conn.Close() // its server goroutine sees the error and ends
		}
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

// take counts a new connection from src in, making room by evicting idle
// ones if it must, or says which bound refuses it. The evicted are
// counted out already; the caller closes them.
func (l *Listener) take(src string) (reason string, evicted []*conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.rate > 0 && !l.limiter(src).AllowN(l.now(), 1) {
		return ReasonRate, nil // before any eviction: a refused one takes no place
	}
	if l.perSource > 0 && l.by[src] >= l.perSource {
		e := l.evict(l.idleBy[src])
		if e == nil {
			return ReasonSource, nil
		}
		evicted = append(evicted, e)
	}
	if l.max > 0 && l.total >= l.max {
		e := l.evict(&l.idle)
		if e == nil {
			return ReasonTotal, evicted
		}
		evicted = append(evicted, e)
	}
	l.total++
	l.by[src]++
	return "", evicted
}

// limiter returns src's bucket of new connections. Under l.mu.
func (l *Listener) limiter(src string) *rate.Limiter {
	r := l.rated[src]
	if r == nil {
		if len(l.rated) >= maxRated {
			n := 0
			for k := range l.rated {
				delete(l.rated, k)
				if n++; n >= maxRated/2 {
					break
				}
			}
		}
		r = rate.NewLimiter(l.rate, l.burst)
		l.rated[src] = r
	}
	return r
}

// evict counts out the connection idle longest on idle, if any. Under l.mu.
func (l *Listener) evict(idle *list.List) *conn {
	if idle == nil || idle.Len() == 0 {
		return nil
	}
	c := idle.Front().Value.(*conn)
	c.released = true
	l.out(c)
	return c
}

// out counts c out: no longer open, nor idle. Under l.mu.
func (l *Listener) out(c *conn) {
	l.busy(c)
	l.total--
	if l.by[c.src]--; l.by[c.src] <= 0 {
		delete(l.by, c.src)
	}
}

// busy takes c off the idle lists. Under l.mu.
func (l *Listener) busy(c *conn) {
	if c.idle == nil {
		return
	}
	l.idle.Remove(c.idle)
	by := l.idleBy[c.src]
	by.Remove(c.idleBy)
	if by.Len() == 0 {
		delete(l.idleBy, c.src)
	}
	c.idle, c.idleBy = nil, nil
}

// State is the server's ConnState: it tells which connections are idle
// (new, or between requests), and may give way to new ones at a bound.
func (l *Listener) State(nc net.Conn, st http.ConnState) {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok {
		nc = t.NetConn() // under TLS
	}
	c, ok := nc.(*conn)
	if !ok || c.l != l {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.released {
		return
	}
	if st != http.StateIdle && st != http.StateNew {
		l.busy(c)
		return
	}
	if c.idle != nil {
		return
	}
	c.idle = l.idle.PushBack(c)
	by := l.idleBy[c.src]
	if by == nil {
		by = list.New()
		l.idleBy[c.src] = by
	}
	c.idleBy = by.PushBack(c)
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
	l   *Listener
	src string
	// Under l.mu:
	released     bool
	idle, idleBy *list.Element // on the idle lists while idle
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.l.mu.Lock()
	if !c.released {
		c.released = true
		c.l.out(c)
	}
	c.l.mu.Unlock()
	return err
}
