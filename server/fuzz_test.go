package server

import (
	"bytes"
	"errors"
	"math"
	"testing"
)

// FuzzDecodeRequest checks that the request decoder never panics, that
// what it accepts is inside every limit and has a class or a prompt, and that what it refuses is a 4xx
// naming a field. Its seed corpus is in testdata/fuzz/FuzzDecodeRequest.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"class":3}`, `{"model":"latentlm-mnist","class":9,"n":64,"steps":250,"cfg":100,"seed":9007199254740991,"stream":true}`,
		`{"class":3,"cfg":1e400}`, `{"class":"3"}`, `{"class":3,"x":1}`, `[]`, `{"class":3}{}`, `{"class":3,"seed":-0}`,
		`{"prompt":"the digit 3 is to the left of the digit 7","n":4}`, `{"prompt":""}`, `{"prompt":"x","class":1}`, "{\"prompt\":\"\xff\"}"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeRequest(bytes.NewReader(body))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Status < 400 || fe.Status > 499 || fe.Field == "" || fe.Message == "" {
				t.Fatalf("%q: error %#v, want a 4xx FieldError naming a field", body, err)
			}
			return
		}
		if (req.Prompt == "") != (req.Class >= 0) {
			t.Fatalf("%q accepted with class %d and prompt %q: want exactly one", body, req.Class, req.Prompt)
		}
		if req.N < 1 || req.N > MaxImages || req.Steps < 1 || req.Steps > MaxSteps ||
			math.IsNaN(req.CFG) || req.CFG < 0 || req.CFG > MaxCFG || req.Seed < 0 || req.Seed > MaxSeed ||
			!(req.Temperature > 0) || req.Temperature > MaxTemperature {
			t.Fatalf("%q accepted out of range: %+v", body, req)
		}
		if len(body) > MaxBodyBytes {
			t.Fatalf("a body of %d bytes accepted", len(body))
		}
	})
}
