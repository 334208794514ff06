package admit

import (
	"context"
	"sync"
	"time"
)

// slots is a weighted semaphore with a bounded, first-come first-served
// queue whose waiters give up after a wait. A release hands the freed
// units to the waiters at the head of the queue that fit, in order, and
// wakes only those: a thousand waiters are not woken to fight over one
// slot. A request that finds the queue full is refused at once.
type slots struct {
	mu       sync.Mutex
	cap      int64
	used     int64
	maxQueue int
	queue    []*waiter
}

// waiter is a queued acquire; ready is closed when its units are granted.
type waiter struct {
	w     int64
	ready chan struct{}
}

// newSlots returns slots of capacity units, with room for queue waiters.
func newSlots(capacity int64, queue int) *slots {
	return &slots{cap: capacity, maxQueue: queue}
}

// acquire takes w units, waiting at most wait for them in the queue. A
// weight above the capacity never fits; a full queue refuses at once.
func (s *slots) acquire(ctx context.Context, w int64, wait time.Duration) bool {
	s.mu.Lock()
	if len(s.queue) == 0 && s.used+w <= s.cap {
		s.used += w
		s.mu.Unlock()
		return true
	}
	if w > s.cap || wait <= 0 || len(s.queue) >= s.maxQueue {
		s.mu.Unlock()
		return false
	}
	me := &waiter{w: w, ready: make(chan struct{})}
	s.queue = append(s.queue, me)
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-me.ready:
		return true
	case <-timer.C:
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case <-me.ready:
		return true // granted as the wait ended: the caller releases it
	default:
	}
	for i, q := range s.queue {
		if q == me {
			s.queue = append(s.queue[:i], s.queue[i+1:]...)
			break
		}
	}
	s.grant() // a large waiter leaving the head may let smaller ones in
	return false
}

// release returns w units and hands them on.
func (s *slots) release(w int64) {
	s.mu.Lock()
	s.used -= w
	s.grant()
	s.mu.Unlock()
}

// grant gives units to the waiters at the head of the queue while they
// fit. Under s.mu.
func (s *slots) grant() {
	for len(s.queue) > 0 && s.used+s.queue[0].w <= s.cap {
		q := s.queue[0]
		s.queue[0] = nil
		s.queue = s.queue[1:]
		s.used += q.w
		close(q.ready)
	}
}

func (s *slots) inUse() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}

func (s *slots) queued() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.queue)
}
