package lm

import (
	"fmt"
	"strings"
)

// Layout is how a class-conditional image sequence is laid out
// (docs/WEIGHTS.md, "Sequence layouts").
type Layout int

const (
	// LayoutBOL is `[class] <BOL> z₀ … z_{N−1} <EOL>`: the hidden state at
	// position k+1 conditions z_k, and the softmax head learns <EOL> after
	// the last latent. It is the layout of every checkpoint whose
	// config.json has no "layout" (the shipped ones).
	LayoutBOL Layout = iota
	// LayoutPublic is the public PyTorch code's (Transformer.forward_parallel
	// and sample_with_cfg in microsoft/unilm LatentLM/models/Transformer.py):
	// `[class] z₀ … z_{N−2}`, the hidden state at position k conditions
	// z_k (z₀ from the class token), no <BOL> or <EOL>, and no
	// cross-entropy term.
	LayoutPublic
)

// ParseLayout reads "bol" or "public".
func ParseLayout(s string) (Layout, error) {
	switch strings.ToLower(s) {
	case "bol":
		return LayoutBOL, nil
	case "public":
		return LayoutPublic, nil
	}
	return 0, fmt.Errorf("unknown sequence layout %q: want bol or public", s)
}

func (l Layout) String() string {
	if l == LayoutPublic {
		return "public"
	}
	return "bol"
}

// MarshalText writes "bol" or "public", the names config.json files use.
func (l Layout) MarshalText() ([]byte, error) {
	if err := l.Valid(); err != nil {
		return nil, err
	}
	return []byte(l.String()), nil
}

// UnmarshalText reads "bol" or "public".
func (l *Layout) UnmarshalText(b []byte) error {
	v, err := ParseLayout(string(b))
	if err != nil {
		return err
	}
	*l = v
	return nil
}

// Set makes a Layout a command-line flag (flag.Value).
func (l *Layout) Set(s string) error { return l.UnmarshalText([]byte(s)) }

// Valid reports whether l is one of the layouts.
func (l Layout) Valid() error {
	if l != LayoutBOL && l != LayoutPublic {
		return fmt.Errorf("invalid sequence layout %d: want bol or public", int(l))
	}
	return nil
}

// Overhead is the number of items beyond the N latents that max_len must
// hold for generating an image of N latents: 3 for [class] <BOL> … <EOL>,
// 1 for the public layout's [class] (the engine keeps room to append the
// last latent).
func (l Layout) Overhead() int {
	if l == LayoutPublic {
		return 1
	}
	return 3
}

// TrainLength is the number of items the backbone runs over in the
// class-conditional loss for images of n latents: n+2 ([class] <BOL>
// z₀ … z_{n−1}, the <EOL> being only a target), or n for the public layout.
func (l Layout) TrainLength(n int) int {
	if l == LayoutPublic {
		return n
	}
	return n + 2
}
