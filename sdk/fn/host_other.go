//go:build !wasip1

package fn

import "runtime"

// roundTrip fails with NotOnMoat: built for any other target than wasip1
// there is no host to call. Code that uses the package still compiles and
// its tests run; see ErrNotOnMoat.
func roundTrip(op uint32, _ []byte) ([]byte, error) {
	return nil, &Error{Op: opName(op), Code: NotOnMoat, Message: "built for " + runtime.GOOS + ", not wasip1"}
}
