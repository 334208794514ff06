package admit

import (
	"context"
	"sync"
	"time"
)

// slots is a weighted semaphore whose waiters give up after a wait.
type slots struct {
	mu    sync.Mutex
	cap   int64
	used  int64
	freed chan struct{} // closed and replaced when capacity is released
}

func newSlots(capacity int64) *slots { return &slots{cap: capacity} }

// acquire takes w units, waiting at most wait for them. A weight above the
// capacity never fits.
func (s *slots) acquire(ctx context.Context, w int64, wait time.Duration) bool {
	var timer *time.Timer
	for {
		s.mu.Lock()
		if s.used+w <= s.cap {
			s.used += w
			s.mu.Unlock()
			return true
		}
		if w > s.cap || wait <= 0 {
			s.mu.Unlock()
			return false
		}
		if s.freed == nil {
			s.freed = make(chan struct{})
		}
		freed := s.freed
		s.mu.Unlock()
		if timer == nil {
			timer = time.NewTimer(wait)
			defer timer.Stop()
		}
		select {
		case <-freed:
		case <-timer.C:
			return false
		case <-ctx.Done():
			return false
		}
	}
}

func (s *slots) release(w int64) {
	s.mu.Lock()
	s.used -= w
	if s.freed != nil {
		close(s.freed)
		s.freed = nil
	}
	s.mu.Unlock()
}

func (s *slots) inUse() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.used
}
