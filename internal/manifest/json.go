package manifest

import (
	"encoding/json"
	"time"
)

// limitsJSON is how Limits is stored: the field names of moat.yaml, sizes,
// rates and the timeout as their string forms.
type limitsJSON struct {
	Memory        Size   `json:"memory"`
	Timeout       string `json:"timeout"`
	Concurrency   int    `json:"concurrency"`
	Rate          Rate   `json:"rate,omitzero"`
	RatePerCaller Rate   `json:"rate_per_caller,omitzero"`
	Body          Size   `json:"body"`
	Response      Size   `json:"response"`
}

// MarshalJSON encodes l with the field names of moat.yaml and the timeout
// as a duration string like "10s".
func (l Limits) MarshalJSON() ([]byte, error) {
	return json.Marshal(limitsJSON{
		Memory:        l.Memory,
		Timeout:       formatDuration(l.Timeout),
		Concurrency:   l.Concurrency,
		Rate:          l.Rate,
		RatePerCaller: l.RatePerCaller,
		Body:          l.Body,
		Response:      l.Response,
	})
}

// UnmarshalJSON decodes what MarshalJSON encodes. It does not check the
// values' bounds; Validate does.
func (l *Limits) UnmarshalJSON(b []byte) error {
	if string(b) == "null" {
		return nil
	}
	var j limitsJSON
	if err := json.Unmarshal(b, &j); err != nil {
		return err
	}
	var timeout time.Duration
	if j.Timeout != "" {
		d, err := parseDuration(j.Timeout)
		if err != nil {
			return err
		}
		timeout = d
	}
	*l = Limits{
		Memory:        j.Memory,
		Timeout:       timeout,
		Concurrency:   j.Concurrency,
		Rate:          j.Rate,
		RatePerCaller: j.RatePerCaller,
		Body:          j.Body,
		Response:      j.Response,
	}
	return nil
}
