package manifest

import (
	"strings"
	"testing"
	"time"
)

func TestCronNext(t *testing.T) {
	berlin, err := LoadZone("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	kolkata, _ := LoadZone("Asia/Kolkata")
	at := func(loc *time.Location, s string) time.Time {
		v, err := time.ParseInLocation("2006-01-02 15:04:05", s, loc)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		expr       string
		loc        *time.Location
		from, want string
	}{
		{"0 7 * * 1-5", berlin, "2026-12-04 07:00:00", "2026-12-07 07:00:00"}, // Friday 7:00 to Monday
		{"0 7 * * mon-fri", berlin, "2026-12-07 06:59:59", "2026-12-07 07:00:00"},
		{"*/15 * * * *", time.UTC, "2026-12-07 10:07:00", "2026-12-07 10:15:00"},
		{"30 */10 * * * *", time.UTC, "2026-12-07 10:00:30", "2026-12-07 10:10:30"},
		{"0 0 29 2 *", time.UTC, "2026-03-01 00:00:00", "2028-02-29 00:00:00"},
		{"0 12 1 * 0", time.UTC, "2026-12-01 12:00:00", "2026-12-06 12:00:00"}, // both day fields: either
		{"0 12 */2 * *", time.UTC, "2026-12-01 12:00:00", "2026-12-03 12:00:00"},
		{"@daily", berlin, "2026-12-07 10:00:00", "2026-12-08 00:00:00"},
		{"@hourly", kolkata, "2026-12-07 10:30:00", "2026-12-07 11:00:00"}, // a half-hour zone
		{"5/20 * * * *", time.UTC, "2026-12-07 10:05:00", "2026-12-07 10:25:00"},
		{"0 0 1,15 jan,jul *", time.UTC, "2026-01-15 00:00:00", "2026-07-01 00:00:00"},
		// 2:30 does not exist in Berlin on 2027-03-28 (clocks go 2:00 -> 3:00).
		{"30 2 * * *", berlin, "2027-03-27 03:00:00", "2027-03-29 02:30:00"},
		{"30 2 * * *", berlin, "2027-10-30 03:00:00", "2027-10-31 02:30:00"},
	} {
		cr, err := ParseCron(c.expr)
		if err != nil {
			t.Errorf("%s: %v", c.expr, err)
			continue
		}
		got := cr.Next(at(c.loc, c.from))
		if want := at(c.loc, c.want); !got.Equal(want) {
			t.Errorf("%s after %s: %s, want %s", c.expr, c.from, got, want)
		}
	}
	for _, c := range []struct{ expr, at, want string }{
		{"0 7 * * 1-5", "2026-12-07 07:00:00", "2026-12-07 07:00:00"},
		{"0 7 * * 1-5", "2026-12-07 06:59:59", "2026-12-04 07:00:00"},
		{"* * * * * *", "2026-12-07 06:59:59", "2026-12-07 06:59:59"},
		{"0 0 29 2 *", "2027-03-01 00:00:00", "2024-02-29 00:00:00"},
	} {
		cr, _ := ParseCron(c.expr)
		if got, want := cr.Prev(at(time.UTC, c.at)), at(time.UTC, c.want); !got.Equal(want) {
			t.Errorf("%s: Prev(%s) = %s, want %s", c.expr, c.at, got, want)
		}
	}
	if cr, _ := ParseCron("0 0 30 2 *"); !cr.Next(time.Now()).IsZero() || !cr.Prev(time.Now()).IsZero() {
		t.Error("February 30th fired")
	}
}

func TestCronRefusals(t *testing.T) {
	for expr, want := range map[string]string{
		"":                       "0 fields",
		"* * * *":                "4 fields",
		"* * * * * * *":          "7 fields",
		"60 * * * *":             "minute field",
		"* 24 * * *":             "hour field",
		"* * 0 * *":              "day of month",
		"* * * 13 *":             "month field",
		"* * * * 7":              "Sunday is 0",
		"* * * * mon-sun":        "runs backwards",
		"*/0 * * * *":            "step",
		"1,,2 * * * *":           "empty list item",
		"-1 * * * *":             "minute field",
		"+1 * * * *":             "minute field",
		"? * * * *":              "minute field",
		"1-2-3 * * * *":          "minute field",
		"1/2/3 * * * *":          "step",
		"@every 5m":              "not a cron alias",
		"@reboot":                "not a cron alias",
		"* * * * * " + "x":       "day of week",
		strings.Repeat("*", 300): "over 200",
	} {
		_, err := ParseCron(expr)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v, want %q", expr, err, want)
		}
	}
	for _, z := range []string{"Mars/Olympus", "Local", "../../etc/passwd", "/etc/localtime", "Europe/Berlin\x00"} {
		if _, err := LoadZone(z); err == nil {
			t.Errorf("zone %q accepted", z)
		}
	}
}

func FuzzParseCron(f *testing.F) {
	for _, s := range []string{"0 7 * * 1-5", "*/5 * * * * *", "@weekly", "0 0 29 2 *", "5/20 1-3,7 ? jan-mar sun"} {
		f.Add(s)
	}
	from := time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, expr string) {
		c, err := ParseCron(expr)
		if err != nil {
			return
		}
		again, err := ParseCron(c.Spec())
		if err != nil || *again != *c {
			t.Fatalf("%q: its spec %q parses to %v, %v", expr, c.Spec(), again, err)
		}
		next := c.Next(from)
		if next.IsZero() {
			return
		}
		if !next.After(from) || !has(c.sec, next.Second()) || !has(c.min, next.Minute()) || !has(c.hour, next.Hour()) ||
			!has(c.month, int(next.Month())) || !c.day(next) {
			t.Fatalf("%q: next %s does not match", expr, next)
		}
	})
}
