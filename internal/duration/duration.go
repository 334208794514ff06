// Package duration reads the durations users type into Moat: everywhere a
// command or the control API takes one, the same grammar.
//
//	duration = 1*( number unit )
//	number   = 1*DIGIT [ "." 1*DIGIT ]
//	unit     = "ns" / "us" / "µs" / "ms" / "s" / "m" / "h" / "d" / "w"
//
// "d" is 24 hours and "w" 7 days (calendar days are not modelled: a
// retention of 90d is 2160h). "90d", "1w", "1h30m" and "500ms" are
// durations; a sign, a space, a bare number or an unknown unit is not.
package duration

import (
	"errors"
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// Day and Week as the grammar counts them.
const (
	Day  = 24 * time.Hour
	Week = 7 * Day
)

var units = []struct {
	name string
	d    time.Duration
}{ // longest names first, so that "ms" is not read as "m"
	{"ns", time.Nanosecond}, {"us", time.Microsecond}, {"µs", time.Microsecond},
	{"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute},
	{"h", time.Hour}, {"d", Day}, {"w", Week},
}

// ErrSyntax reports text that does not follow the grammar.
var ErrSyntax = errors.New("not a duration")

// Parse reads s. It fails with ErrSyntax (wrapped, naming s) on text
// outside the grammar, and on a duration past about 292 years.
func Parse(s string) (time.Duration, error) {
	bad := func() (time.Duration, error) {
		shown := s
		if len(shown) > 40 {
			shown = shown[:40] + "..."
		}
		return 0, fmt.Errorf("%w: %q (like 90s, 15m, 12h, 30d or 2w)", ErrSyntax, shown)
	}
	if s == "" || len(s) > 64 {
		return bad()
	}
	total := new(big.Int)
	rest := s
	for rest != "" {
		i := 0
		for i < len(rest) && (rest[i] >= '0' && rest[i] <= '9' || rest[i] == '.') {
			i++
		}
		num := rest[:i]
		whole, frac, _ := strings.Cut(num, ".")
		if whole == "" || strings.Contains(frac, ".") || strings.Contains(num, ".") && frac == "" {
			return bad()
		}
		rest = rest[i:]
		var unit time.Duration
		for _, u := range units {
			if strings.HasPrefix(rest, u.name) {
				unit, rest = u.d, rest[len(u.name):]
				break
			}
		}
		if unit == 0 {
			return bad()
		}
		// whole*unit + frac*unit/10^len(frac), exactly, truncated to the
		// nanosecond as time.ParseDuration does.
		w, _ := new(big.Int).SetString(whole, 10)
		total.Add(total, w.Mul(w, big.NewInt(int64(unit))))
		if frac != "" {
			f, _ := new(big.Int).SetString(frac, 10)
			f.Mul(f, big.NewInt(int64(unit)))
			f.Quo(f, new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(len(frac))), nil))
			total.Add(total, f)
		}
		if !total.IsInt64() {
			return bad()
		}
	}
	return time.Duration(total.Int64()), nil
}

// Format writes d in the grammar, in whole days when it is whole days
// ("90d"), else as Go writes it without zero trailing units ("1h30m").
func Format(d time.Duration) string {
	if d > 0 && d%Day == 0 {
		return strconv.FormatInt(int64(d/Day), 10) + "d"
	}
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// Flag is a command-line flag holding a duration in the grammar.
type Flag struct{ D *time.Duration }

func (f Flag) String() string {
	if f.D == nil || *f.D == 0 {
		return "0"
	}
	return Format(*f.D)
}

// Set parses s; "0" is none.
func (f Flag) Set(s string) error {
	if s == "0" {
		*f.D = 0
		return nil
	}
	d, err := Parse(s)
	if err != nil {
		return err
	}
	*f.D = d
	return nil
}

// Type names the flag's value in help text.
func (Flag) Type() string { return "duration" }
