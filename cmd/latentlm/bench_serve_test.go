package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
)

// TestBenchServe: `latentlm bench serve` at a small size loses no request
// and reports both phases.
func TestBenchServe(t *testing.T) {
	code, stdout, stderr := cli(t, repoRoot(t), "bench", "serve", "--clients", "3", "--requests", "1", "--steps", "2", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var r struct {
		Concurrent, Sequential struct {
			Requests, Lost int
			PerS           float64 `json:"per_s"`
		}
		Ratio       float64 `json:"throughput_ratio"`
		PeakRSSMiB  float64 `json:"peak_rss_mib"`
		CPUFeatures string  `json:"cpu_features"`
	}
	if err := json.Unmarshal([]byte(stdout), &r); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if r.Concurrent.Requests != 3 || r.Concurrent.Lost != 0 || r.Sequential.Lost != 0 || r.Ratio <= 0 || r.Concurrent.PerS <= 0 || r.CPUFeatures == "" {
		t.Errorf("%+v", r)
	}
	// Captions of test canvases by the shipped multimodal model, batched
	// through its sequence batcher.
	code, stdout, stderr = cli(t, repoRoot(t), "bench", "serve", "--task", "captions", "--clients", "2", "--requests", "1", "--json")
	if code != 0 {
		t.Fatalf("--task captions: exit %d: %s", code, stderr)
	}
	var c struct {
		Units                  string
		Concurrent, Sequential struct {
			Requests, Lost int
			PerS           float64 `json:"per_s"`
		}
	}
	if err := json.Unmarshal([]byte(stdout), &c); err != nil {
		t.Fatalf("%v: %s", err, stdout)
	}
	if c.Units != "captions" || c.Concurrent.Requests != 2 || c.Concurrent.Lost != 0 || c.Sequential.Lost != 0 || c.Concurrent.PerS <= 0 {
		t.Errorf("--task captions: %+v", c)
	}
	// Without --model, the shipped weights/tts: it loads, and the missing
	// speech data is what stops the run, named.
	noData := filepath.Join(t.TempDir(), "no-speech")
	if code, _, stderr := cli(t, repoRoot(t), "bench", "serve", "--task", "speech", "--speech-data", noData); code == 0 || !strings.Contains(stderr, noData) {
		t.Errorf("--task speech without --model, without data: exit %d: %s", code, stderr)
	}
	if code, _, stderr := cli(t, repoRoot(t), "bench", "serve", "--clients", "0"); code == 0 || !strings.Contains(stderr, "clients") {
		t.Errorf("--clients 0: exit %d: %s", code, stderr)
	}
}
