package fn

// caller sends one request to the host and returns the reply to it. The
// capabilities hold one so that tests can stand in for the host; nil, the
// value every exported constructor leaves, means roundTrip, the host itself.
type caller func(op uint32, req []byte) (reply []byte, err error)

func (c caller) call(op uint32, req []byte) ([]byte, error) {
	if c == nil {
		return roundTrip(op, req)
	}
	return c(op, req)
}
