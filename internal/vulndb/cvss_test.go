package vulndb

import (
	"strings"
	"testing"

	cvss30 "github.com/pandatix/go-cvss/30"
	cvss31 "github.com/pandatix/go-cvss/31"
)

func TestCVSS3Score(t *testing.T) {
	tests := []struct {
		vector string
		want   float64
		ok     bool
	}{
		// Worked by hand in TestParseOSVSeverity.
		{"CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", 7.2, true},
		// Scope changed, by hand: ISS 0.56; impact 7.52*0.531 -
		// 3.25*0.54^15 = 3.9928; exploitability 8.22*0.85*0.77*0.85*0.85 =
		// 3.8870; 1.08*7.8798 = 8.5102, rounded up 8.6.
		{"CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N", 8.6, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 9.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:L", 5.3, true},
		{"CVSS:3.1/AV:N/AC:H/PR:L/UI:R/S:U/C:N/I:N/A:L", 2.6, true},
		{"CVSS:3.1/AV:L/AC:H/PR:H/UI:R/S:U/C:H/I:H/A:N", 5.6, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:R/S:C/C:L/I:L/A:N", 6.1, true},
		// PR:L weighs 0.68 when the scope changes.
		{"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", 9.9, true},
		{"CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N", 1.6, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:H/A:H", 10, true},
		// Temporal and environmental metrics do not change the base score.
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H", 9.8, true},
		// Order does not matter.
		{"CVSS:3.1/A:H/I:H/C:H/S:U/UI:N/PR:N/AC:L/AV:N", 9.8, true},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:N/I:N/A:N", 0, true},

		{"", 0, false},
		{"CVSS:2.0/AV:N/AC:L/Au:N/C:P/I:P/A:P", 0, false},
		{"AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 0, false},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H", 0, false},
		{"CVSS:3.1/AV:N/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},
		{"CVSS:3.1/AV:X/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H", 0, false},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/", 0, false},
		{"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E", 0, false},
		{"CVSS:3.1/", 0, false},
	}
	for _, tt := range tests {
		got, ok := cvss3Score(tt.vector)
		if got != tt.want || ok != tt.ok {
			t.Errorf("cvss3Score(%q) = %v, %v, want %v, %v", tt.vector, got, ok, tt.want, tt.ok)
		}
	}
}

func TestRoundUp(t *testing.T) {
	tests := []struct{ in, want float64 }{
		{4.0, 4.0}, {4.000000001, 4.0}, {4.02, 4.1}, {4.1, 4.1}, {7.1078, 7.2}, {0.01, 0.1}, {9.99, 10},
	}
	for _, tt := range tests {
		if got := roundUp(tt.in); got != tt.want {
			t.Errorf("roundUp(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestRating(t *testing.T) {
	tests := []struct {
		score float64
		want  string
	}{
		{0, ""}, {0.1, Low}, {3.9, Low}, {4, Medium}, {6.9, Medium}, {7, High}, {8.9, High}, {9, Critical}, {10, Critical},
	}
	for _, tt := range tests {
		if got := rating(tt.score); got != tt.want {
			t.Errorf("rating(%v) = %q, want %q", tt.score, got, tt.want)
		}
	}
}

func TestCVSS4Score(t *testing.T) {
	for _, tt := range []struct {
		vector string
		want   float64
		rating string
	}{
		// The specification's calculator gives these (FIRST, CVSS v4.0).
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", 9.3, Critical},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:H/SI:H/SA:H", 10, Critical},
		{"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:N/VI:N/VA:N/SC:N/SI:N/SA:N", 0, ""},
	} {
		got, ok := cvss4Score(tt.vector)
		if !ok || got != tt.want || (tt.rating != "" && rating(got) != tt.rating) {
			t.Errorf("cvss4Score(%q) = %v, %v, want %v (%s)", tt.vector, got, ok, tt.want, tt.rating)
		}
	}
	for _, bad := range []string{
		"", "CVSS:4.0/", "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H",
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N", // SA missing
		"CVSS:4.0/AV:X/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
		"CVSS:4.0/AV:N/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N",
		"CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/" + string(make([]byte, 400)),
	} {
		if _, ok := cvss4Score(bad); ok {
			t.Errorf("cvss4Score(%q) accepted", bad)
		}
	}
	// An OSV record with only a v4 vector gets its severity from it.
	if sev, score := severityOf([]severity{{typ: "CVSS_V4", score: "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N"}}, ""); sev != Critical || score != 9.3 {
		t.Errorf("severityOf a v4 vector = %s %v", sev, score)
	}
}

// FuzzCVSS3AgainstOracle holds the hand-written v3 scorer to
// github.com/pandatix/go-cvss: a vector the library reads, ours reads too,
// with the same base score.
//
//	go test ./internal/vulndb -run XXX -fuzz FuzzCVSS3AgainstOracle -fuzztime 60s
func FuzzCVSS3AgainstOracle(f *testing.F) {
	for _, v := range []string{
		"CVSS:3.1/AV:N/AC:L/PR:H/UI:N/S:U/C:H/I:H/A:H", "CVSS:3.0/AV:N/AC:L/PR:N/UI:N/S:C/C:H/I:N/A:N",
		"CVSS:3.1/AV:N/AC:L/PR:L/UI:N/S:C/C:H/I:H/A:H", "CVSS:3.1/AV:P/AC:H/PR:H/UI:R/S:U/C:L/I:N/A:N",
		"CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H/E:P/RL:O/RC:C/CR:H",
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, vector string) {
		var oracle float64
		switch {
		case strings.HasPrefix(vector, "CVSS:3.1/"):
			v, err := cvss31.ParseVector(vector)
			if err != nil {
				return
			}
			oracle = v.BaseScore()
		case strings.HasPrefix(vector, "CVSS:3.0/"):
			v, err := cvss30.ParseVector(vector)
			if err != nil {
				return
			}
			oracle = v.BaseScore()
		default:
			return
		}
		got, ok := cvss3Score(vector)
		if !ok || got != oracle {
			t.Fatalf("%q: ours %v (%v), go-cvss %v", vector, got, ok, oracle)
		}
	})
}

// FuzzCVSS4Score: any vector is scored in range or refused, never a panic
// (an advisory's vector is input from the database's authors).
func FuzzCVSS4Score(f *testing.F) {
	f.Add("CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N/E:A/CR:H/MAV:L")
	f.Fuzz(func(t *testing.T, vector string) {
		if score, ok := cvss4Score(vector); ok && (score < 0 || score > 10) {
			t.Fatalf("%q scored %v", vector, score)
		}
	})
}
