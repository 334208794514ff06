package audit

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"
)

// TestEncodeIsJSON: the hand-written encoder writes what encoding/json
// writes, so any JSON tool reads the trail and Verify can re-encode what it
// decodes.
func TestEncodeIsJSON(t *testing.T) {
	for _, r := range []Record{
		{Seq: 1, Time: time.Date(2026, 11, 28, 1, 2, 3, 456789000, time.UTC), Node: "n", Action: "invoke", Outcome: OK, Prev: ""},
		{Seq: 99, Time: time.Unix(0, 1).UTC(), Node: "n", Actor: "key:ab", Action: "refuse", Target: "f", Outcome: Refused, Reason: "input",
			Source: "[::1]:80", UserAgent: "a\"b\\c\n\t<script>&\u2028\x00\x7f é 日本", Version: "v", InvocationID: "i", Trigger: "http",
			Status: 429, TookMS: 0.000001, Memory: "64MiB", Capability: "kv.get", Resource: "contacts/\u2028<x>", Repeats: 9999, Prev: "p"},
		{Seq: 3, Node: "n", Action: "x", Outcome: OK, TookMS: 1e21, UserAgent: "bad \xff utf8"},
		{Seq: 4, Node: "n", Action: "x", Outcome: OK, TookMS: 12.345, Status: -1, Repeats: -3},
	} {
		got := appendJSON(nil, &r, "h")
		r.Hash = "h"
		want, _ := json.Marshal(r)
		if !bytes.Equal(got, want) {
			t.Errorf("appendJSON =\n%s\nencoding/json =\n%s", got, want)
		}
	}
}

func FuzzEncode(f *testing.F) {
	f.Add(uint64(1), "agent", "reason", 1.5, 200)
	f.Fuzz(func(t *testing.T, seq uint64, ua, reason string, took float64, status int) {
		r := Record{Seq: seq, Time: time.Unix(int64(seq%1e10), 0).UTC(), Node: "n", Action: "invoke", Outcome: OK,
			UserAgent: ua, Reason: reason, TookMS: took, Status: status}
		got := appendJSON(nil, &r, "h")
		r.Hash = "h"
		want, err := json.Marshal(r)
		if err != nil {
			return // NaN and infinities: never produced
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("appendJSON =\n%s\nencoding/json =\n%s", got, want)
		}
	})
}
