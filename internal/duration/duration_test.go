package duration

import (
	"errors"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"90d": 90 * Day, "1w": Week, "2w3d": 17 * Day, "12h": 12 * time.Hour, "1h30m": 90 * time.Minute,
		"500ms": 500 * time.Millisecond, "90s": 90 * time.Second, "1.5h": 90 * time.Minute, "0s": 0, "2160h": 90 * Day, "1µs": time.Microsecond, "3ns": 3, "0.3s": 300 * time.Millisecond,
	} {
		if got, err := Parse(in); err != nil || got != want {
			t.Errorf("Parse(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "5", "-1h", "+1h", "1 h", "1y", "1dd", "d", ".5h", "5.h", "1.2.3h", "1h ", "100000000000w", "1e3s", "1", "h1"} {
		if got, err := Parse(in); !errors.Is(err, ErrSyntax) {
			t.Errorf("Parse(%q) = %v, %v; want ErrSyntax", in, got, err)
		}
	}
}

func TestFormat(t *testing.T) {
	for d, want := range map[time.Duration]string{90 * Day: "90d", 90 * time.Minute: "1h30m", 15 * time.Minute: "15m", 2 * time.Hour: "2h", 1500 * time.Millisecond: "1.5s"} {
		if got := Format(d); got != want {
			t.Errorf("Format(%v) = %q, want %q", d, got, want)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Errorf("Parse(Format(%v)) = %v, %v", d, back, err)
		}
	}
}

// FuzzParse: whatever the text, Parse answers without panic, never a
// negative duration, and what it accepts Format writes back to the same.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"90d", "1h30m", "500ms", "1.5h", "2w3d", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := Parse(s)
		if err != nil {
			return
		}
		if d < 0 {
			t.Fatalf("Parse(%q) = %v", s, d)
		}
		if back, err := Parse(Format(d)); err != nil || back != d {
			t.Fatalf("Parse(%q) = %v; Format %q reads back as %v, %v", s, d, Format(d), back, err)
		}
	})
}
