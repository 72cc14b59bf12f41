package lm

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/deps"
)

// Kind is the checkpoint kind of a LatentLM model.
const Kind = "latentlm"

// Tokenizer records which tokenizer produced the latents a model was trained
// on, so that sampling refuses a tokenizer whose latents mean something else.
type Tokenizer struct {
	Path     string `json:"path"`
	SHA256   string `json:"sha256"` // of the tokenizer's model.safetensors
	Kind     string `json:"kind"`
	Items    int    `json:"items"`
	Channels int    `json:"channels"`
	Data     string `json:"data"`
}

// Find returns the tokenizer folder of the model in modelDir: explicit if
// set, else the recorded path, else the shipped tokenizer of that name; its
// weights must have the recorded checksum, or record that they share the
// latents of the weights that have it (checkpoint.SharesLatents: a
// tokenizer whose decoder alone was trained further). A model that records no
// tokenizer (one imported from the public PyTorch weights without one,
// docs/WEIGHTS.md) takes the explicit one, whose channels and grid must
// still fit.
func (t Tokenizer) Find(modelDir, explicit string) (string, error) {
	tokDir := explicit
	if explicit != "" && t.Path == "" && t.SHA256 == "" {
		return explicit, nil
	}
	if tokDir == "" {
		if t.Path == "" {
			return "", fmt.Errorf("%s records no tokenizer: name one", modelDir)
		}
		// The recorded path, else the shipped tokenizer of that name: the
		// checksum below decides which one is really the model's.
		tokDir = t.Path
		if _, err := os.Stat(tokDir); err != nil {
			if alt, err := deps.Weights(filepath.Base(tokDir)); err == nil {
				tokDir = alt
			}
		}
	}
	sum, ok, err := checkpoint.SharesLatents(tokDir, t.SHA256)
	if err != nil {
		return "", fmt.Errorf("tokenizer of %s: %w", modelDir, err)
	}
	if !ok {
		return "", fmt.Errorf("tokenizer %s is not the one %s was trained with, nor does it share its latents (sha256 %.12s…, want %.12s…)", tokDir, modelDir, sum, t.SHA256)
	}
	return tokDir, nil
}

// Save writes a model checkpoint with the EMA weights (what sampling uses).
func Save(dir string, cfg Config, store *model.Store, tok Tokenizer, info map[string]any) error {
	return SaveKind(dir, Kind, cfg, store, tok, info)
}

// Load reads a model checkpoint and the tokenizer record it was saved with.
func Load(dir string) (Config, *model.Store, Tokenizer, error) {
	var cfg Config
	store, tok, _, err := LoadKind(dir, Kind, &cfg)
	return cfg, store, tok, err
}

// SaveKind writes the checkpoint of any latent generator (this model, or a
// baseline of another kind) with its EMA weights and tokenizer record.
func SaveKind(dir, kind string, cfg checkpoint.Model, store *model.Store, tok Tokenizer, info map[string]any) error {
	if info == nil {
		info = map[string]any{}
	}
	info["tokenizer"] = tok
	return checkpoint.Save(dir, kind, cfg, info, store, true, nil)
}

// LoadKind reads a checkpoint written by SaveKind, decoding its config into
// cfg (a pointer). It returns the weights, the record of the tokenizer the
// model reads and writes, and the header, whose info the caller may read
// further.
func LoadKind(dir, kind string, cfg checkpoint.Model) (*model.Store, Tokenizer, *checkpoint.Header, error) {
	store, hdr, _, err := checkpoint.Load(dir, kind, cfg, nil)
	if err != nil {
		return nil, Tokenizer{}, nil, err
	}
	var tok Tokenizer
	if err := checkpoint.DecodeInfo(hdr, "tokenizer", &tok); err != nil {
		return nil, Tokenizer{}, nil, fmt.Errorf("%s: %w", dir, err)
	}
	return store, tok, hdr, nil
}
