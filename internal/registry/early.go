package registry

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	"github.com/moatfn/moat/internal/sandbox"
)

// hintsFile, under the module cache folder, lists the functions that were
// loaded when the node last ran, so that a restarted node can compile them
// while its store starts (Early). It is a hint: a function is only taken
// from it when its stored record names the same version, module and memory
// cap.
const hintsFile = "loaded.json"

// hint is a function that was loaded.
type hint struct {
	Fn      string `json:"fn"`
	Version string `json:"version"`
	Sum     string `json:"sum"` // the module's SHA-256
	Memory  int64  `json:"memory"`
}

// maxHints bounds what a start compiles ahead: the first functions of the
// file only.
const maxHints = 64

// Early compiles, from the sandbox's kept rewrites, the Go commands that
// were loaded when the node last ran, while the rest of the node starts.
// The registry takes each from it on the function's first load; Close
// drops what nobody took. A nil *Early holds nothing.
type Early struct {
	mu       sync.Mutex
	jobs     map[string]*earlyJob
	cancel   context.CancelFunc
	finished chan struct{}
	once     sync.Once
	taken    atomic.Int64
}

// Taken returns how many functions were taken from e.
func (e *Early) Taken() int64 {
	if e == nil {
		return 0
	}
	return e.taken.Load()
}

type earlyJob struct {
	hint    hint
	claimed atomic.Bool // by the compiling goroutine, or by a take before it
	done    chan struct{}
	mod     *sandbox.Module // nil when nothing was kept or it failed
}

// keptCompiler is what Early needs from the sandbox.
type keptCompiler interface {
	CompileKept(ctx context.Context, sum string, memory int64) (*sandbox.Module, bool, error)
}

// StartEarly reads the hints under cacheDir (the registry's module cache)
// and compiles them in the background, one at a time. Close it before the
// sandbox.
func StartEarly(log *slog.Logger, sb keptCompiler, cacheDir string) *Early {
	hints := readHints(cacheDir)
	if len(hints) == 0 {
		return nil
	}
	ctx, cancel := context.WithCancel(context.Background())
	e := &Early{jobs: map[string]*earlyJob{}, cancel: cancel, finished: make(chan struct{})}
	var order []*earlyJob
	for _, h := range hints {
		if _, dup := e.jobs[h.Fn]; dup {
			continue
		}
		j := &earlyJob{hint: h, done: make(chan struct{})}
		e.jobs[h.Fn] = j
		order = append(order, j)
	}
	order[0].claimed.Store(true) // the first is always compiled here
	go func() {
		defer close(e.finished)
		for i, j := range order {
			if i > 0 && !j.claimed.CompareAndSwap(false, true) {
				continue // taken before its turn: its caller compiles it
			}
			if ctx.Err() == nil {
				m, ok, err := sb.CompileKept(ctx, j.hint.Sum, j.hint.Memory)
				if err != nil {
					log.WarnContext(ctx, "early compile", slog.String("fn", j.hint.Fn), slog.Any("err", err))
				} else if ok {
					j.mod = m
				}
			}
			close(j.done)
		}
	}()
	return e
}

// take returns the module compiled ahead for fn if it is the one asked for,
// waiting for it if it is being compiled; else nil: also when its turn has
// not come, so that a function asked for does not wait behind others.
func (e *Early) take(ctx context.Context, fn, version, sum string, memory int64) *sandbox.Module {
	if e == nil {
		return nil
	}
	e.mu.Lock()
	j := e.jobs[fn]
	delete(e.jobs, fn)
	e.mu.Unlock()
	if j == nil {
		return nil
	}
	if j.claimed.CompareAndSwap(false, true) {
		close(j.done) // never compiled here
		return nil
	}
	match := j.hint == hint{Fn: fn, Version: version, Sum: sum, Memory: memory}
	if !match {
		go j.drop()
		return nil
	}
	select {
	case <-j.done:
	case <-ctx.Done():
		go j.drop()
		return nil
	}
	if j.mod != nil {
		e.taken.Add(1)
	}
	return j.mod
}

func (j *earlyJob) drop() {
	<-j.done
	if j.mod != nil {
		j.mod.Close(context.Background())
	}
}

// Close stops compiling, waits for the compile under way and closes every
// module nobody took.
func (e *Early) Close() {
	if e == nil {
		return
	}
	e.once.Do(func() {
		e.cancel()
		<-e.finished
		e.mu.Lock()
		jobs := e.jobs
		e.jobs = map[string]*earlyJob{}
		e.mu.Unlock()
		for _, j := range jobs {
			j.drop()
		}
	})
}

// readHints reads the hints file; anything unreadable is no hint.
func readHints(cacheDir string) []hint {
	if cacheDir == "" {
		return nil
	}
	f, err := os.Open(filepath.Join(cacheDir, hintsFile))
	if err != nil {
		return nil
	}
	defer f.Close()
	const maxSize = 1 << 20
	b, err := io.ReadAll(io.LimitReader(f, maxSize+1))
	if err != nil || len(b) > maxSize {
		return nil
	}
	var hints []hint
	if json.Unmarshal(b, &hints) != nil {
		return nil
	}
	if len(hints) > maxHints {
		hints = hints[:maxHints]
	}
	return hints
}

// writeHints records the loaded functions for the next start.
func (r *Registry) writeHints() {
	if r.cache == "" {
		return
	}
	r.mu.Lock()
	hints := make([]hint, 0, len(r.loaded))
	for _, l := range r.loaded {
		hints = append(hints, hint{Fn: l.Name, Version: l.Version, Sum: l.sum, Memory: int64(l.Manifest.Limits.Memory)})
	}
	r.mu.Unlock()
	b, err := json.Marshal(hints)
	if err != nil {
		return
	}
	r.hintsMu.Lock()
	defer r.hintsMu.Unlock()
	r.writeCache(filepath.Join(r.cache, hintsFile), b)
}
