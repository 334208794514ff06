package sandbox

import (
	"bytes"
	"context"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/moatfn/moat/internal/testwasm"
)

// memoryAfterInit instantiates wasm without running _start and returns its
// linear memory: what the data segments wrote.
func memoryAfterInit(t *testing.T, wasm []byte) []byte {
	t.Helper()
	ctx := context.Background()
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer rt.Close(ctx)
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	// Satisfy the imports with stubs: only memory matters here.
	b := rt.NewHostModuleBuilder("wasi_snapshot_preview1")
	for _, f := range compiled.ImportedFunctions() {
		_, name, _ := f.Import()
		b.NewFunctionBuilder().WithGoModuleFunction(nopFunction{}, f.ParamTypes(), f.ResultTypes()).Export(name)
	}
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	mod, err := rt.InstantiateModule(ctx, compiled, wazero.NewModuleConfig().WithStartFunctions())
	if err != nil {
		t.Fatal(err)
	}
	mem, _ := mod.Memory().Read(0, mod.Memory().Size())
	return bytes.Clone(mem)
}

type nopFunction struct{}

func (nopFunction) Call(context.Context, api.Module, []uint64) {}

func TestMergeDataKeepsMemory(t *testing.T) {
	wasm := testwasm.Bytes(t, "kitchen")
	merged := mergeData(wasm)
	if bytes.Equal(merged, wasm) {
		t.Fatal("mergeData left a Go module unchanged")
	}
	before, _ := readDataCount(wasm)
	after, _ := readDataCount(merged)
	if after >= before/100 {
		t.Errorf("segments %d -> %d, want far fewer", before, after)
	}
	if !bytes.Equal(memoryAfterInit(t, wasm), memoryAfterInit(t, merged)) {
		t.Fatal("merged module initialises memory differently")
	}
	if again := mergeData(merged); !bytes.Equal(again, merged) {
		t.Error("mergeData is not idempotent")
	}
}

func TestMergeDataLeavesWhatItCannotRead(t *testing.T) {
	overlap := testwasm.Module(
		testwasm.Section(5, testwasm.Vec([]byte{0x00, 1})),
		testwasm.Section(11, testwasm.Vec(
			testwasm.ActiveData(0, []byte("abcd")),
			testwasm.ActiveData(2, []byte("XY")),
		)),
	)
	for name, wasm := range map[string][]byte{
		"overlap":   overlap,
		"not wasm":  []byte("hello"),
		"truncated": testwasm.MinimalCGI()[:30],
		"minimal":   testwasm.MinimalCGI(),
	} {
		if got := mergeData(wasm); !bytes.Equal(got, wasm) {
			t.Errorf("mergeData(%s) changed the module", name)
		}
	}
}

// readDataCount returns how many data segments wasm has.
func readDataCount(wasm []byte) (uint32, error) {
	for i := 8; i < len(wasm); {
		id := wasm[i]
		n, j, err := readU32(wasm, i+1)
		if err != nil {
			return 0, err
		}
		if id == sectionData {
			c, _, err := readU32(wasm, j)
			return c, err
		}
		i = j + int(n)
	}
	return 0, nil
}

func FuzzMergeData(f *testing.F) {
	f.Add(testwasm.MinimalCGI())
	f.Add(testwasm.Module(
		testwasm.Section(5, testwasm.Vec([]byte{0x00, 1})),
		testwasm.Section(11, testwasm.Vec(testwasm.ActiveData(0, []byte("ab")), testwasm.ActiveData(10, []byte("cd")))),
	))
	f.Fuzz(func(t *testing.T, wasm []byte) {
		merged := mergeData(wasm)
		if bytes.Equal(merged, wasm) {
			return
		}
		if _, err := readDataCount(merged); err != nil {
			t.Fatalf("merged module unreadable: %v", err)
		}
		if again := mergeData(merged); !bytes.Equal(again, merged) {
			t.Fatal("mergeData not idempotent")
		}
	})
}
