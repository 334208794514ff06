package fn

// Error reports a failed host call. The host sets Code and Message, except
// that the SDK reports Invalid itself for a reply that does not decode or an
// argument it refuses before calling (a negative ttl), and NotOnMoat off
// Moat.
type Error struct {
	Op      string // the operation, such as "kv.get" or "http.do"
	Code    Code   // what went wrong; branch on this
	Message string // for people; may change between releases
}

// Error returns "op: code: message", leaving out what is empty.
func (e *Error) Error() string {
	s := e.Code.String()
	if e.Op != "" {
		s = e.Op + ": " + s
	}
	if e.Message != "" {
		s += ": " + e.Message
	}
	return s
}

// Is reports whether target is an *Error with the same Code, so that
// errors.Is(err, ErrNotFound) holds for every not-found error whatever its
// Op and Message.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels to branch on with errors.Is, one per Code.
var (
	// ErrDenied reports that no grant of the manifest covers the call.
	ErrDenied error = &Error{Code: Denied}
	// ErrNotFound reports that no such key or secret exists.
	ErrNotFound error = &Error{Code: NotFound}
	// ErrConflict reports that Create found the key, or that Update's
	// revision is stale.
	ErrConflict error = &Error{Code: Conflict}
	// ErrInvalid reports a request that breaks a rule, such as a key's
	// syntax, or a reply that did not decode.
	ErrInvalid error = &Error{Code: Invalid}
	// ErrTooLarge reports a value, reply or response over its cap.
	ErrTooLarge error = &Error{Code: TooLarge}
	// ErrUnavailable reports that the store or the network failed; the call
	// may be retried.
	ErrUnavailable error = &Error{Code: Unavailable}
	// ErrTimeout reports that the call ran out of the invocation's time.
	ErrTimeout error = &Error{Code: Timeout}
	// ErrNotOnMoat reports that the program was built for another target
	// than wasip1, so there is no host to call.
	ErrNotOnMoat error = &Error{Code: NotOnMoat}
)
