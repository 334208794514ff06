package sandbox

import (
	"context"
	"encoding/binary"
	"slices"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/imports/wasi_snapshot_preview1"
)

// A request's environment reaches the guest through WASI environ_get and
// environ_sizes_get served from the invocation's context, instead of
// wazero's ModuleConfig.WithEnv: that copies the whole configuration for
// every variable, which was a fifth of the node's cost per invocation of
// the smallest guest (BenchmarkGatewayMinimal).

type environKey struct{}

// environ is a request's environment, encoded once: "K=V\x00" strings.
type environ struct {
	blob []byte
	ends []uint32 // end of each string in blob, after its NUL
}

// newEnviron encodes vars; when a name repeats, the last one wins.
func newEnviron(vars []string) *environ {
	vars = lastWins(vars)
	size := 0
	for _, kv := range vars {
		size += len(kv) + 1
	}
	e := &environ{blob: make([]byte, 0, size), ends: make([]uint32, 0, len(vars))}
	for _, kv := range vars {
		e.blob = append(e.blob, kv...)
		e.blob = append(e.blob, 0)
		e.ends = append(e.ends, uint32(len(e.blob)))
	}
	return e
}

// lastWins drops every variable that a later one of the same name replaces.
func lastWins(vars []string) []string {
	names := make([]string, len(vars))
	for i, kv := range vars {
		names[i], _, _ = strings.Cut(kv, "=")
	}
	dup := false
	if slices.IsSorted(vars) {
		// The gateway hands a sorted environment: a repeated name, a
		// prefix "NAME=" shared, sits next to its twin.
		for i := 1; i < len(names) && !dup; i++ {
			dup = names[i] == names[i-1]
		}
	} else {
		for i := 0; i < len(names) && !dup; i++ {
			for j := i + 1; j < len(names); j++ {
				if names[i] == names[j] {
					dup = true
					break
				}
			}
		}
	}
	if !dup {
		return vars
	}
	seen := make(map[string]bool, len(vars))
	out := make([]string, 0, len(vars))
	for i := len(vars) - 1; i >= 0; i-- {
		if !seen[names[i]] {
			seen[names[i]] = true
			out = append(out, vars[i])
		}
	}
	slices.Reverse(out)
	return out
}

func withEnviron(ctx context.Context, e *environ) context.Context {
	return context.WithValue(ctx, environKey{}, e)
}

func environFrom(ctx context.Context) *environ {
	if e, ok := ctx.Value(environKey{}).(*environ); ok {
		return e
	}
	return &environ{}
}

const errnoFault = 21 // WASI errno "fault": a pointer outside memory

// instantiateWASI instantiates wazero's WASI preview1 in rt, with the two
// environment functions replaced by ours.
func instantiateWASI(ctx context.Context, rt wazero.Runtime) error {
	b := rt.NewHostModuleBuilder(wasi_snapshot_preview1.ModuleName)
	wasi_snapshot_preview1.NewFunctionExporter().ExportFunctions(b)
	i32 := api.ValueTypeI32
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environSizesGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("result.environc", "result.environv_len").
		Export("environ_sizes_get")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(environGet), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("environ", "environ_buf").
		Export("environ_get")
	// A guest has no descriptors but its three standard streams, and may
	// not close, renumber or reconfigure them: what the descriptor table
	// holds is then the same at the start of every request, which lets a
	// reactor's instance be kept (instances.go).
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(fdRefused), []api.ValueType{i32}, []api.ValueType{i32}).
		WithParameterNames("fd").
		Export("fd_close")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(fdRefused), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("fd", "to").
		Export("fd_renumber")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(fdRefused), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("fd", "flags").
		Export("fd_fdstat_set_flags")
	_, err := b.Instantiate(ctx)
	return err
}

// WASI errnos.
const (
	errnoBadf    = 8
	errnoNotsup  = 58
	stdioStreams = 3
)

// fdRefused answers a change to a descriptor: not supported on a standard
// stream, bad for any other (there are none).
func fdRefused(_ context.Context, _ api.Module, stack []uint64) {
	if uint32(stack[0]) < stdioStreams {
		stack[0] = errnoNotsup
		return
	}
	stack[0] = errnoBadf
}

func environSizesGet(ctx context.Context, mod api.Module, stack []uint64) {
	e := environFrom(ctx)
	mem := mod.Memory()
	if !mem.WriteUint32Le(uint32(stack[0]), uint32(len(e.ends))) || !mem.WriteUint32Le(uint32(stack[1]), uint32(len(e.blob))) {
		stack[0] = errnoFault
		return
	}
	stack[0] = 0
}

func environGet(ctx context.Context, mod api.Module, stack []uint64) {
	e := environFrom(ctx)
	mem := mod.Memory()
	ptrs, buf := uint32(stack[0]), uint32(stack[1])
	offsets := make([]byte, 4*len(e.ends))
	start := uint32(0)
	for i, end := range e.ends {
		binary.LittleEndian.PutUint32(offsets[4*i:], buf+start)
		start = end
	}
	if !mem.Write(ptrs, offsets) || !mem.Write(buf, e.blob) {
		stack[0] = errnoFault
		return
	}
	stack[0] = 0
}
