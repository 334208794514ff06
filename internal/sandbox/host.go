package sandbox

import (
	"context"
	"encoding/binary"
	"errors"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// HostModule is the import module through which guests reach capabilities
// (docs/hostcalls.md).
const HostModule = "moat"

// MaxHostRequest caps the bytes one host call may pass in.
const MaxHostRequest = 16 << 20

// Host status codes, as docs/hostcalls.md lists them.
const (
	StatusOK          = 0
	StatusDenied      = 1
	StatusNotFound    = 2
	StatusConflict    = 3
	StatusInvalid     = 4
	StatusTooLarge    = 5
	StatusUnavailable = 6
	StatusTimeout     = 7
)

// HostFunc serves one host call of an invocation: op and its encoded
// request; it returns the encoded reply. An error that is a *HostError
// reaches the guest with its status; any other error as "unavailable".
type HostFunc func(ctx context.Context, op uint32, req []byte) ([]byte, error)

// HostError is a host call's failure as the guest sees it.
type HostError struct {
	Status  uint32
	Message string
}

func (e *HostError) Error() string { return e.Message }

// hostState is one invocation's side of the host module.
type hostState struct {
	serve   HostFunc
	pending []byte
	log     *lineWriter
	env     []string // the request's CGI variables, for op request
	// initialising is a reactor's _initialize at deploy: no request, no
	// capabilities.
	initialising bool
}

// OpRequest is the host call through which a reactor module reads its
// request's CGI variables (docs/hostcalls.md). The sandbox serves it itself.
const OpRequest = 2

type hostKey struct{}

func hostFrom(ctx context.Context) *hostState {
	h, _ := ctx.Value(hostKey{}).(*hostState)
	return h
}

// Log adds a line to the log of the invocation whose host call ctx belongs
// to, within the same caps as its stderr. It reports whether there was one.
func Log(ctx context.Context, line string) bool {
	h := hostFrom(ctx)
	if h == nil {
		return false
	}
	h.log.flush()
	h.log.keep([]byte(line))
	return true
}

// instantiateHost instantiates the moat host module in rt.
func instantiateHost(ctx context.Context, rt wazero.Runtime) error {
	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := rt.NewHostModuleBuilder(HostModule)
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostCall), []api.ValueType{i32, i32, i32}, []api.ValueType{i64}).
		WithParameterNames("op", "ptr", "len").
		Export("call")
	b.NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(hostTake), []api.ValueType{i32, i32}, []api.ValueType{i32}).
		WithParameterNames("ptr", "len").
		Export("take")
	_, err := b.Instantiate(ctx)
	return err
}

// hostCall serves call(op, ptr, len) -> status<<32 | reply length.
func hostCall(ctx context.Context, mod api.Module, stack []uint64) {
	op, ptr, n := uint32(stack[0]), uint32(stack[1]), uint32(stack[2])
	h := hostFrom(ctx)
	if h == nil {
		stack[0] = StatusDenied << 32
		return
	}
	h.pending = nil
	if n > MaxHostRequest {
		stack[0] = h.fail(StatusInvalid, "host call request larger than 16MiB")
		return
	}
	view, ok := mod.Memory().Read(ptr, n)
	if !ok {
		stack[0] = h.fail(StatusInvalid, "host call request outside the guest's memory")
		return
	}
	// The reply may outlive this call's view of memory: copy.
	req := append([]byte(nil), view...)
	if h.initialising {
		stack[0] = h.fail(StatusUnavailable, "host calls are not available while the module initialises: make them in the handler")
		return
	}
	if op == OpRequest {
		h.pending = encodeEnv(h.env)
		stack[0] = uint64(len(h.pending))
		return
	}
	if h.serve == nil {
		stack[0] = h.fail(StatusDenied, "this function has no host capabilities")
		return
	}
	out, err := h.serve(ctx, op, req)
	if err != nil {
		var he *HostError
		if errors.As(err, &he) {
			stack[0] = h.fail(he.Status, he.Message)
			return
		}
		stack[0] = h.fail(StatusUnavailable, err.Error())
		return
	}
	h.pending = out
	stack[0] = uint64(len(out))
}

func (h *hostState) fail(status uint32, msg string) uint64 {
	if status == StatusOK {
		status = StatusUnavailable
	}
	h.pending = []byte(msg)
	return uint64(status)<<32 | uint64(uint32(len(msg)))
}

// hostTake serves take(ptr, len) -> bytes copied, or -1.
func hostTake(ctx context.Context, mod api.Module, stack []uint64) {
	ptr, n := uint32(stack[0]), uint32(stack[1])
	h := hostFrom(ctx)
	if h == nil || len(h.pending) == 0 {
		stack[0] = 0
		return
	}
	out := h.pending
	if uint32(len(out)) > n {
		out = out[:n]
	}
	if !mod.Memory().Write(ptr, out) {
		stack[0] = uint64(uint32(0xffffffff)) // -1 as i32
		return
	}
	h.pending = nil
	stack[0] = uint64(uint32(len(out)))
}

// encodeEnv encodes KEY=VALUE pairs as the wire's headers: a count, then
// each name and value as bytes.
func encodeEnv(env []string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(env)))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		b = binary.AppendUvarint(b, uint64(len(k)))
		b = append(b, k...)
		b = binary.AppendUvarint(b, uint64(len(v)))
		b = append(b, v...)
	}
	return b
}
