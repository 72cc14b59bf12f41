package multimodal

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
)

// Arch is how images enter a multimodal model. The text, the backbone and
// the layout of the tasks are the same for every arch; only the image
// items differ, which is what the paper's Table 3 compares (LatentLM §3.2,
// https://arxiv.org/abs/2412.08635).
type Arch int

const (
	// Latent is LatentLM: an image is the continuous latents of a σ-VAE,
	// each predicted by the diffusion head from the hidden state before it
	// (next-token diffusion).
	Latent Arch = iota
	// VQ is the VQ-MLLM baseline: an image is the codes of a VQ-VAE
	// (vae kind vq; van den Oord et al. 2017,
	// https://arxiv.org/abs/1711.00937), extra entries of the vocabulary
	// after the text that the same softmax head predicts, as in
	// Chameleon-style early-fusion models and the paper's VQ-MLLM. There
	// is no diffusion head: the objective is cross-entropy alone.
	VQ
)

var archNames = [...]string{Latent: "latentlm", VQ: "vq"}

func (a Arch) String() string {
	if a < 0 || int(a) >= len(archNames) {
		return fmt.Sprintf("Arch(%d)", int(a))
	}
	return archNames[a]
}

// MarshalText writes the config.json name.
func (a Arch) MarshalText() ([]byte, error) {
	if a < 0 || int(a) >= len(archNames) {
		return nil, fmt.Errorf("invalid multimodal arch %d", int(a))
	}
	return []byte(archNames[a]), nil
}

// UnmarshalText reads "latentlm" or "vq".
func (a *Arch) UnmarshalText(b []byte) error {
	for i, n := range archNames {
		if string(b) == n {
			*a = Arch(i)
			return nil
		}
	}
	return fmt.Errorf("unknown multimodal arch %q: want %s", b, strings.Join(archNames[:], " or "))
}

// Set makes an Arch a command-line flag (flag.Value).
func (a *Arch) Set(s string) error { return a.UnmarshalText([]byte(s)) }

// Config is the architecture of a multimodal checkpoint: the language
// model and how images enter it. In config.json it is the language
// model's config with, for a VQ-MLLM only, "arch": "vq" and "codes": K
// beside its fields, so that every LatentLM checkpoint reads as the
// Latent arch it is and is written exactly as before.
type Config struct {
	LM   lm.Config
	Arch Arch
	// Codes is the number K of image codes of a VQ-MLLM, the codebook of
	// its image tokenizer: model ids Vocab.Text(T) … Vocab.Text(T+K−1),
	// after the T text ids (LM.Vocab.Extra = T + K). 0 for Latent.
	Codes int
}

// archFields are the fields a VQ-MLLM adds to the language model's config.
type archFields struct {
	Arch  Arch `json:"arch"`
	Codes int  `json:"codes,omitempty"`
}

// MarshalJSON writes the language model's config, plus the arch and codes
// of a VQ-MLLM.
func (c Config) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(c.LM)
	if err != nil || c.Arch == Latent {
		return b, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return nil, err
	}
	extra, err := json.Marshal(archFields{c.Arch, c.Codes})
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(extra, &fields); err != nil {
		return nil, err
	}
	return json.Marshal(fields)
}

// UnmarshalJSON reads a config; one without "arch" is Latent, even when
// decoding over a config that has another (a resumed run reads its saved
// config over the options of a new one).
func (c *Config) UnmarshalJSON(b []byte) error {
	if err := json.Unmarshal(b, &c.LM); err != nil {
		return err
	}
	var f archFields
	if err := json.Unmarshal(b, &f); err != nil {
		return err
	}
	c.Arch, c.Codes = f.Arch, f.Codes
	return nil
}

// JSON encodes the config.
func (c Config) JSON() []byte {
	b, _ := json.MarshalIndent(c, "", "  ")
	return b
}

// TextIDs is the number of text ids of the vocabulary (those of the text
// tokenizer): LM.Vocab.Extra less the image codes.
func (c Config) TextIDs() int { return c.LM.Vocab.Extra - c.Codes }

// Validate reports an inconsistent configuration.
func (c Config) Validate() error {
	if err := c.LM.Validate(); err != nil {
		return err
	}
	switch c.Arch {
	case Latent:
		if c.Codes != 0 {
			return fmt.Errorf("multimodal config: codes %d given to arch %v: only arch vq has image codes", c.Codes, c.Arch)
		}
	case VQ:
		if c.Codes < 1 || c.TextIDs() < 1 {
			return fmt.Errorf("multimodal config: arch vq needs 1 or more codes and text ids, not %d codes in a vocabulary of %d extra ids", c.Codes, c.LM.Vocab.Extra)
		}
	default:
		return fmt.Errorf("multimodal config: unknown arch %v", c.Arch)
	}
	return nil
}

// Specs declares the weights: the language model's, without the diffusion
// head for a VQ-MLLM (condition_layer, noisy_x_embedder, t_embedder,
// diffusion_blocks and final_layer), which predicts every item with the
// softmax head. x_embedder stays, a d×latent_channels matrix that the
// shared embedding (lm.Config.Embed) multiplies by zeros, since a VQ-MLLM
// has no latent items; with latent_channels 1 it is d numbers.
func (c Config) Specs() []nn.Spec {
	specs := c.LM.Specs()
	if c.Arch != VQ {
		return specs
	}
	var out []nn.Spec
	for _, s := range specs {
		if isHeadWeight(s.Name) {
			continue
		}
		out = append(out, s)
	}
	return out
}

// isHeadWeight says whether a weight of lm.Config.Specs belongs to the
// diffusion head.
func isHeadWeight(name string) bool {
	for _, p := range []string{"condition_layer.", "noisy_x_embedder.", "t_embedder.", "diffusion_blocks.", "final_layer."} {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}

// ForwardFLOPs counts the matmul FLOPs of one teacher-forced forward pass
// (lm.Config.ForwardFLOPs): for a VQ-MLLM the backbone and the softmax head
// at every item, without the diffusion head and its condition layer.
func (c Config) ForwardFLOPs(batch, length, batchMul int) float64 {
	if c.Arch != VQ {
		return c.LM.ForwardFLOPs(batch, length, batchMul)
	}
	d := float64(c.LM.Dim)
	condition := 2*d*float64(c.LM.HeadDim) + 2*float64(c.LM.Latent)*d // counted per item by lm, absent here
	return c.LM.ForwardFLOPs(batch, length, 0) - float64(batch*length)*condition
}

// TrainBytes estimates the memory of training (lm.Config.TrainBytes); for a
// VQ-MLLM the diffusion head's share is an overestimate it keeps.
func (c Config) TrainBytes(batch, seq, batchMul int) float64 {
	if c.Arch == VQ {
		batchMul = 1
	}
	return c.LM.TrainBytes(batch, seq, batchMul)
}
