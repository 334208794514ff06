package fn

import (
	"context"
	"log/slog"
	"slices"
)

// Logger returns a logger whose records go to the function's log on the host,
// which stamps their time and the invocation they belong to. Levels map to
// the host's four: below Info is debug, below Warn info, below Error warn,
// and the rest error. Attributes arrive as flat key/value strings: a group's
// name prefixes its members' keys with a dot ("req.id"), and each value is
// its slog.Value's String.
//
// Needs no grant. A record the host refuses is dropped, as slog drops a
// handler's errors; off Moat every record is dropped. Lines written to
// stderr also reach the function's log, unstructured.
//
// The logger is safe for concurrent use.
func Logger() *slog.Logger { return slog.New(&logHandler{}) }

// logHandler is the slog.Handler behind Logger. It is never changed after it
// is made: WithAttrs and WithGroup return new handlers.
type logHandler struct {
	host   caller
	attrs  []field // from WithAttrs, keys already prefixed
	prefix string  // the open groups, each followed by "."
}

var _ slog.Handler = (*logHandler)(nil)

// Enabled reports true at every level: the host decides what to keep.
func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

// Handle sends r to the host.
func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	reply, err := h.host.call(opLog, h.request(r))
	if err != nil {
		return err
	}
	if err := decodeEmpty(reply); err != nil {
		return malformed(opLog, err)
	}
	return nil
}

// request returns the log request for r: level, message and attributes.
func (h *logHandler) request(r slog.Record) []byte {
	fs := slices.Clip(h.attrs)
	r.Attrs(func(a slog.Attr) bool {
		fs = appendAttr(fs, h.prefix, a)
		return true
	})
	b := appendUint(nil, logLevel(r.Level))
	b = appendString(b, r.Message)
	return appendFields(b, fs)
}

// WithAttrs returns a handler that adds attrs, under the open groups, to
// every record.
func (h *logHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	if len(attrs) == 0 {
		return h
	}
	h2 := *h
	h2.attrs = slices.Clip(h.attrs)
	for _, a := range attrs {
		h2.attrs = appendAttr(h2.attrs, h.prefix, a)
	}
	return &h2
}

// WithGroup returns a handler that puts later attributes in the group name.
func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	h2 := *h
	h2.prefix = h.prefix + name + "."
	return &h2
}

// appendAttr appends a, flattened, to fs, following slog.Handler's rules: it
// resolves LogValuers, drops an empty Attr and an empty group, and inlines
// the members of a group whose key is empty.
func appendAttr(fs []field, prefix string, a slog.Attr) []field {
	a.Value = a.Value.Resolve()
	if a.Equal(slog.Attr{}) {
		return fs
	}
	if a.Value.Kind() != slog.KindGroup {
		return append(fs, field{prefix + a.Key, a.Value.String()})
	}
	if a.Key != "" {
		prefix += a.Key + "."
	}
	for _, m := range a.Value.Group() {
		fs = appendAttr(fs, prefix, m)
	}
	return fs
}

// logLevel maps a slog level to the host's: 0 debug, 1 info, 2 warn, 3 error.
func logLevel(l slog.Level) uint64 {
	switch {
	case l < slog.LevelInfo:
		return 0
	case l < slog.LevelWarn:
		return 1
	case l < slog.LevelError:
		return 2
	}
	return 3
}
