package fn

import (
	"errors"
	"fmt"
	"testing"
)

func TestErrorIs(t *testing.T) {
	sentinels := map[Code]error{
		Denied: ErrDenied, NotFound: ErrNotFound, Conflict: ErrConflict, Invalid: ErrInvalid,
		TooLarge: ErrTooLarge, Unavailable: ErrUnavailable, Timeout: ErrTimeout, NotOnMoat: ErrNotOnMoat,
	}
	for code, sentinel := range sentinels {
		err := fmt.Errorf("load cart: %w", &Error{Op: "kv.get", Code: code, Message: "something"})
		for other, s := range sentinels {
			if got, want := errors.Is(err, s), other == code; got != want {
				t.Errorf("errors.Is(%s error, %v) = %v, want %v", code, s, got, want)
			}
		}
		if errors.Is(err, errors.New(code.String())) {
			t.Errorf("errors.Is(%s error, a plain error) = true", code)
		}
		var e *Error
		if !errors.As(err, &e) || e.Code != code || e.Op != "kv.get" {
			t.Errorf("errors.As(%v) = %+v", err, e)
		}
		if !errors.Is(sentinel, sentinel) {
			t.Errorf("errors.Is(%v, itself) = false", sentinel)
		}
	}
	if errors.Is(&Error{Code: Code(42)}, ErrInvalid) {
		t.Error("errors.Is(status 42, ErrInvalid) = true")
	}
}

func TestErrorString(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "kv.get", Code: NotFound, Message: `no key "a"`}, `kv.get: not found: no key "a"`},
		{&Error{Op: "secret.get", Code: Denied}, "secret.get: denied"},
		{&Error{Code: TooLarge}, "too large"},
		{&Error{Op: "http.do", Code: Code(42), Message: "new"}, "http.do: status 42: new"},
		{ErrNotOnMoat.(*Error), "not on moat"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("%#v.Error() = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestOpName(t *testing.T) {
	for op, want := range map[uint32]string{
		1: "log", 10: "kv.get", 11: "kv.put", 12: "kv.create", 13: "kv.update", 14: "kv.delete",
		15: "kv.keys", 20: "secret.get", 30: "http.do", 40: "fn.invoke", 99: "op 99",
	} {
		if got := opName(op); got != want {
			t.Errorf("opName(%d) = %q, want %q", op, got, want)
		}
	}
}
