// Package admit decides, before any instance starts, whether an invocation
// may run: the function's rate, the caller's rate, the function's
// concurrency, and the node's capacity. A refusal costs microseconds and
// says when to come back.
package admit

import (
	"context"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/moatfn/moat/internal/manifest"
)

// Refusal reasons, as metrics and logs name them.
const (
	ReasonRate       = "rate"        // the function's rate
	ReasonCallerRate = "caller_rate" // this caller's rate on the function
	ReasonBusy       = "concurrency" // the function's concurrency, after the wait
	ReasonCapacity   = "capacity"    // the node's instance or memory bound, after the wait
)

// Refusal is why an invocation was not admitted.
type Refusal struct {
	Reason     string
	Status     int // 429 for rates, 503 for capacity
	RetryAfter time.Duration
}

// Config bounds the node.
type Config struct {
	MaxInstances int           // running instances at once, all functions
	MaxMemory    int64         // sum of the memory caps of running instances
	QueueWait    time.Duration // how long a request may wait for a slot, in a queue as long as what it waits for (a function's concurrency, the node's instances)
	MaxCallers   int           // per-caller limiters kept per function
}

// Controller is safe for concurrent use.
type Controller struct {
	cfg       Config
	instances *slots
	memory    *slots
	now       func() time.Time

	mu  sync.Mutex
	fns map[string]*function // by name
}

// function is one function version's admission state.
type function struct {
	version string
	rate    *rate.Limiter // nil: unlimited
	conc    *slots

	perCaller manifest.Rate
	mu        sync.Mutex
	callers   map[string]*rate.Limiter
}

// New returns a Controller.
func New(cfg Config) *Controller {
	return &Controller{
		cfg:       cfg,
		instances: newSlots(int64(cfg.MaxInstances), cfg.MaxInstances),
		memory:    newSlots(cfg.MaxMemory, cfg.MaxInstances),
		now:       time.Now,
		fns:       map[string]*function{},
	}
}

func limiter(r manifest.Rate) *rate.Limiter {
	if r.N <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(float64(r.N)/r.Per.Seconds()), r.N)
}

// state returns the function's state, made anew when its version changes.
func (c *Controller) state(fn, version string, lim manifest.Limits) *function {
	c.mu.Lock()
	defer c.mu.Unlock()
	f, ok := c.fns[fn]
	if !ok || f.version != version {
		f = &function{
			version:   version,
			rate:      limiter(lim.Rate),
			conc:      newSlots(int64(lim.Concurrency), lim.Concurrency),
			perCaller: lim.RatePerCaller,
			callers:   map[string]*rate.Limiter{},
		}
		c.fns[fn] = f
	}
	return f
}

// Rate applies the function's rate and the caller's. caller identifies who
// is calling (a key id, a JWT subject, or the source address of a public
// caller).
func (c *Controller) Rate(fn, version string, lim manifest.Limits, caller string) *Refusal {
	f := c.state(fn, version, lim)
	now := c.now()
	if f.perCaller.N > 0 {
		l := f.caller(caller, c.cfg.MaxCallers)
		if !l.AllowN(now, 1) {
			return &Refusal{Reason: ReasonCallerRate, Status: 429, RetryAfter: wait(l, now)}
		}
	}
	if f.rate != nil && !f.rate.AllowN(now, 1) {
		return &Refusal{Reason: ReasonRate, Status: 429, RetryAfter: wait(f.rate, now)}
	}
	return nil
}

// wait is how long until l has a token again. It reads the bucket without
// touching it: a reservation cancelled to learn the same lost its token
// whenever another refusal reserved in between, so a flood's refusals ate
// into what the limit admits (TestRefusalsSpendNothing).
func wait(l *rate.Limiter, now time.Time) time.Duration {
	missing := 1 - l.TokensAt(now)
	if missing <= 0 {
		return 0
	}
	return time.Duration(missing / float64(l.Limit()) * float64(time.Second))
}

func (f *function) caller(who string, max int) *rate.Limiter {
	f.mu.Lock()
	defer f.mu.Unlock()
	l, ok := f.callers[who]
	if !ok {
		if len(f.callers) >= max {
			// Forget half: a forgotten caller starts afresh, which bounds
			// memory at the price of some slack under a huge crowd.
			n := 0
			for k := range f.callers {
				delete(f.callers, k)
				if n++; n >= max/2 {
					break
				}
			}
		}
		l = limiter(f.perCaller)
		f.callers[who] = l
	}
	return l
}

// Run takes a slot of the function's concurrency and of the node's
// instances and memory, waiting at most the queue wait, first come first
// served. A function's queue holds as many requests as its concurrency,
// the node's as many as its instances: past them a request is refused at
// once. The caller must call release when the instance is gone.
func (c *Controller) Run(ctx context.Context, fn, version string, lim manifest.Limits) (release func(), refusal *Refusal) {
	f := c.state(fn, version, lim)
	mem := int64(lim.Memory)
	if !f.conc.acquire(ctx, 1, c.cfg.QueueWait) {
		return nil, &Refusal{Reason: ReasonBusy, Status: 503, RetryAfter: time.Second}
	}
	if !c.instances.acquire(ctx, 1, c.cfg.QueueWait) {
		f.conc.release(1)
		return nil, &Refusal{Reason: ReasonCapacity, Status: 503, RetryAfter: time.Second}
	}
	if !c.memory.acquire(ctx, mem, c.cfg.QueueWait) {
		c.instances.release(1)
		f.conc.release(1)
		return nil, &Refusal{Reason: ReasonCapacity, Status: 503, RetryAfter: time.Second}
	}
	return func() {
		c.memory.release(mem)
		c.instances.release(1)
		f.conc.release(1)
	}, nil
}

// Running returns how many instances hold a slot.
func (c *Controller) Running() int64 { return c.instances.inUse() }
