package manifest

import (
	"encoding/json"
	"errors"
	"fmt"
	durations "github.com/moatfn/moat/internal/duration"
	"math"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Size is a number of bytes. It is written as a whole number with an
// optional binary unit: "1048576", "1024KiB", "1MiB". Decimal units (KB,
// MB, GB) are refused rather than guessed at.
type Size int64

// Units of Size.
const (
	KiB Size = 1 << 10
	MiB Size = 1 << 20
	GiB Size = 1 << 30
)

// pageSize is the size of a WebAssembly memory page.
const pageSize = 64 * KiB

// String returns s in the largest unit that divides it, like "64MiB" or
// "1000B".
func (s Size) String() string {
	for _, u := range []struct {
		size Size
		name string
	}{{GiB, "GiB"}, {MiB, "MiB"}, {KiB, "KiB"}} {
		if s != 0 && s%u.size == 0 {
			return strconv.FormatInt(int64(s/u.size), 10) + u.name
		}
	}
	return strconv.FormatInt(int64(s), 10) + "B"
}

// MarshalJSON encodes s as its String form.
func (s Size) MarshalJSON() ([]byte, error) { return json.Marshal(s.String()) }

// UnmarshalJSON accepts a string in the manifest's size syntax or a JSON
// integer of bytes.
func (s *Size) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var str string
	if err := json.Unmarshal(b, &str); err != nil {
		var n int64
		if err := json.Unmarshal(b, &n); err != nil {
			return fmt.Errorf("size: want a string like \"64MiB\" or a number of bytes, got %s", b)
		}
		*s = Size(n)
		return nil
	}
	v, err := parseSize(str)
	if err != nil {
		return err
	}
	*s = v
	return nil
}

var sizeRE = regexp.MustCompile(`^([0-9]+)([A-Za-z]*)$`)

func parseSize(str string) (Size, error) {
	m := sizeRE.FindStringSubmatch(str)
	if m == nil {
		return 0, fmt.Errorf("%q is not a size (a whole number of B, KiB, MiB or GiB, like 64MiB)", str)
	}
	var unit Size
	switch m[2] {
	case "", "B":
		unit = 1
	case "KiB":
		unit = KiB
	case "MiB":
		unit = MiB
	case "GiB":
		unit = GiB
	default:
		return 0, fmt.Errorf("%q is not a size (use KiB, MiB or GiB)", str)
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil || n > math.MaxInt64/int64(unit) {
		return 0, fmt.Errorf("%q is too large", str)
	}
	return Size(n) * unit, nil
}

// parseDuration reads a duration in the grammar every Moat duration
// follows (internal/duration: 500ms, 5s, 1m, 12h, 30d, 2w).
func parseDuration(s string) (time.Duration, error) {
	neg := strings.HasPrefix(s, "-") // read, so that the check of sign names it
	d, err := durations.Parse(strings.TrimPrefix(s, "-"))
	if neg {
		d = -d
	}
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (like 500ms, 5s or 1m)", s)
	}
	return d, nil
}

// formatDuration is d.String without zero trailing units: "15m", not
// "15m0s". parseDuration reads it back.
func formatDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// parseInt reads a decimal integer.
func parseInt(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a whole number", s)
	}
	return n, nil
}

// Rate is a number of invocations allowed per period, written "50/s",
// "100/m" or "1000/h". The zero value means unlimited.
type Rate struct {
	N   int           // invocations per Per; positive unless the Rate is zero
	Per time.Duration // time.Second, time.Minute or time.Hour
}

var ratePers = []struct {
	unit string
	per  time.Duration
}{{"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}

// String returns r like "50/s", or "unlimited" for the zero Rate.
func (r Rate) String() string {
	if r == (Rate{}) {
		return "unlimited"
	}
	unit := r.Per.String()
	for _, p := range ratePers {
		if p.per == r.Per {
			unit = p.unit
		}
	}
	return strconv.Itoa(r.N) + "/" + unit
}

// MarshalJSON encodes r as its String form.
func (r Rate) MarshalJSON() ([]byte, error) { return json.Marshal(r.String()) }

// UnmarshalJSON accepts the String form of a Rate, including "unlimited"
// and "" for the zero Rate.
func (r *Rate) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("rate: want a string like \"50/s\", got %s", b)
	}
	if s == "" || s == "unlimited" {
		*r = Rate{}
		return nil
	}
	v, err := parseRate(s)
	if err != nil {
		return err
	}
	*r = v
	return nil
}

func parseRate(s string) (Rate, error) {
	n, unit, ok := strings.Cut(s, "/")
	if !ok || !isDigits(n) {
		return Rate{}, fmt.Errorf("%q is not a rate (like 50/s, 100/m or 1000/h)", s)
	}
	for _, p := range ratePers {
		if unit == p.unit {
			c, err := strconv.Atoi(n)
			if err != nil {
				return Rate{}, fmt.Errorf("%q is too large", s)
			}
			r := Rate{N: c, Per: p.per}
			return r, r.check()
		}
	}
	return Rate{}, fmt.Errorf("%q is not a rate (like 50/s, 100/m or 1000/h)", s)
}

// check accepts the zero Rate or a positive count per second, minute or
// hour.
func (r Rate) check() error {
	if r == (Rate{}) {
		return nil
	}
	if r.N <= 0 {
		return fmt.Errorf("%q: the count must be positive (leave the rate out for no limit)", r)
	}
	for _, p := range ratePers {
		if p.per == r.Per {
			return nil
		}
	}
	return fmt.Errorf("%q: the period must be s, m or h", r)
}

// BudgetAmount is an amount allowed per window of time, written "100/day"
// or, for GB-seconds, "0.5/hour". The zero value sets no budget.
type BudgetAmount struct {
	Amount float64 // positive, at most 1e15
	Window string  // "hour", "day" or "month"
}

const maxBudget = 1e15

// String returns b like "100/day", or "none" for the zero BudgetAmount.
func (b BudgetAmount) String() string {
	if b == (BudgetAmount{}) {
		return "none"
	}
	return strconv.FormatFloat(b.Amount, 'f', -1, 64) + "/" + b.Window
}

// MarshalJSON encodes b as its String form.
func (b BudgetAmount) MarshalJSON() ([]byte, error) { return json.Marshal(b.String()) }

// UnmarshalJSON accepts the String form of a BudgetAmount, including
// "none" and "" for the zero value.
func (b *BudgetAmount) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("budget: want a string like \"100/day\", got %s", data)
	}
	if s == "" || s == "none" {
		*b = BudgetAmount{}
		return nil
	}
	v, err := parseBudget(s, false)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

var budgetRE = regexp.MustCompile(`^([0-9]+(?:\.[0-9]+)?)/([a-z]+)$`)

// parseBudget reads "N/window"; whole requires N to be a whole number.
// ParseBudget reads a budget like "100/day"; whole refuses fractions (for
// invocation counts).
func ParseBudget(s string, whole bool) (BudgetAmount, error) { return parseBudget(s, whole) }

func parseBudget(s string, whole bool) (BudgetAmount, error) {
	m := budgetRE.FindStringSubmatch(s)
	if m == nil {
		return BudgetAmount{}, fmt.Errorf("%q is not a budget (like 100/day; windows are hour, day and month)", s)
	}
	if whole && strings.Contains(m[1], ".") {
		return BudgetAmount{}, fmt.Errorf("%q: the amount must be a whole number", s)
	}
	f, err := strconv.ParseFloat(m[1], 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return BudgetAmount{}, fmt.Errorf("%q is not a budget (like 100/day)", s)
	}
	b := BudgetAmount{Amount: f, Window: m[2]}
	return b, b.check(whole)
}

// check accepts the zero BudgetAmount or a positive amount per hour, day
// or month; whole requires a whole number.
func (b BudgetAmount) check(whole bool) error {
	switch {
	case b == (BudgetAmount{}):
		return nil
	case !(b.Amount > 0):
		return fmt.Errorf("%q: the amount must be positive (leave the budget out for none)", b)
	case b.Amount > maxBudget:
		return fmt.Errorf("%q: the amount is more than %g", b, float64(maxBudget))
	case whole && b.Amount != math.Trunc(b.Amount):
		return fmt.Errorf("%q: the amount must be a whole number", b)
	}
	switch b.Window {
	case "hour", "day", "month":
		return nil
	}
	return fmt.Errorf("%q: the window must be hour, day or month", b)
}

func isDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// ParseSize reads a size as the manifest writes it: "64MiB", "512KiB",
// "1GiB" or a count of bytes.
func ParseSize(s string) (Size, error) { return parseSize(s) }
