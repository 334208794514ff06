package vulndb

import (
	"math"
	"strings"

	cvss40 "github.com/pandatix/go-cvss/40"
)

// The severities a Finding can carry, from the CVSS v3 qualitative scale.
const (
	Low      = "LOW"
	Medium   = "MEDIUM"
	High     = "HIGH"
	Critical = "CRITICAL"
)

// cvss3Weight returns the weight of a base metric's value (CVSS v3.1
// specification, section 7.4); PR weighs more when the scope changes,
// which cvss3Score applies.
func cvss3Weight(metric, value string) (float64, bool) {
	switch metric + ":" + value {
	case "AV:N", "PR:N", "UI:N":
		return 0.85, true
	case "AV:A", "PR:L", "UI:R":
		return 0.62, true
	case "AV:L":
		return 0.55, true
	case "AV:P":
		return 0.2, true
	case "AC:L":
		return 0.77, true
	case "AC:H":
		return 0.44, true
	case "PR:H":
		return 0.27, true
	case "S:U", "S:C", "C:N", "I:N", "A:N":
		return 0, true
	case "C:H", "I:H", "A:H":
		return 0.56, true
	case "C:L", "I:L", "A:L":
		return 0.22, true
	}
	return 0, false
}

// cvss3Score computes the base score of a CVSS v3.0 or v3.1 vector such as
// "CVSS:3.1/AV:N/AC:L/PR:N/UI:N/S:U/C:H/I:H/A:H". It reports false for a
// vector that is not one: a missing, repeated or unknown base metric, or a
// malformed part. Temporal and environmental metrics are allowed and do not
// change the base score.
func cvss3Score(vector string) (float64, bool) {
	rest, ok := strings.CutPrefix(vector, "CVSS:3.1/")
	if !ok {
		if rest, ok = strings.CutPrefix(vector, "CVSS:3.0/"); !ok {
			return 0, false
		}
	}
	got := make(map[string]string, 8)
	for part := range strings.SplitSeq(rest, "/") {
		k, v, ok := strings.Cut(part, ":")
		if !ok || k == "" || v == "" {
			return 0, false
		}
		if _, dup := got[k]; dup {
			return 0, false
		}
		got[k] = v
	}
	w := make(map[string]float64, 8)
	for _, metric := range [...]string{"AV", "AC", "PR", "UI", "S", "C", "I", "A"} {
		x, ok := cvss3Weight(metric, got[metric])
		if !ok {
			return 0, false
		}
		w[metric] = x
	}
	changed := got["S"] == "C"
	if changed {
		switch got["PR"] {
		case "L":
			w["PR"] = 0.68
		case "H":
			w["PR"] = 0.5
		}
	}
	iss := 1 - (1-w["C"])*(1-w["I"])*(1-w["A"])
	var impact float64
	if changed {
		impact = 7.52*(iss-0.029) - 3.25*math.Pow(iss-0.02, 15)
	} else {
		impact = 6.42 * iss
	}
	if impact <= 0 {
		return 0, true
	}
	exploitability := 8.22 * w["AV"] * w["AC"] * w["PR"] * w["UI"]
	if changed {
		return roundUp(math.Min(1.08*(impact+exploitability), 10)), true
	}
	return roundUp(math.Min(impact+exploitability, 10)), true
}

// roundUp is CVSS v3.1's Roundup: the smallest number with one decimal
// place not below x, computed so that floating-point noise (4.000000001)
// does not round up a whole tenth.
func roundUp(x float64) float64 {
	i := int64(math.Round(x * 100000))
	if i%10000 == 0 {
		return float64(i) / 100000
	}
	return (math.Floor(float64(i)/10000) + 1) / 10
}

// rating maps a CVSS v3 base score to its qualitative severity; "" for 0
// (None).
func rating(score float64) string {
	switch {
	case score <= 0:
		return ""
	case score < 4:
		return Low
	case score < 7:
		return Medium
	case score < 9:
		return High
	}
	return Critical
}

// databaseSeverity maps a database's own severity word (GHSA writes LOW,
// MODERATE, HIGH, CRITICAL) to a Finding's severity; "" for anything else.
func databaseSeverity(s string) string {
	switch strings.ToUpper(strings.TrimSpace(s)) {
	case "LOW":
		return Low
	case "MODERATE", "MEDIUM":
		return Medium
	case "HIGH":
		return High
	case "CRITICAL":
		return Critical
	}
	return ""
}

// maxVector bounds a CVSS vector's length.
const maxVector = 300

// cvss4Score computes the score of a CVSS v4.0 vector such as
// "CVSS:4.0/AV:N/AC:L/AT:N/PR:N/UI:N/VC:H/VI:H/VA:H/SC:N/SI:N/SA:N", with
// github.com/pandatix/go-cvss (v4.0's score comes from the specification's
// table of macro vectors, which a kept library holds better than we
// would). It reports false for anything that is not such a vector.
func cvss4Score(vector string) (float64, bool) {
	if len(vector) > maxVector || !strings.HasPrefix(vector, "CVSS:4.0/") {
		return 0, false
	}
	v, err := cvss40.ParseVector(vector)
	if err != nil {
		return 0, false
	}
	return v.Score(), true
}
