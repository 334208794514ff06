package admit

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moatfn/moat/internal/manifest"
)

func limits(rate, perCaller manifest.Rate, conc int) manifest.Limits {
	return manifest.Limits{Rate: rate, RatePerCaller: perCaller, Concurrency: conc, Memory: 64 << 20}
}

func TestRateAdmitsExactlyTheBurst(t *testing.T) {
	c := New(Config{MaxInstances: 10, MaxMemory: 1 << 30, MaxCallers: 100})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	lim := limits(manifest.Rate{N: 50, Per: time.Second}, manifest.Rate{}, 10)
	admitted := 0
	for i := 0; i < 10000; i++ {
		if no := c.Rate("f", "v1", lim, "x"); no == nil {
			admitted++
		} else if no.Reason != ReasonRate || no.Status != 429 || no.RetryAfter <= 0 {
			t.Fatalf("refusal = %+v", no)
		}
	}
	if admitted != 50 {
		t.Fatalf("admitted %d of a burst at 50/s, want 50", admitted)
	}
	now = now.Add(time.Second)
	if no := c.Rate("f", "v1", lim, "x"); no != nil {
		t.Fatalf("a second later: %+v", no)
	}
	// A new version starts afresh; an unlimited function is never refused.
	if no := c.Rate("f", "v2", lim, "x"); no != nil {
		t.Fatalf("new version: %+v", no)
	}
	for i := 0; i < 1000; i++ {
		if no := c.Rate("g", "v1", limits(manifest.Rate{}, manifest.Rate{}, 1), "x"); no != nil {
			t.Fatalf("unlimited function refused: %+v", no)
		}
	}
}

// Refusals that race each other leave the bucket as they found it: a
// flood's refusals do not eat into what the limit admits. (Reserving a
// token to learn Retry-After and cancelling it lost a token whenever two
// refusals interleaved.)
func TestRefusalsSpendNothing(t *testing.T) {
	c := New(Config{MaxInstances: 10, MaxMemory: 1 << 30, MaxCallers: 100})
	var mu sync.Mutex
	now := time.Unix(1000, 0)
	c.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	lim := limits(manifest.Rate{N: 100, Per: time.Second}, manifest.Rate{}, 10)
	var admitted, refused atomic.Int64
	const rounds = 50
	for range rounds {
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for range 200 {
					if no := c.Rate("f", "v1", lim, "x"); no == nil {
						admitted.Add(1)
					} else if no.RetryAfter <= 0 || no.RetryAfter > 10*time.Millisecond {
						t.Errorf("Retry-After %v with the bucket refilling a token each 10ms", no.RetryAfter)
						return
					} else {
						refused.Add(1)
					}
				}
			})
		}
		wg.Wait()
		mu.Lock()
		now = now.Add(100 * time.Millisecond) // ten tokens
		mu.Unlock()
	}
	if want := int64(100 + (rounds-1)*10); admitted.Load() != want {
		t.Errorf("admitted %d with %d refusals racing, want exactly %d", admitted.Load(), refused.Load(), want)
	}
}

func TestCallerRate(t *testing.T) {
	c := New(Config{MaxInstances: 10, MaxMemory: 1 << 30, MaxCallers: 4})
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	lim := limits(manifest.Rate{}, manifest.Rate{N: 2, Per: time.Minute}, 10)
	for _, who := range []string{"a", "b"} {
		for i := 0; i < 2; i++ {
			if no := c.Rate("f", "v", lim, who); no != nil {
				t.Fatalf("%s request %d refused: %+v", who, i, no)
			}
		}
		if no := c.Rate("f", "v", lim, who); no == nil || no.Reason != ReasonCallerRate || no.RetryAfter < 20*time.Second {
			t.Fatalf("%s third request = %+v, want caller_rate with a wait of ~30s", who, no)
		}
	}
	// The caller table stays bounded.
	for i := 0; i < 100; i++ {
		c.Rate("f", "v", lim, string(rune('A'+i)))
	}
	if n := len(c.state("f", "v", lim).callers); n > 4 {
		t.Fatalf("%d callers tracked, want at most 4", n)
	}
}

func TestRunBounds(t *testing.T) {
	c := New(Config{MaxInstances: 3, MaxMemory: 1 << 30, QueueWait: 50 * time.Millisecond})
	ctx := context.Background()
	lim := limits(manifest.Rate{}, manifest.Rate{}, 2)
	r1, no1 := c.Run(ctx, "f", "v", lim)
	r2, no2 := c.Run(ctx, "f", "v", lim)
	if no1 != nil || no2 != nil {
		t.Fatal(no1, no2)
	}
	if _, no := c.Run(ctx, "f", "v", lim); no == nil || no.Reason != ReasonBusy || no.Status != 503 {
		t.Fatalf("third run of a concurrency-2 function = %+v", no)
	}
	// The node's bound: one more instance of another function fits, then none.
	r3, no := c.Run(ctx, "g", "v", lim)
	if no != nil {
		t.Fatal(no)
	}
	if _, no := c.Run(ctx, "h", "v", lim); no == nil || no.Reason != ReasonCapacity {
		t.Fatalf("fourth instance on a 3-instance node = %+v", no)
	}
	if c.Running() != 3 {
		t.Fatalf("Running = %d", c.Running())
	}
	// A waiter gets the slot a release frees.
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		r, no := New(Config{}).Run(ctx, "x", "v", lim) // zero capacity: refused at once
		if no == nil {
			r()
			t.Error("a zero-capacity node admitted")
		}
	}()
	time.AfterFunc(10*time.Millisecond, r1)
	if r, no := c.Run(ctx, "f", "v", lim); no != nil {
		t.Fatalf("waiting for a freed slot: %+v", no)
	} else {
		r()
	}
	wg.Wait()
	r2()
	r3()
	if c.Running() != 0 {
		t.Fatalf("Running after releases = %d", c.Running())
	}
	// Memory: a 64MiB function on a 100MiB node runs one at a time.
	m := New(Config{MaxInstances: 10, MaxMemory: 100 << 20})
	rm, no := m.Run(ctx, "f", "v", lim)
	if no != nil {
		t.Fatal(no)
	}
	if _, no := m.Run(ctx, "g", "v", lim); no == nil || no.Reason != ReasonCapacity {
		t.Fatalf("second 64MiB instance on a 100MiB node = %+v", no)
	}
	rm()
}

// BenchmarkRateRefusal is the cost of refusing a request over its rate.
func BenchmarkRateRefusal(b *testing.B) {
	c := New(Config{MaxInstances: 10, MaxMemory: 1 << 30, MaxCallers: 100})
	lim := limits(manifest.Rate{N: 1, Per: time.Hour}, manifest.Rate{}, 10)
	c.Rate("f", "v", lim, "x")
	b.ReportAllocs()
	for b.Loop() {
		if c.Rate("f", "v", lim, "x") == nil {
			b.Fatal("admitted")
		}
	}
}

// The queue for a function's slots holds as many requests as its
// concurrency: past that, refused at once, not after the wait. Slots go to
// waiters in the order they came.
func TestQueueBoundedAndInOrder(t *testing.T) {
	c := New(Config{MaxInstances: 100, MaxMemory: 1 << 40, QueueWait: 5 * time.Second})
	ctx := context.Background()
	lim := limits(manifest.Rate{}, manifest.Rate{}, 2)
	var held []func()
	for range 2 {
		r, no := c.Run(ctx, "f", "v", lim)
		if no != nil {
			t.Fatal(no)
		}
		held = append(held, r)
	}
	order := make(chan int, 2)
	var wg sync.WaitGroup
	for i := range 2 {
		wg.Go(func() {
			r, no := c.Run(ctx, "f", "v", lim)
			if no != nil {
				t.Errorf("waiter %d: %+v", i, no)
				return
			}
			order <- i
			r()
		})
		// Queued in this order.
		for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
			if c.state("f", "v", lim).conc.queued() == i+1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("waiter %d never queued", i)
			}
		}
	}
	start := time.Now()
	if _, no := c.Run(ctx, "f", "v", lim); no == nil || no.Reason != ReasonBusy {
		t.Fatalf("a third waiter behind a full queue = %+v", no)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the refusal past a full queue took %v, not at once", took)
	}
	held[0]()
	if first := <-order; first != 0 {
		t.Errorf("the first freed slot went to waiter %d, want 0", first)
	}
	held[1]()
	wg.Wait()
	if c.Running() != 0 {
		t.Errorf("Running = %d after all released", c.Running())
	}
}

// A waiter that gives up leaves the queue, and a large waiter at the head
// that gives up lets the smaller ones behind it in.
func TestQueueGiveUp(t *testing.T) {
	s := newSlots(10, 4)
	ctx := context.Background()
	if !s.acquire(ctx, 8, 0) {
		t.Fatal("8 of 10 refused")
	}
	big := make(chan bool)
	go func() { big <- s.acquire(ctx, 10, 50*time.Millisecond) }()
	for s.queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	small := make(chan bool)
	go func() { small <- s.acquire(ctx, 2, 5*time.Second) }()
	if <-big {
		t.Fatal("10 units granted while 8 were held")
	}
	if !<-small {
		t.Fatal("the small waiter behind the one that gave up was not let in")
	}
	if s.queued() != 0 || s.inUse() != 10 {
		t.Fatalf("queued %d, in use %d", s.queued(), s.inUse())
	}
	cctx, cancel := context.WithCancel(ctx)
	gone := make(chan bool)
	go func() { gone <- s.acquire(cctx, 1, 5*time.Second) }()
	for s.queued() != 1 {
		time.Sleep(time.Millisecond)
	}
	cancel()
	if <-gone || s.queued() != 0 {
		t.Fatal("a cancelled waiter was granted or stayed queued")
	}
}

// BenchmarkQueueHandOff: 1,000 requests queued for 8 slots drain, each
// running for no time; a release hands its slot to the next waiter.
func BenchmarkQueueHandOff(b *testing.B) {
	ctx := context.Background()
	for range b.N {
		b.StopTimer()
		s := newSlots(8, 1000)
		for range 8 {
			s.acquire(ctx, 1, 0)
		}
		var wg sync.WaitGroup
		for range 1000 {
			wg.Go(func() {
				if s.acquire(ctx, 1, time.Minute) {
					s.release(1)
				}
			})
		}
		time.Sleep(20 * time.Millisecond) // all are waiting
		b.StartTimer()
		for range 8 {
			s.release(1)
		}
		wg.Wait()
	}
}
