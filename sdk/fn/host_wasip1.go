//go:build wasip1

package fn

import (
	"strconv"
	"sync"
	"unsafe"
)

// call is "moat" "call": it performs op on the size bytes at ptr and keeps the
// reply on the host. It returns status<<32 | the reply's length.
//
//go:wasmimport moat call
func call(op uint32, ptr unsafe.Pointer, size uint32) uint64

// take is "moat" "take": it copies the pending reply to ptr, at most size
// bytes, forgets it, and returns how many bytes it copied, or -1 if the range
// is outside memory.
//
//go:wasmimport moat take
func take(ptr unsafe.Pointer, size uint32) int32

// hostMu makes each call and its take one step. The host keeps a single
// pending reply per instance, and the allocation between the two can park
// the goroutine (a GC assist) and let another one call in between.
var hostMu sync.Mutex

// roundTrip sends req to the host as operation op and returns the reply. A
// status other than 0 becomes an *Error carrying the reply as its message.
func roundTrip(op uint32, req []byte) ([]byte, error) {
	hostMu.Lock()
	defer hostMu.Unlock()
	r := call(op, unsafe.Pointer(unsafe.SliceData(req)), uint32(len(req)))
	status, n := uint32(r>>32), uint32(r)
	var reply []byte
	if n > 0 {
		reply = make([]byte, n)
		got := take(unsafe.Pointer(unsafe.SliceData(reply)), n)
		if got < 0 || uint32(got) != n {
			return nil, &Error{Op: opName(op), Code: Invalid,
				Message: "take copied " + strconv.Itoa(int(got)) + " of " + strconv.FormatUint(uint64(n), 10) + " bytes"}
		}
	}
	if status != 0 {
		return nil, &Error{Op: opName(op), Code: Code(status), Message: string(reply)}
	}
	return reply, nil
}
