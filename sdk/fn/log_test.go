package fn

import (
	"errors"
	"log/slog"
	"reflect"
	"testing"
	"time"
)

// token is a LogValuer, as a secret-bearing type might be.
type token string

func (token) LogValue() slog.Value { return slog.StringValue("[redacted]") }

func TestLogRequest(t *testing.T) {
	at := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name   string
		logger func(*slog.Logger) *slog.Logger
		level  slog.Level
		attrs  []slog.Attr
		want   []field
	}{
		{
			name:  "plain",
			level: slog.LevelInfo,
			attrs: []slog.Attr{slog.String("fn", "contact"), slog.Int("status", 200), slog.Bool("ok", true)},
			want:  []field{{"fn", "contact"}, {"status", "200"}, {"ok", "true"}},
		},
		{
			name:  "values as strings",
			level: slog.LevelInfo,
			attrs: []slog.Attr{
				slog.Duration("took", 1500*time.Millisecond), slog.Time("at", at),
				slog.Float64("ratio", 0.5), slog.Any("err", errors.New("boom")), slog.Any("nil", nil),
			},
			want: []field{{"took", "1.5s"}, {"at", at.String()}, {"ratio", "0.5"}, {"err", "boom"}, {"nil", "<nil>"}},
		},
		{
			name:  "group",
			level: slog.LevelInfo,
			attrs: []slog.Attr{slog.Group("req", slog.String("method", "GET"), slog.Group("url", slog.String("path", "/x")))},
			want:  []field{{"req.method", "GET"}, {"req.url.path", "/x"}},
		},
		{
			name:  "empty group and empty attr dropped",
			level: slog.LevelInfo,
			attrs: []slog.Attr{slog.Group("none"), {}, slog.String("a", "1")},
			want:  []field{{"a", "1"}},
		},
		{
			name:  "group without key inlined",
			level: slog.LevelInfo,
			attrs: []slog.Attr{slog.Group("", slog.String("a", "1"), slog.String("b", "2"))},
			want:  []field{{"a", "1"}, {"b", "2"}},
		},
		{
			name:  "log valuer resolved",
			level: slog.LevelInfo,
			attrs: []slog.Attr{slog.Any("token", token("t0ps3cret"))},
			want:  []field{{"token", "[redacted]"}},
		},
		{
			name:   "with attrs then group",
			logger: func(l *slog.Logger) *slog.Logger { return l.With("fn", "contact").WithGroup("req").With("id", "r1") },
			level:  slog.LevelInfo,
			attrs:  []slog.Attr{slog.Int("n", 1)},
			want:   []field{{"fn", "contact"}, {"req.id", "r1"}, {"req.n", "1"}},
		},
		{
			name:   "groups nest",
			logger: func(l *slog.Logger) *slog.Logger { return l.WithGroup("a").WithGroup("").WithGroup("b") },
			level:  slog.LevelWarn,
			attrs:  []slog.Attr{slog.String("c", "d"), slog.Group("e", slog.Int("f", 1))},
			want:   []field{{"a.b.c", "d"}, {"a.b.e.f", "1"}},
		},
		{
			name:   "group without attrs",
			logger: func(l *slog.Logger) *slog.Logger { return l.With("x", 1).WithGroup("g") },
			level:  slog.LevelError,
			want:   []field{{"x", "1"}},
		},
		{
			name:   "with no attrs",
			logger: func(l *slog.Logger) *slog.Logger { return l.With() },
			level:  slog.LevelDebug,
			want:   []field{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := &fakeHost{}
			l := slog.New(&logHandler{host: host.call})
			if tt.logger != nil {
				l = tt.logger(l)
			}
			l.LogAttrs(t.Context(), tt.level, "something happened", tt.attrs...)
			host.check(t, opLog, "ubh", logLevel(tt.level), "something happened", tt.want)
		})
	}
}

func TestLogLevel(t *testing.T) {
	tests := []struct {
		level slog.Level
		want  uint64
	}{
		{slog.LevelDebug - 4, 0}, {slog.LevelDebug, 0}, {slog.LevelInfo - 1, 0},
		{slog.LevelInfo, 1}, {slog.LevelInfo + 2, 1},
		{slog.LevelWarn, 2}, {slog.LevelError - 1, 2},
		{slog.LevelError, 3}, {slog.LevelError + 8, 3},
	}
	for _, tt := range tests {
		if got := logLevel(tt.level); got != tt.want {
			t.Errorf("logLevel(%v) = %d, want %d", tt.level, got, tt.want)
		}
	}
}

// WithAttrs must not let two children of one handler share, and overwrite,
// one backing array of attributes.
func TestLogHandlerChildrenIndependent(t *testing.T) {
	host := &fakeHost{}
	parent := slog.New(&logHandler{host: host.call}).With("a", 1, "b", 2)
	left, right := parent.With("side", "left"), parent.With("side", "right")
	left.Info("m", "n", 1)
	right.Info("m", "n", 2)
	parent.Info("m")
	want := [][]field{
		{{"a", "1"}, {"b", "2"}, {"side", "left"}, {"n", "1"}},
		{{"a", "1"}, {"b", "2"}, {"side", "right"}, {"n", "2"}},
		{{"a", "1"}, {"b", "2"}},
	}
	for i, c := range host.calls {
		got := mustDecode(t, "ubh", c.req)[2]
		if !reflect.DeepEqual(got, want[i]) {
			t.Errorf("record %d attrs = %v, want %v", i, got, want[i])
		}
	}
}

func TestLogHandle(t *testing.T) {
	h := &logHandler{}
	if !h.Enabled(t.Context(), slog.LevelDebug-4) {
		t.Error("Enabled(below debug) = false, want true")
	}
	r := slog.NewRecord(time.Now(), slog.LevelInfo, "m", 0)
	h.host = (&fakeHost{err: &Error{Op: "log", Code: TooLarge}}).call
	if err := h.Handle(t.Context(), r); !errors.Is(err, ErrTooLarge) {
		t.Errorf("Handle with a refusing host error = %v, want ErrTooLarge", err)
	}
	h.host = (&fakeHost{reply: []byte{0}}).call
	if err := h.Handle(t.Context(), r); !errors.Is(err, ErrInvalid) {
		t.Errorf("Handle with a non-empty reply error = %v, want ErrInvalid", err)
	}
}
