package auth

import (
	"net"
	"net/netip"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// FailureLimiter refuses sources that keep presenting bad credentials: each
// failure takes a token from the source's bucket, and a source with an
// empty bucket is refused (429) until it refills. It is safe for concurrent
// use and bounded in memory.
type FailureLimiter struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
	every   rate.Limit
	burst   int
	max     int
	now     func() time.Time
}

// NewFailureLimiter allows burst failures per source, refilled at one per
// every. It tracks at most max sources; past that it forgets the oldest
// half, which favours an attacker only by starting it afresh.
func NewFailureLimiter(burst int, every time.Duration, max int) *FailureLimiter {
	return &FailureLimiter{buckets: map[string]*rate.Limiter{}, every: rate.Every(every), burst: burst, max: max, now: time.Now}
}

// Source returns the host of a remote address ("ip:port"), the address a
// caller is known by; an address without a port is returned as is.
func Source(remoteAddr string) string {
	if h, _, err := net.SplitHostPort(remoteAddr); err == nil {
		return h
	}
	return remoteAddr
}

// Block returns what bounds count a remote address ("ip:port") as: its
// host for IPv4, and for IPv6 the /64 it lies in ("2001:db8:1:2::/64"),
// since one subscriber is commonly handed a whole /64 and could otherwise
// be as many sources as it has addresses. An IPv4-mapped address counts as
// IPv4; what does not parse as an address is returned as Source has it.
func Block(remoteAddr string) string {
	h := Source(remoteAddr)
	ip, err := netip.ParseAddr(h)
	if err != nil {
		return h
	}
	ip = ip.Unmap()
	if ip.Is4() {
		return ip.String()
	}
	p, err := ip.WithZone("").Prefix(64)
	if err != nil {
		return h
	}
	return p.String()
}

// Blocked reports whether remoteAddr's source has no failures left, and
// for how long it stays blocked.
func (l *FailureLimiter) Blocked(remoteAddr string) (time.Duration, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[Block(remoteAddr)]
	if !ok {
		return 0, false
	}
	now := l.now()
	if b.TokensAt(now) >= 1 {
		return 0, false
	}
	r := b.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now)
	return wait, true
}

// Fail records a failure from remoteAddr.
func (l *FailureLimiter) Fail(remoteAddr string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	src := Block(remoteAddr)
	b, ok := l.buckets[src]
	if !ok {
		if len(l.buckets) >= l.max {
			n := 0
			for k := range l.buckets {
				delete(l.buckets, k)
				if n++; n >= l.max/2 {
					break
				}
			}
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.buckets[src] = b
	}
	b.AllowN(l.now(), 1)
}
