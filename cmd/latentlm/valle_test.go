package main

import "testing"

// TestTrainVALLEFlags: `train --task valle` needs a codec, and says so in
// one line; the task is known to the train command.
func TestTrainVALLEFlags(t *testing.T) {
	dir := t.TempDir()
	code, _, stderr := cli(t, dir, "train", "--task", "valle", "--out", dir+"/out")
	expectOneLineError(t, code, stderr, "--codec is required")
	code, _, stderr = cli(t, dir, "train", "--task", "valle", "--codec", dir, "--depth", "0")
	expectOneLineError(t, code, stderr, "--depth")
}
