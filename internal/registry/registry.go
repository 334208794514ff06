// Package registry keeps the deployed functions: every version of every
// function, immutable and named by content hash, with the manifest in a KV
// bucket and the module in the object store, and the active version of each
// compiled and ready to run.
package registry

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/jsrt"
	"github.com/moatfn/moat/internal/manifest"
	"github.com/moatfn/moat/internal/sandbox"
	"github.com/moatfn/moat/internal/store"
	"github.com/moatfn/moat/internal/validate"
)

// ErrNotFound reports that no function (or version) is deployed under the name.
var ErrNotFound = errors.New("function not found")

// ErrConflict reports concurrent changes to the same function that kept
// winning over this one; retry.
var ErrConflict = errors.New("function changed concurrently")

// KeepVersions is how many versions of a function are kept for rollback.
const KeepVersions = 20

// Version is one immutable deployment of a function.
type Version struct {
	ID          string             `json:"id"` // content hash of manifest and files
	Manifest    *manifest.Manifest `json:"manifest"`
	Files       map[string]string  `json:"files"` // path in the manifest's folder -> SHA-256
	ModuleSize  int64              `json:"module_size"`
	Deployed    time.Time          `json:"deployed"`
	DeployedBy  string             `json:"deployed_by"`
	CompileTook time.Duration      `json:"compile_ns"`
	// Checks is what the deploy's checks found (signature, dependencies,
	// advisories); nil when the node makes none.
	Checks       json.RawMessage `json:"checks,omitempty"`
	manifestYAML []byte
}

// Upload is what a deploy carries.
type Upload struct {
	Manifest  []byte            // moat.yaml as written
	Files     map[string][]byte // the files it names, by path
	Signature []byte            // moat.sig, if the deployer signed
	Actor     string
}

// Function is a function's record: its versions, oldest first, and the one
// that serves.
type Function struct {
	Name     string    `json:"name"`
	Active   string    `json:"active"`
	Versions []Version `json:"versions"`
	// Disabled, when not empty, says why the function refuses every
	// invocation (a re-scan found a blocking advisory); a deploy or a
	// rollback clears it.
	Disabled string `json:"disabled,omitempty"`
	// Enabled is when a disabled function was last enabled again: the
	// dormant policy counts idleness from then too.
	Enabled time.Time `json:"enabled,omitzero"`
}

// ActiveVersion returns the serving version.
func (f *Function) ActiveVersion() *Version {
	for i := range f.Versions {
		if f.Versions[i].ID == f.Active {
			return &f.Versions[i]
		}
	}
	return nil
}

// compiler is what the registry needs from the sandbox.
type compiler interface {
	Compile(ctx context.Context, wasm []byte, memory int64, env []string) (*sandbox.Module, error)
	CompileInit(ctx context.Context, wasm []byte, memory int64, env []string, initInput []byte) (*sandbox.Module, error)
	keptCompiler
}

// compile compiles a function's code: its WebAssembly module, or for a
// JavaScript function the runtime the binary carries, initialised with
// the function's bundle (docs/javascript.md).
func (r *Registry) compile(ctx context.Context, m *manifest.Manifest, code []byte) (*sandbox.Module, error) {
	if m.JavaScript() {
		rt, err := jsrt.Module()
		if err != nil {
			return nil, err
		}
		return r.sandbox.CompileInit(ctx, rt, int64(m.Limits.Memory), m.DeclaredEnv(), code)
	}
	return r.sandbox.Compile(ctx, code, int64(m.Limits.Memory), m.DeclaredEnv())
}

// Registry is safe for concurrent use.
type Registry struct {
	log     *slog.Logger
	kv      jetstream.KeyValue
	objects jetstream.ObjectStore
	sandbox compiler
	now     func() time.Time
	cache   string // folder of module files by SHA-256, rebuilt from the store; "" for none

	// Check, if set, vets a deploy whose manifest and module are valid
	// (signature, dependencies) and readies what its grants need (KV
	// buckets) before the version is stored. Its result is kept with the
	// version; an error refuses the deploy.
	Check func(ctx context.Context, m *manifest.Manifest, up *Upload) (json.RawMessage, error)

	mu      sync.Mutex
	loaded  map[string]*Loaded   // active version of each function, compiled
	loads   map[string]*loadLock // functions being loaded, while anyone waits on one
	missing map[string]time.Time // names the store lately had no function for
	swept   time.Time            // missing's last sweep
	early   *Early
	hintsMu sync.Mutex
}

// UseEarly makes the registry take functions from e, compiled while the
// node started, on their first load.
func (r *Registry) UseEarly(e *Early) { r.early = e }

// New returns a Registry over a KV bucket (function records) and an object
// store (files). cacheDir, if not "", keeps a local copy of each module,
// checked against its SHA-256 on every read, so that a restarted node does
// not fetch modules from the store again.
func New(log *slog.Logger, kv jetstream.KeyValue, objects jetstream.ObjectStore, sb compiler, cacheDir string) *Registry {
	return &Registry{
		cache:   cacheDir,
		log:     log.With("component", "registry"),
		kv:      kv,
		objects: objects,
		sandbox: sb,
		now:     time.Now,
		loaded:  map[string]*Loaded{},
		loads:   map[string]*loadLock{},
		missing: map[string]time.Time{},
	}
}

// Loaded is a function's active version, compiled. Acquire it for each use
// and Release it after: a replaced version is closed when its last user
// releases it.
type Loaded struct {
	Name     string
	Version  string
	Manifest *manifest.Manifest
	Module   *sandbox.Module
	Schema   *validate.Schema // the input schema, nil when none is declared
	Disabled string           // why the function is disabled; "" when it serves

	sum     string // the module's SHA-256
	mu      sync.Mutex
	users   int
	retired bool
}

// Release ends one use of l.
func (l *Loaded) Release() {
	l.mu.Lock()
	l.users--
	closeNow := l.retired && l.users == 0
	l.mu.Unlock()
	if closeNow {
		l.Module.Close(context.Background())
	}
}

func (l *Loaded) retire() {
	l.mu.Lock()
	l.retired = true
	closeNow := l.users == 0
	l.mu.Unlock()
	if closeNow {
		l.Module.Close(context.Background())
	}
}

// Deploy validates and stores a new version of the function that
// up.Manifest describes, compiles it and makes it active. up.Files holds
// the manifest's module and any other file it names, by their paths in the
// manifest. Deploying the same content again makes that version active
// without storing anything new.
func (r *Registry) Deploy(ctx context.Context, up *Upload) (*Version, error) {
	manifestSrc, files, actor := up.Manifest, up.Files, up.Actor
	m, err := manifest.Parse(manifestSrc)
	if err != nil {
		return nil, err
	}
	named := m.Files()
	for _, p := range named {
		if _, ok := files[p]; !ok {
			return nil, fmt.Errorf("%w: manifest names %s but the deploy does not carry it", ErrBadDeploy, p)
		}
	}
	for p := range files {
		if !slices.Contains(named, p) {
			return nil, fmt.Errorf("%w: file %s is not named by the manifest", ErrBadDeploy, p)
		}
	}
	schema, err := compileSchema(m, files[m.Input.Schema])
	if err != nil {
		return nil, err
	}
	start := r.now()
	mod, err := r.compile(ctx, m, files[m.Module])
	if err != nil {
		return nil, fmt.Errorf("%s: %w", m.Module, err)
	}
	var checks json.RawMessage
	if r.Check != nil {
		if checks, err = r.Check(ctx, m, up); err != nil {
			mod.Close(ctx)
			return nil, err
		}
	}
	v := Version{
		Checks:       checks,
		Manifest:     m,
		Files:        map[string]string{},
		ModuleSize:   int64(len(files[m.Module])),
		Deployed:     r.now().UTC(),
		DeployedBy:   actor,
		CompileTook:  r.now().Sub(start),
		manifestYAML: manifestSrc,
	}
	h := sha256.New()
	h.Write(manifestSrc)
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		sum := sha256.Sum256(files[p])
		v.Files[p] = hex.EncodeToString(sum[:])
		fmt.Fprintf(h, "\x00%s\x00%x", p, sum)
	}
	v.ID = hex.EncodeToString(h.Sum(nil))[:16]

	for _, p := range paths {
		if err := r.putObject(ctx, objectName(m.Name, v.ID, p), files[p]); err != nil {
			mod.Close(ctx)
			return nil, err
		}
	}
	if err := r.putObject(ctx, objectName(m.Name, v.ID, manifest.FileName), manifestSrc); err != nil {
		mod.Close(ctx)
		return nil, err
	}
	stored, err := r.update(ctx, m.Name, func(f *Function) error {
		if i := slices.IndexFunc(f.Versions, func(o Version) bool { return o.ID == v.ID }); i >= 0 {
			if checks != nil {
				f.Versions[i].Checks = checks // checked again, against today's advisories
			}
			v = f.Versions[i] // redeploy of identical content
		} else {
			f.Versions = append(f.Versions, v)
		}
		f.Active = v.ID
		f.Disabled = ""
		return nil
	})
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	if r.cache != "" {
		r.writeCache(filepath.Join(r.cache, v.Files[m.Module]+".wasm"), files[m.Module])
	}
	r.install(&Loaded{Name: m.Name, Version: v.ID, Manifest: v.Manifest, Module: mod, Schema: schema, sum: v.Files[m.Module]})
	r.prune(ctx, stored)
	return &v, nil
}

// compileSchema compiles the manifest's input schema, if it names one.
func compileSchema(m *manifest.Manifest, doc []byte) (*validate.Schema, error) {
	if m.Input.Schema == "" {
		return nil, nil
	}
	s, err := validate.Compile(doc)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrBadDeploy, m.Input.Schema, err)
	}
	return s, nil
}

// ErrBadDeploy reports a deploy whose files do not match its manifest.
var ErrBadDeploy = errors.New("bad deploy")

// objectChunk is the object store's chunk size: large chunks make fewer
// messages to fetch, within NATS's default 1MiB message limit.
const objectChunk = 512 << 10

func objectName(fn, version, path string) string { return fn + "/" + version + "/" + path }

// module returns the module of version v of fn, from the local cache when it
// holds an intact copy, else from the store (refilling the cache).
func (r *Registry) module(ctx context.Context, fn string, v *Version) ([]byte, error) {
	sum := v.Files[v.Manifest.Module]
	var cached string
	if r.cache != "" && len(sum) == 64 {
		cached = filepath.Join(r.cache, sum+".wasm")
		if b, err := os.ReadFile(cached); err == nil {
			if got := sha256.Sum256(b); hex.EncodeToString(got[:]) == sum {
				return b, nil
			}
		}
	}
	wasm, err := r.objects.GetBytes(ctx, objectName(fn, v.ID, v.Manifest.Module))
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", fn, v.ID, err)
	}
	if got := sha256.Sum256(wasm); hex.EncodeToString(got[:]) != sum {
		return nil, fmt.Errorf("load %s %s: module does not match its recorded SHA-256", fn, v.ID)
	}
	if cached != "" {
		r.writeCache(cached, wasm)
	}
	return wasm, nil
}

// writeCache writes a cache file atomically; a failure only costs a fetch.
func (r *Registry) writeCache(path string, b []byte) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return
	}
	_, err = tmp.Write(b)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		os.Remove(tmp.Name())
	}
}

// Preload compiles the active version of every function, so that the first
// request after a start does not wait for it. Failures are logged; the
// function is then loaded on its first request.
func (r *Registry) Preload(ctx context.Context) {
	fns, err := r.List(ctx)
	if err != nil {
		r.log.WarnContext(ctx, "preload", slog.Any("err", err))
		return
	}
	for _, f := range fns {
		l, err := r.Acquire(ctx, f.Name)
		if ctx.Err() != nil {
			return // the node is stopping
		}
		if err != nil {
			r.log.WarnContext(ctx, "preload", slog.String("fn", f.Name), slog.Any("err", err))
			continue
		}
		l.Release()
	}
}

func (r *Registry) putObject(ctx context.Context, name string, b []byte) error {
	meta := jetstream.ObjectMeta{Name: name, Opts: &jetstream.ObjectMetaOptions{ChunkSize: objectChunk}}
	if _, err := r.objects.Put(ctx, meta, bytes.NewReader(b)); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	return nil
}

// update applies change to the stored record of fn with compare-and-set,
// creating the record if absent and retrying from a fresh read when another
// writer got in between. It fails with ErrConflict if that keeps happening.
func (r *Registry) update(ctx context.Context, fn string, change func(*Function) error) (*Function, error) {
	var f *Function
	err := store.Modify(ctx, r.kv, fn, 5, func(cur []byte) ([]byte, error) {
		f = &Function{Name: fn}
		if cur != nil {
			if err := json.Unmarshal(cur, f); err != nil {
				return nil, fmt.Errorf("decode %s: %w", fn, err)
			}
		}
		if err := change(f); err != nil {
			return nil, err
		}
		return json.Marshal(f)
	})
	if errors.Is(err, store.ErrContention) {
		return nil, fmt.Errorf("%s: %w", fn, ErrConflict)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// prune drops the oldest versions beyond KeepVersions, never the active one.
func (r *Registry) prune(ctx context.Context, f *Function) {
	if len(f.Versions) <= KeepVersions {
		return
	}
	var drop []Version
	_, err := r.update(ctx, f.Name, func(f *Function) error {
		drop = nil
		for len(f.Versions) > KeepVersions {
			i := 0
			if f.Versions[0].ID == f.Active {
				i = 1
			}
			drop = append(drop, f.Versions[i])
			f.Versions = slices.Delete(f.Versions, i, i+1)
		}
		return nil
	})
	if err != nil {
		r.log.WarnContext(ctx, "prune versions", slog.String("fn", f.Name), slog.Any("err", err))
		return
	}
	for _, v := range drop {
		r.deleteObjects(ctx, f.Name, v)
	}
}

func (r *Registry) deleteObjects(ctx context.Context, fn string, v Version) {
	for p := range v.Files {
		r.objects.Delete(ctx, objectName(fn, v.ID, p))
	}
	r.objects.Delete(ctx, objectName(fn, v.ID, manifest.FileName))
}

// install makes l the active compiled version of its function.
func (r *Registry) install(l *Loaded) {
	r.mu.Lock()
	old := r.loaded[l.Name]
	r.loaded[l.Name] = l
	delete(r.missing, l.Name)
	r.mu.Unlock()
	if old != nil && old != l {
		old.retire()
	}
	r.writeHints()
}

// Get returns the function's record.
func (r *Registry) Get(ctx context.Context, fn string) (*Function, error) {
	if !manifest.ValidName(fn) {
		// Never hand the store a key it was not built for: names arrive
		// from request paths.
		return nil, fmt.Errorf("%.70q: %w", fn, ErrNotFound)
	}
	e, err := r.kv.Get(ctx, fn)
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, fmt.Errorf("%s: %w", fn, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", fn, err)
	}
	f := &Function{}
	if err := json.Unmarshal(e.Value(), f); err != nil {
		return nil, fmt.Errorf("decode %s: %w", fn, err)
	}
	return f, nil
}

// List returns every function's record, by name.
func (r *Registry) List(ctx context.Context) ([]*Function, error) {
	keys, err := r.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("list functions: %w", err)
	}
	var names []string
	for k := range keys.Keys() {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]*Function, 0, len(names))
	for _, n := range names {
		f, err := r.Get(ctx, n)
		if errors.Is(err, ErrNotFound) {
			continue // removed meanwhile
		}
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return out, nil
}

// Acquire returns the active compiled version of fn, loading and compiling
// it from the store on first use (from the compilation cache after a
// restart). The caller must Release it.
func (r *Registry) Acquire(ctx context.Context, fn string) (*Loaded, error) {
	if !manifest.ValidName(fn) {
		return nil, fmt.Errorf("%.70q: %w", fn, ErrNotFound)
	}
	if l := r.acquireLoaded(fn, ""); l != nil {
		return l, nil
	}
	if r.knownMissing(fn) {
		return nil, fmt.Errorf("%s: %w", fn, ErrNotFound)
	}
	// One load per function at a time.
	ll := r.lockLoad(fn)
	defer r.unlockLoad(fn, ll)
	f, err := r.Get(ctx, fn)
	if errors.Is(err, ErrNotFound) {
		r.noteMissing(fn)
	}
	if err != nil {
		return nil, err
	}
	if l := r.acquireLoaded(fn, f.Active); l != nil {
		return l, nil
	}
	v := f.ActiveVersion()
	if v == nil {
		return nil, fmt.Errorf("%s: active version %s: %w", fn, f.Active, ErrNotFound)
	}
	start := r.now()
	mod, fetched, err := r.load(ctx, fn, v)
	if err != nil {
		return nil, err
	}
	r.log.InfoContext(ctx, "function loaded", slog.String("fn", fn), slog.String("version", v.ID),
		slog.Duration("fetch", fetched.Sub(start)), slog.Duration("compile", r.now().Sub(fetched)))
	var schemaDoc []byte
	if v.Manifest.Input.Schema != "" {
		if schemaDoc, err = r.objects.GetBytes(ctx, objectName(fn, v.ID, v.Manifest.Input.Schema)); err != nil {
			mod.Close(ctx)
			return nil, fmt.Errorf("load %s %s schema: %w", fn, v.ID, err)
		}
	}
	schema, err := compileSchema(v.Manifest, schemaDoc)
	if err != nil {
		mod.Close(ctx)
		return nil, err
	}
	l := &Loaded{Name: fn, Version: v.ID, Manifest: v.Manifest, Module: mod, Schema: schema, Disabled: f.Disabled, sum: v.Files[v.Manifest.Module]}
	r.install(l)
	if l := r.acquireLoaded(fn, v.ID); l != nil {
		return l, nil
	}
	return r.Acquire(ctx, fn) // replaced meanwhile by a deploy
}

// load compiles version v of fn: the module compiled while the node
// started, else the sandbox's kept rewrite of a Go command, else the module
// from the cache or the store, compiled. fetched is when the module was at
// hand.
func (r *Registry) load(ctx context.Context, fn string, v *Version) (mod *sandbox.Module, fetched time.Time, err error) {
	sum, memory := v.Files[v.Manifest.Module], int64(v.Manifest.Limits.Memory)
	if mod = r.early.take(ctx, fn, v.ID, sum, memory); mod != nil {
		return mod, r.now(), nil
	}
	if mod, ok, err := r.sandbox.CompileKept(ctx, sum, memory); err != nil {
		return nil, time.Time{}, fmt.Errorf("compile %s %s: %w", fn, v.ID, err)
	} else if ok {
		return mod, r.now(), nil
	}
	wasm, err := r.module(ctx, fn, v)
	if err != nil {
		return nil, time.Time{}, err
	}
	fetched = r.now()
	if mod, err = r.compile(ctx, v.Manifest, wasm); err != nil {
		return nil, time.Time{}, fmt.Errorf("compile %s %s: %w", fn, v.ID, err)
	}
	return mod, fetched, nil
}

// acquireLoaded returns the loaded function, acquired, if it is loaded (at

// A name the store had no function for is answered from memory for
// missingFor: requests for names nobody deployed are a stranger's to send,
// and each would otherwise be a read of the store. At most maxMissing names
// are kept; past that, and until a sweep makes room, they are read again.
// A deploy here clears its name at once; one on another node of a cluster
// is seen within missingFor.
const (
	missingFor = time.Second
	maxMissing = 4096
)

func (r *Registry) knownMissing(fn string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	at, ok := r.missing[fn]
	return ok && r.now().Sub(at) < missingFor
}

func (r *Registry) noteMissing(fn string) {
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.missing) >= maxMissing && now.Sub(r.swept) >= missingFor {
		// One sweep a period, however many names come: a sweep per name
		// would hold the lock every invocation takes.
		r.swept = now
		for k, at := range r.missing {
			if now.Sub(at) >= missingFor {
				delete(r.missing, k)
			}
		}
	}
	if len(r.missing) < maxMissing {
		r.missing[fn] = now
	}
}

// loadLock serialises the loads of one function. It stays in loads while
// someone holds or waits for it, and no longer: names that arrive in
// requests do not grow the map.
type loadLock struct {
	sync.Mutex
	waiting int // under Registry.mu
}

func (r *Registry) lockLoad(fn string) *loadLock {
	r.mu.Lock()
	ll := r.loads[fn]
	if ll == nil {
		ll = &loadLock{}
		r.loads[fn] = ll
	}
	ll.waiting++
	r.mu.Unlock()
	ll.Lock()
	return ll
}

func (r *Registry) unlockLoad(fn string, ll *loadLock) {
	ll.Unlock()
	r.mu.Lock()
	if ll.waiting--; ll.waiting == 0 {
		delete(r.loads, fn)
	}
	r.mu.Unlock()
}

// version, unless version is "").
func (r *Registry) acquireLoaded(fn, version string) *Loaded {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.loaded[fn]
	if l == nil || (version != "" && l.Version != version) {
		return nil
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.retired {
		return nil
	}
	l.users++
	return l
}

// SetDisabled disables fn with a reason, or enables it again with "".
func (r *Registry) SetDisabled(ctx context.Context, fn, reason string) error {
	_, err := r.update(ctx, fn, func(f *Function) error {
		if len(f.Versions) == 0 {
			return fmt.Errorf("%s: %w", fn, ErrNotFound)
		}
		if reason == "" && f.Disabled != "" {
			f.Enabled = time.Now().UTC()
		}
		f.Disabled = reason
		return nil
	})
	if err != nil {
		return err
	}
	r.unload(fn)
	return nil
}

// SetChecks replaces what the checks found about one version of fn.
func (r *Registry) SetChecks(ctx context.Context, fn, version string, checks json.RawMessage) error {
	_, err := r.update(ctx, fn, func(f *Function) error {
		i := slices.IndexFunc(f.Versions, func(o Version) bool { return o.ID == version })
		if i < 0 {
			return fmt.Errorf("%s version %s: %w", fn, version, ErrNotFound)
		}
		f.Versions[i].Checks = checks
		return nil
	})
	return err
}

// Rollback makes an earlier version of fn active again.
func (r *Registry) Rollback(ctx context.Context, fn, version string) (*Version, error) {
	var v Version
	f, err := r.update(ctx, fn, func(f *Function) error {
		if len(f.Versions) == 0 {
			return fmt.Errorf("%s: %w", fn, ErrNotFound)
		}
		i := slices.IndexFunc(f.Versions, func(o Version) bool { return o.ID == version })
		if i < 0 {
			return fmt.Errorf("%s version %s: %w", fn, version, ErrNotFound)
		}
		v = f.Versions[i]
		f.Active = v.ID
		f.Disabled = ""
		return nil
	})
	if err != nil {
		return nil, err
	}
	r.unload(f.Name)
	return &v, nil
}

// Remove deletes fn, every version and file of it.
func (r *Registry) Remove(ctx context.Context, fn string) error {
	f, err := r.Get(ctx, fn)
	if err != nil {
		return err
	}
	if err := r.kv.Purge(ctx, fn); err != nil {
		return fmt.Errorf("remove %s: %w", fn, err)
	}
	r.unload(fn)
	for _, v := range f.Versions {
		r.deleteObjects(ctx, fn, v)
	}
	return nil
}

func (r *Registry) unload(fn string) {
	r.mu.Lock()
	old := r.loaded[fn]
	delete(r.loaded, fn)
	r.mu.Unlock()
	if old != nil {
		old.retire()
	}
	r.writeHints()
}

// Close releases every compiled function.
func (r *Registry) Close() {
	r.mu.Lock()
	all := r.loaded
	r.loaded = map[string]*Loaded{}
	r.mu.Unlock()
	r.early.Close()
	for _, l := range all {
		l.retire()
	}
}
