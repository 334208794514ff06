package manifest

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // IANA time zones in the binary, whatever the machine has
)

// Cron is a parsed cron expression: the seconds, minutes, hours, days of
// the month, months and days of the week it fires on, each a bit set.
//
// The grammar is the one JetStream's message scheduler evaluates (which
// fires the ticks): five fields (minute hour day-of-month month
// day-of-week) or six (seconds first); each field a comma-separated list
// of "*", a value, or a range "a-b", any of them with a step "/n" ("5/15"
// is "5-max/15"); months and days of the week by number or by their first
// three letters (jan, mon); "?" as "*" in the day fields; and the aliases
// @yearly, @annually, @monthly, @weekly, @daily, @midnight, @hourly. When
// both day fields are restricted, a day matching either fires.
type Cron struct {
	sec, min, hour, dom, month, dow uint64
	domAny, dowAny                  bool // the field was "*" or "?"
	spec                            string
}

var cronAliases = map[string]string{
	"@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
	"@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}

type cronField struct {
	name     string
	lo, hi   int
	names    []string // names[i] is value lo+i
	dayField bool
}

var cronFields = [6]cronField{
	{name: "second", lo: 0, hi: 59},
	{name: "minute", lo: 0, hi: 59},
	{name: "hour", lo: 0, hi: 23},
	{name: "day of month", lo: 1, hi: 31, dayField: true},
	{name: "month", lo: 1, hi: 12, names: []string{"jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"}},
	{name: "day of week", lo: 0, hi: 6, names: []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, dayField: true},
}

// maxCronLen bounds an expression.
const maxCronLen = 200

// ParseCron parses a cron expression.
func ParseCron(expr string) (*Cron, error) {
	if len(expr) > maxCronLen {
		return nil, fmt.Errorf("cron expression over %d characters", maxCronLen)
	}
	spec := strings.Join(strings.Fields(expr), " ")
	if strings.HasPrefix(spec, "@") {
		a, ok := cronAliases[strings.ToLower(spec)]
		if !ok {
			return nil, fmt.Errorf("%q: not a cron alias (@yearly, @monthly, @weekly, @daily, @hourly)", spec)
		}
		spec = a
	}
	fields := strings.Fields(spec)
	switch len(fields) {
	case 5:
		fields = append([]string{"0"}, fields...)
	case 6:
	default:
		return nil, fmt.Errorf("%q: %d fields, want 5 (minute hour day-of-month month day-of-week) or 6 (seconds first)", truncate(expr), len(fields))
	}
	c := &Cron{spec: strings.Join(fields, " ")}
	dst := [6]*uint64{&c.sec, &c.min, &c.hour, &c.dom, &c.month, &c.dow}
	for i, f := range fields {
		bits, any, err := cronFields[i].parse(f)
		if err != nil {
			return nil, fmt.Errorf("%s field %q: %w", cronFields[i].name, f, err)
		}
		*dst[i] = bits
		switch i {
		case 3:
			c.domAny = any
		case 5:
			c.dowAny = any
		}
	}
	return c, nil
}

// parse returns the values a field takes, and whether it was "*" or "?".
func (f cronField) parse(s string) (uint64, bool, error) {
	var bits uint64
	star := false
	items := strings.Split(s, ",")
	for _, it := range items {
		if it == "" {
			return 0, false, errors.New("an empty list item")
		}
		rng, stepText, hasStep := strings.Cut(it, "/")
		step := 1
		if hasStep {
			n, err := cronNumber(stepText)
			if err != nil || n < 1 || n > f.hi {
				return 0, false, fmt.Errorf("step %q: want 1 to %d", stepText, f.hi)
			}
			step = n
		}
		var lo, hi int
		switch {
		case rng == "*" || rng == "?" && f.dayField:
			lo, hi = f.lo, f.hi
			star = star || step == 1
		default:
			a, b, isRange := strings.Cut(rng, "-")
			var err error
			if lo, err = f.value(a); err != nil {
				return 0, false, err
			}
			hi = lo
			if isRange {
				if hi, err = f.value(b); err != nil {
					return 0, false, err
				}
			} else if hasStep {
				hi = f.hi // "5/15" is "5-max/15"
			}
			if lo > hi {
				return 0, false, fmt.Errorf("range %q runs backwards", rng)
			}
		}
		bits |= f.bits(lo, hi, step)
	}
	return bits, star, nil
}

func (f cronField) value(s string) (int, error) {
	for i, n := range f.names {
		if strings.EqualFold(s, n) {
			return f.lo + i, nil
		}
	}
	n, err := cronNumber(s)
	if err != nil || n < f.lo || n > f.hi {
		hint := fmt.Sprintf("%d to %d", f.lo, f.hi)
		if len(f.names) > 0 {
			hint += fmt.Sprintf(" or %s to %s", f.names[0], f.names[len(f.names)-1])
		}
		if f.name == "day of week" && s == "7" {
			hint += " (Sunday is 0)"
		}
		return 0, fmt.Errorf("%q: want %s", s, hint)
	}
	return n, nil
}

// cronNumber is a number of at most two digits: no sign, no spaces.
func cronNumber(s string) (int, error) {
	if s == "" || len(s) > 2 || strings.Trim(s, "0123456789") != "" {
		return 0, strconv.ErrSyntax
	}
	return strconv.Atoi(s)
}

func (f cronField) bits(lo, hi, step int) uint64 {
	var b uint64
	for v := lo; v <= hi; v += step {
		b |= 1 << v
	}
	return b
}

// Spec is the six-field form the scheduler is given.
func (c *Cron) Spec() string { return c.spec }

func has(set uint64, v int) bool { return set&(1<<v) != 0 }

func (c *Cron) day(t time.Time) bool {
	dom, dow := has(c.dom, t.Day()), has(c.dow, int(t.Weekday()))
	if c.domAny || c.dowAny {
		return dom && dow
	}
	return dom || dow
}

// Next is the first time after t, in t's location, that c fires; the zero
// time when it never does within five years (February 30th).
func (c *Cron) Next(t time.Time) time.Time {
	loc := t.Location()
	t = t.Truncate(time.Second).Add(time.Second)
	limit := t.AddDate(5, 0, 0)
	for t.Before(limit) {
		switch {
		case !has(c.month, int(t.Month())):
			t = time.Date(t.Year(), t.Month()+1, 1, 0, 0, 0, 0, loc)
		case !c.day(t):
			t = time.Date(t.Year(), t.Month(), t.Day()+1, 0, 0, 0, 0, loc)
		case !has(c.hour, t.Hour()):
			t = later(t, time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), 0, 0, 0, loc).Add(time.Hour), time.Hour)
		case !has(c.min, t.Minute()):
			t = later(t, time.Date(t.Year(), t.Month(), t.Day(), t.Hour(), t.Minute(), 0, 0, loc).Add(time.Minute), time.Minute)
		case !has(c.sec, t.Second()):
			t = t.Add(time.Second)
		default:
			return t
		}
	}
	return time.Time{}
}

// later is next, or t+d when a clock set back (daylight saving time ends)
// made next no later than t.
func later(t, next time.Time, d time.Duration) time.Time {
	if next.After(t) {
		return next
	}
	return t.Add(d)
}

// Prev is the last time at or before t, in t's location, that c fires;
// the zero time when it did not within five years.
func (c *Cron) Prev(t time.Time) time.Time {
	t = t.Truncate(time.Second)
	for _, back := range []time.Duration{time.Second, time.Minute, time.Hour, 24 * time.Hour, 32 * 24 * time.Hour, 367 * 24 * time.Hour, 5 * 367 * 24 * time.Hour} {
		at := c.Next(t.Add(-back))
		if at.IsZero() || at.After(t) {
			continue
		}
		for {
			next := c.Next(at)
			if next.IsZero() || next.After(t) {
				return at
			}
			at = next
		}
	}
	return time.Time{}
}
