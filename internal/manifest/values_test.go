package manifest

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestSize(t *testing.T) {
	tests := []struct {
		in      string
		want    Size
		str     string
		wantErr string
	}{
		{"0", 0, "0B", ""},
		{"1000", 1000, "1000B", ""},
		{"1024", KiB, "1KiB", ""},
		{"1536B", 1536, "1536B", ""},
		{"2048KiB", 2 * MiB, "2MiB", ""},
		{"64MiB", 64 * MiB, "64MiB", ""},
		{"1025MiB", 1025 * MiB, "1025MiB", ""},
		{"4GiB", 4 * GiB, "4GiB", ""},
		{"64MB", 0, "", `"64MB" is not a size (use KiB, MiB or GiB)`},
		{"1kb", 0, "", "(use KiB, MiB or GiB)"},
		{"1G", 0, "", "(use KiB, MiB or GiB)"},
		{"", 0, "", `"" is not a size`},
		{" 1MiB", 0, "", `" 1MiB" is not a size`},
		{"1 MiB", 0, "", `"1 MiB" is not a size`},
		{"1.5MiB", 0, "", `"1.5MiB" is not a size`},
		{"+1", 0, "", `"+1" is not a size`},
		{"9223372036854775807", 1<<63 - 1, "9223372036854775807B", ""},
		{"9223372036854775808", 0, "", "is too large"},
		{"8589934592GiB", 0, "", "is too large"},
	}
	for _, tt := range tests {
		got, err := parseSize(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseSize(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseSize(%q): %v", tt.in, err)
		case tt.wantErr == "" && (got != tt.want || got.String() != tt.str):
			t.Errorf("parseSize(%q) = %d (%s), want %d (%s)", tt.in, got, got, tt.want, tt.str)
		}
	}
}

func TestRate(t *testing.T) {
	tests := []struct {
		in      string
		want    Rate
		wantErr string
	}{
		{"50/s", Rate{50, time.Second}, ""},
		{"100/m", Rate{100, time.Minute}, ""},
		{"1000/h", Rate{1000, time.Hour}, ""},
		{"50/min", Rate{}, "is not a rate"},
		{"50/S", Rate{}, "is not a rate"},
		{"50", Rate{}, "is not a rate"},
		{"/s", Rate{}, "is not a rate"},
		{"5.5/s", Rate{}, "is not a rate"},
		{"+5/s", Rate{}, "is not a rate"},
		{"0/s", Rate{}, "the count must be positive"},
		{"99999999999999999999/s", Rate{}, "is too large"},
	}
	for _, tt := range tests {
		got, err := parseRate(tt.in)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseRate(%q) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseRate(%q): %v", tt.in, err)
		case tt.wantErr == "" && (got != tt.want || got.String() != tt.in):
			t.Errorf("parseRate(%q) = %+v (%s), want %+v", tt.in, got, got, tt.want)
		}
	}
	if got := (Rate{}).String(); got != "unlimited" {
		t.Errorf("Rate{}.String() = %q, want unlimited", got)
	}
}

func TestBudget(t *testing.T) {
	tests := []struct {
		in      string
		whole   bool
		want    BudgetAmount
		wantErr string
	}{
		{"100/day", true, BudgetAmount{100, "day"}, ""},
		{"1/hour", true, BudgetAmount{1, "hour"}, ""},
		{"0.5/month", false, BudgetAmount{0.5, "month"}, ""},
		{"0.5/month", true, BudgetAmount{}, "the amount must be a whole number"},
		{"1000000000000000/day", true, BudgetAmount{1e15, "day"}, ""},
		{"1000000000000001/day", true, BudgetAmount{}, "the amount is more than 1e+15"},
		{"100/week", false, BudgetAmount{}, "the window must be hour, day or month"},
		{"100/Day", false, BudgetAmount{}, "is not a budget"},
		{"100", false, BudgetAmount{}, "is not a budget"},
		{"1e3/day", false, BudgetAmount{}, "is not a budget"},
		{".5/day", false, BudgetAmount{}, "is not a budget"},
		{"-1/day", false, BudgetAmount{}, "is not a budget"},
		{"0/day", false, BudgetAmount{}, "the amount must be positive"},
		{"0.0000/day", false, BudgetAmount{}, "the amount must be positive"},
	}
	for _, tt := range tests {
		got, err := parseBudget(tt.in, tt.whole)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("parseBudget(%q, %v) error = %v, want %q", tt.in, tt.whole, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("parseBudget(%q, %v): %v", tt.in, tt.whole, err)
		case tt.wantErr == "" && (got != tt.want || got.String() != tt.in):
			t.Errorf("parseBudget(%q, %v) = %+v (%s), want %+v", tt.in, tt.whole, got, got, tt.want)
		}
	}
	if got := (BudgetAmount{}).String(); got != "none" {
		t.Errorf("BudgetAmount{}.String() = %q, want none", got)
	}
}

func TestValuesJSON(t *testing.T) {
	type values struct {
		Size   Size         `json:"size"`
		Rate   Rate         `json:"rate"`
		Budget BudgetAmount `json:"budget"`
		Limits Limits       `json:"limits"`
	}
	tests := []struct {
		in      string
		want    values
		wantErr string
	}{
		{`{"size":"64MiB","rate":"50/s","budget":"0.5/day","limits":{"timeout":"1h30m","memory":1048576}}`,
			values{64 * MiB, Rate{50, time.Second}, BudgetAmount{0.5, "day"}, Limits{Timeout: 90 * time.Minute, Memory: MiB}}, ""},
		{`{"size":1024,"rate":"unlimited","budget":"none","limits":null}`, values{Size: KiB}, ""},
		{`{"size":null,"rate":"","budget":"","limits":{}}`, values{}, ""},
		{`{"size":"64MB"}`, values{}, "is not a size"},
		{`{"size":true}`, values{}, "size: want a string"},
		{`{"size":1.5}`, values{}, "size: want a string"},
		{`{"rate":"5/min"}`, values{}, "is not a rate"},
		{`{"rate":5}`, values{}, "rate: want a string"},
		{`{"budget":"5/week"}`, values{}, "the window must be"},
		{`{"budget":{}}`, values{}, "budget: want a string"},
		{`{"limits":{"timeout":"5"}}`, values{}, "is not a duration"},
	}
	for _, tt := range tests {
		var got values
		err := json.Unmarshal([]byte(tt.in), &got)
		switch {
		case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
			t.Errorf("json.Unmarshal(%s) error = %v, want %q", tt.in, err, tt.wantErr)
		case tt.wantErr == "" && err != nil:
			t.Errorf("json.Unmarshal(%s): %v", tt.in, err)
		case tt.wantErr == "" && got != tt.want:
			t.Errorf("json.Unmarshal(%s) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
	b, err := json.Marshal(values{Size: 3 * GiB, Rate: Rate{5, time.Hour}, Budget: BudgetAmount{2.25, "hour"}})
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"size":"3GiB","rate":"5/h","budget":"2.25/hour","limits":{"memory":"0B","timeout":"0s","concurrency":0,"body":"0B","response":"0B"}}`
	if string(b) != want {
		t.Errorf("json.Marshal = %s, want %s", b, want)
	}
}
