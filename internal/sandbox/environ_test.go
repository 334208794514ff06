package sandbox

import (
	"slices"
	"testing"
)

func TestLastWins(t *testing.T) {
	for _, tt := range []struct{ in, want []string }{
		{[]string{"A=1", "B=2"}, []string{"A=1", "B=2"}},
		{[]string{"A=1", "A=2", "A0=3"}, []string{"A=2", "A0=3"}}, // sorted, twins adjacent
		{[]string{"B=1", "A=x", "B=2"}, []string{"A=x", "B=2"}},   // unsorted
		{[]string{"K=a", "K0=x", "K=b"}, []string{"K0=x", "K=b"}}, // unsorted, twins apart
		{[]string{"NOEQUALS", "NOEQUALS"}, []string{"NOEQUALS"}},
	} {
		if got := lastWins(tt.in); !slices.Equal(got, tt.want) {
			t.Errorf("lastWins(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}
