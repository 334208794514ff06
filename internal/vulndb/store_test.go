package vulndb

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/moatfn/moat/internal/store"
)

// openNATS starts a real, embedded NATS with JetStream in dir, stopped
// when the test ends if not before.
func openNATS(tb testing.TB, dir string) *store.Store {
	tb.Helper()
	st, err := store.Open(context.Background(), slog.New(slog.NewTextHandler(io.Discard, nil)), store.Config{Dir: dir})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(st.Close)
	return st
}

func openStore(tb testing.TB, st *store.Store) *Store {
	tb.Helper()
	s, err := OpenStore(context.Background(), st)
	if err != nil {
		tb.Fatalf("OpenStore: %v", err)
	}
	return s
}

// objectNames lists the objects in the database's bucket.
func objectNames(tb testing.TB, st *store.Store) []string {
	tb.Helper()
	obs, err := st.Objects(context.Background(), bucket)
	if err != nil {
		tb.Fatal(err)
	}
	list, err := obs.List(context.Background())
	if err != nil && !errors.Is(err, jetstream.ErrNoObjectsFound) {
		tb.Fatal(err)
	}
	var names []string
	for _, info := range list {
		names = append(names, info.Name)
	}
	slices.Sort(names)
	return names
}

func TestStoreImport(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st := openNATS(t, dir)
	s := openStore(t, st)
	if s.Current().Len() != 0 || s.Current().Match("Go", "stdlib", "go1.20.1") != nil {
		t.Fatal("a new Store's database is not empty")
	}
	if got := s.Status(); !got.ImportedAt.IsZero() || got.Total != 0 || len(got.Counts) != 0 {
		t.Fatalf("a new Store's Status = %+v", got)
	}

	first := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return first }
	got, err := s.Import(ctx, filepath.Join(osvDir, "Go"))
	if err != nil {
		t.Fatalf("Import(Go): %v", err)
	}
	want := Status{ImportedAt: first, Counts: map[string]int{"Go": 43}, Total: 43}
	if !statusEqual(got, want) || !statusEqual(s.Status(), want) {
		t.Fatalf("Import(Go) = %+v, Status() = %+v, want %+v", got, s.Status(), want)
	}
	if f := s.Current().Match("Go", "stdlib", "go1.20.1"); len(f) != 9 {
		t.Fatalf("after Import(Go), Match(stdlib go1.20.1) found %d, want 9", len(f))
	}

	// A second import merges into the first.
	second := first.Add(time.Hour)
	s.now = func() time.Time { return second }
	if _, err := s.Import(ctx, filepath.Join(osvDir, "npm", "all.zip")); err != nil {
		t.Fatalf("Import(npm/all.zip): %v", err)
	}
	want = Status{ImportedAt: second, Counts: map[string]int{"Go": 43, "npm": 10}, Total: 53}
	if !statusEqual(s.Status(), want) {
		t.Fatalf("Status() = %+v, want %+v", s.Status(), want)
	}
	// The replaced object is gone.
	if names := objectNames(t, st); len(names) != 1 {
		t.Fatalf("objects after two imports: %q, want one", names)
	}
	encoded, _ := s.Current().Encode()

	// Another Store on the same NATS sees it.
	if other := openStore(t, st); !statusEqual(other.Status(), want) {
		t.Fatalf("second Store's Status() = %+v, want %+v", other.Status(), want)
	}

	// So does one after a restart.
	st.Close()
	st = openNATS(t, dir)
	s = openStore(t, st)
	if !statusEqual(s.Status(), want) {
		t.Fatalf("after restart, Status() = %+v, want %+v", s.Status(), want)
	}
	if b, _ := s.Current().Encode(); !bytes.Equal(b, encoded) {
		t.Fatal("after restart, the database differs")
	}

	// The Status map is the caller's.
	s.Status().Counts["Go"] = 0
	if s.Status().Counts["Go"] != 43 {
		t.Fatal("changing Status().Counts changed the Store")
	}
}

func statusEqual(a, b Status) bool {
	return a.ImportedAt.Equal(b.ImportedAt) && a.Total == b.Total && maps.Equal(a.Counts, b.Counts)
}

func TestStoreImportFailureKeepsCurrent(t *testing.T) {
	ctx := context.Background()
	st := openNATS(t, t.TempDir())
	s := openStore(t, st)
	if _, err := s.Import(ctx, filepath.Join(osvDir, "PyPI")); err != nil {
		t.Fatal(err)
	}
	before, status := s.Current(), s.Status()
	objects := objectNames(t, st)

	dir := t.TempDir()
	copyRecords(t, "npm", dir)
	if err := os.WriteFile(filepath.Join(dir, "zz-bad.json"), []byte(`{"id":"GHSA-bad","modified":"2024-01-01T00:00:00Z","affected":[{"package":{"ecosystem":"npm","name":"x"},"ranges":[{"type":"NPM","events":[{"introduced":"0"}]}]}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, path := range map[string]string{
		"malformed record": dir,
		"unsafe zip":       writeZip(t, t.TempDir(), "evil.zip", zipEntry{"GHSA-35jh-r3h4-6jhm.json", readTestdata(t, "npm/GHSA-35jh-r3h4-6jhm.json")}, zipEntry{"../../evil.json", []byte("{}")}),
		"missing":          filepath.Join(dir, "missing.zip"),
	} {
		if got, err := s.Import(ctx, path); err == nil {
			t.Fatalf("Import(%s) = %+v, want an error", name, got)
		}
		if s.Current() != before || !statusEqual(s.Status(), status) {
			t.Fatalf("Import(%s) failed but changed the current database: %+v", name, s.Status())
		}
		if got := objectNames(t, st); !slices.Equal(got, objects) {
			t.Fatalf("Import(%s) failed but left objects %q, had %q", name, got, objects)
		}
	}
	// A new Store still loads the last good database.
	if other := openStore(t, st); !statusEqual(other.Status(), status) {
		t.Fatalf("second Store's Status() = %+v, want %+v", other.Status(), status)
	}
}

// TestStoreConflict has two Stores on one NATS, as two nodes of a cluster
// would be: the second's import, based on an older pointer, is merged into
// the first's rather than overwriting it.
func TestStoreConflict(t *testing.T) {
	ctx := context.Background()
	st := openNATS(t, t.TempDir())
	a, b := openStore(t, st), openStore(t, st)
	if _, err := a.Import(ctx, filepath.Join(osvDir, "Go")); err != nil {
		t.Fatal(err)
	}
	got, err := b.Import(ctx, filepath.Join(osvDir, "PyPI"))
	if err != nil {
		t.Fatalf("b.Import after a.Import: %v", err)
	}
	want := map[string]int{"Go": 43, "PyPI": 10}
	if !maps.Equal(got.Counts, want) || !maps.Equal(openStore(t, st).Status().Counts, want) {
		t.Fatalf("b.Import = %v, want both imports: %v", got.Counts, want)
	}
	if names := objectNames(t, st); len(names) != 1 {
		t.Fatalf("objects: %q, want one", names)
	}
	// a is behind now; its next import merges too.
	if _, err := a.Import(ctx, filepath.Join(osvDir, "npm")); err != nil {
		t.Fatal(err)
	}
	if got := a.Status().Counts; !maps.Equal(got, map[string]int{"Go": 43, "PyPI": 10, "npm": 10}) {
		t.Fatalf("a.Status().Counts = %v", got)
	}
}

func TestStoreRefusesBadObject(t *testing.T) {
	ctx := context.Background()
	st := openNATS(t, t.TempDir())
	s := openStore(t, st)
	if _, err := s.Import(ctx, filepath.Join(osvDir, "npm")); err != nil {
		t.Fatal(err)
	}
	obs, err := st.Objects(ctx, bucket)
	if err != nil {
		t.Fatal(err)
	}
	name := s.cur.Load().object
	if _, err := obs.PutBytes(ctx, name, []byte("not a database")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(ctx, st); err == nil || !errors.Is(err, ErrInvalidDB) {
		t.Fatalf("OpenStore with a replaced object = %v, want ErrInvalidDB", err)
	}
	if err := obs.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenStore(ctx, st); err == nil {
		t.Fatal("OpenStore with the object missing succeeded")
	}
}

func TestStoreConcurrentUse(t *testing.T) {
	ctx := context.Background()
	st := openNATS(t, t.TempDir())
	s := openStore(t, st)
	if _, err := s.Import(ctx, filepath.Join(osvDir, "Go")); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				db := s.Current()
				if f := db.Match("Go", "golang.org/x/text", "v0.3.5"); len(f) != 3 {
					t.Errorf("Match during imports found %d, want 3", len(f))
					return
				}
				db.Match("PyPI", "jinja2", "2.10")
				db.Match("npm", "lodash", "4.17.15")
				_ = s.Status()
			}
		})
	}
	for _, eco := range []string{"npm", "PyPI", "Go"} {
		if _, err := s.Import(ctx, filepath.Join(osvDir, eco, "all.zip")); err != nil {
			t.Error(err)
		}
	}
	close(stop)
	wg.Wait()
	if got := s.Status().Counts; !maps.Equal(got, map[string]int{"Go": 43, "npm": 10, "PyPI": 10}) {
		t.Fatalf("Counts = %v", got)
	}
}

func TestNilStore(t *testing.T) {
	var s *Store
	if db := s.Current(); db == nil || db.Len() != 0 || db.Match("Go", "stdlib", "go1.20.1") != nil {
		t.Fatal("nil Store's Current is not an empty DB")
	}
	if st := s.Status(); st.Total != 0 || st.Counts == nil {
		t.Fatalf("nil Store's Status = %+v", st)
	}
}
