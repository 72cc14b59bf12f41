package server

import (
	"bytes"
	"encoding/base64"
	"errors"
	"math"
	"testing"
	"unicode/utf8"

	"github.com/latentlm/latentlm/tts"
	"github.com/latentlm/latentlm/wav"
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

// FuzzDecodeSpeechRequest checks that the speech request decoder never
// panics, that what it accepts has a text of 1…MaxSpeechText characters,
// a voice or a prompt of MinPromptSeconds…MaxPromptSeconds at 16 kHz (not
// both) and every option inside its range, and that what it refuses is a
// 4xx naming a field. Its seed corpus is in
// testdata/fuzz/FuzzDecodeSpeechRequest.
func FuzzDecodeSpeechRequest(f *testing.F) {
	var w bytes.Buffer
	if err := wav.Encode(&w, wav.Audio{Rate: 8000, Samples: make([]float32, 2000)}); err != nil {
		f.Fatal(err)
	}
	prompt := base64.StdEncoding.EncodeToString(w.Bytes())
	for _, s := range []string{`{"text":"four hundred twelve","voice":"flite-awb"}`,
		`{"model":"tts","text":"hi","voice":"x","steps":250,"cfg":100,"seed":9007199254740991,"max_seconds":60,"stream":true}`,
		`{"text":"hi","prompt_wav":"` + prompt + `"}`, `{"text":"hi","prompt_wav":"data:audio/wav;base64,` + prompt + `"}`,
		`{"text":"hi","prompt_wav":"UklGRiQAAABXQVZF"}`, `{"text":"hi","voice":"x","prompt_wav":"` + prompt + `"}`,
		`{"text":"hi"}`, `{"text":" ","voice":"x"}`, `{"text":"hi","voice":"x","max_seconds":0}`, `{"text":"hi","voice":"x","cfg":1e400}`,
		"{\"text\":\"\xff\",\"voice\":\"x\"}", `{"text":"hi","voice":"x","steps":0}`, `[]`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := DecodeSpeechRequest(bytes.NewReader(body))
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) || fe.Status < 400 || fe.Status > 499 || fe.Field == "" || fe.Message == "" {
				t.Fatalf("%q: error %#v, want a 4xx FieldError naming a field", body, err)
			}
			return
		}
		if n := utf8.RuneCountInString(tts.Normalize(req.Text)); n < 1 || n > MaxSpeechText {
			t.Fatalf("%q accepted with a text of %d characters", body, n)
		}
		if (req.Voice == "") == (req.Prompt == nil) {
			t.Fatalf("%q accepted with voice %q and a prompt of %d samples: want exactly one", body, req.Voice, len(req.Prompt))
		}
		if secs := float64(len(req.Prompt)) / tts.Rate; req.Prompt != nil && (secs < MinPromptSeconds*0.99 || secs > MaxPromptSeconds*1.01) {
			t.Fatalf("%q accepted with a prompt of %g s", body, secs)
		}
		if req.Steps < 1 || req.Steps > MaxSteps || math.IsNaN(req.CFG) || req.CFG < 0 || req.CFG > MaxCFG || req.Seed < 0 || req.Seed > MaxSeed ||
			!(req.MaxSeconds > 0) || req.MaxSeconds > MaxSpeechSeconds {
			t.Fatalf("%q accepted out of range: %+v", body, req)
		}
		if len(body) > MaxSpeechBodyBytes {
			t.Fatalf("a body of %d bytes accepted", len(body))
		}
	})
}
