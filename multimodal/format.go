// Package multimodal is LatentLM as the paper's general-purpose interface
// ("Multimodal Latent Language Modeling with Next-Token Diffusion", Sun et
// al., 2024, https://arxiv.org/abs/2412.08635, §2 and §3.2): one causal
// Transformer (package lm) reads and writes sequences that mix text tokens
// and image latents. The softmax head predicts text; the diffusion head
// predicts the latents of an image between <BOL> and <EOL>. The same model
// therefore draws an image from a caption, captions an image, answers a
// question about one, and continues plain text (docs/DESIGN.md §11).
//
// Text comes from a byte-level BPE (package text); images from a σ-VAE
// (package vae). Format lays both out on the model's vocabulary:
//
//	text            <|endoftext|> t₁ … tₙ <|endoftext|>
//	caption → image <|endoftext|> caption <BOL> z₀ … z_{N−1} <EOL> <|endoftext|>
//	image → caption <|endoftext|> <BOL> z₀ … z_{N−1} <EOL> caption <|endoftext|>
//	image + question <|endoftext|> <BOL> z₀ … <EOL> question answer <|endoftext|>
//
// The objective is lm.Config.Loss: cross-entropy where the next item is a
// token, plus the diffusion loss, weighted, where it is a latent (paper
// eq. 3 and §2.1). Model generates with the KV-cache engine of package lm:
// text by temperature and top-p, and, when the model itself emits <BOL>,
// the image's latents with DPM-Solver++ under classifier-free guidance,
// whose unconditional stream is the same sequence with the prompt replaced
// by null tokens.
//
// The same package is the VQ-MLLM baseline of the paper's Table 3 (Arch
// VQ, Config): an image is the codes of a VQ-VAE, <BOL> c₀ … c_{N−1}
// <EOL>, with the codes as vocabulary entries after the text; the softmax
// head predicts text and codes alike (CodeLosses) and draws an image code
// by code with top-k sampling and classifier-free guidance on the logits
// (Guide, SampleCode). Layout, tasks, decoding loop and every Model method
// are shared, so the two differ only in how images enter the model.
package multimodal

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"
	"github.com/gomlx/gomlx/ml/model"

	"github.com/latentlm/latentlm/diffusion"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/vae"
)

// Kind is the checkpoint kind of a multimodal model.
const Kind = "multimodal"

// TokenizerFile is the text tokenizer's file in a checkpoint folder, a
// Hugging Face tokenizer.json.
const TokenizerFile = "tokenizer.json"

// Format lays text and images out on a model's vocabulary: text id t is the
// model id Vocab.Text(t), and an image is <BOL>, Items latents of Channels
// values, <EOL> — or, for a VQ-MLLM (Codes > 0), <BOL>, Items code tokens,
// <EOL>.
type Format struct {
	Vocab    lm.Vocab
	EOT      int // the text tokenizer's <|endoftext|> id
	Items    int // latents (or codes) per image
	Channels int // values per latent
	// Codes is the number K of image codes of a VQ-MLLM (Config.Codes):
	// code k is the model id Code(k), after the text ids. 0 for LatentLM.
	Codes int
}

// TextOf is the text tokenizer's id of the model id, and whether id is a
// text token at all (an image code is not).
func (f Format) TextOf(id int) (int, bool) {
	t, ok := f.Vocab.TextOf(id)
	return t, ok && t < f.Vocab.Extra-f.Codes
}

// Code is the model id of image code k of a VQ-MLLM.
func (f Format) Code(k int) int { return f.Vocab.Text(f.Vocab.Extra - f.Codes + k) }

// CodeOf is the image code of the model id, and whether id is one.
func (f Format) CodeOf(id int) (int, bool) {
	k := id - f.Code(0)
	return k, f.Codes > 0 && k >= 0 && k < f.Codes
}

// ImageLen is the number of items an image takes: its latents and the two
// brackets.
func (f Format) ImageLen() int { return f.Items + 2 }

// Row is one sequence being laid out. For training, a latent item holds the
// σ-VAE mean μ and Scales the matching noise scale (vae.Config.Redraw draws
// the latent in the graph); for generation, the latent itself.
type Row struct {
	Items  []lm.Item
	Scales [][]float32 // per item: the noise scale of a latent, else nil
	// NotTarget marks items that no position is trained to predict: the
	// null tokens of a dropped caption.
	NotTarget []bool
	// Clean marks latents that the backbone reads as their mean μ, without
	// the σ-VAE's noise, while they stay noisy diffusion targets
	// (ReadClean). A Clean shorter than Items is false past its end.
	Clean []bool
}

func (r *Row) add(it lm.Item, scale []float32, target bool) {
	r.Items = append(r.Items, it)
	r.Scales = append(r.Scales, scale)
	r.NotTarget = append(r.NotTarget, !target)
	r.Clean = append(r.Clean, false)
}

// Window is items [from, from+n) of the row, a document cut to fit.
func (r Row) Window(from, n int) Row {
	return Row{Items: r.Items[from : from+n], Scales: r.Scales[from : from+n], NotTarget: r.NotTarget[from : from+n], Clean: r.Clean[from : from+n]}
}

// EOT appends <|endoftext|>, which opens and closes every document.
func (r *Row) EOT(f Format) { r.add(lm.TokenItem(f.Vocab.Text(f.EOT)), nil, true) }

// Text appends text ids.
func (r *Row) Text(f Format, ids []int) {
	for _, t := range ids {
		r.add(lm.TokenItem(f.Vocab.Text(t)), nil, true)
	}
}

// Prompt appends text ids that are inputs but not targets, such as a
// question whose answer is the target: nothing trains the model to write
// them.
func (r *Row) Prompt(f Format, ids []int) {
	for _, t := range ids {
		r.add(lm.TokenItem(f.Vocab.Text(t)), nil, false)
	}
}

// Null appends n null tokens, which stand for a dropped caption (the
// unconditional stream of classifier-free guidance) and are never targets.
func (r *Row) Null(f Format, n int) {
	for range n {
		r.add(lm.TokenItem(f.Vocab.Null()), nil, false)
	}
}

// Image appends <BOL>, the image's latents (flat [Items·Channels]), and
// <EOL>; scale (the same shape, or nil) is their σ-VAE noise scale.
func (r *Row) Image(f Format, latents, scale []float32) {
	per := f.Channels
	r.add(lm.TokenItem(f.Vocab.BOL()), nil, true)
	for k := range f.Items {
		var s []float32
		if scale != nil {
			s = scale[k*per : (k+1)*per]
		}
		r.add(lm.LatentItem(latents[k*per:(k+1)*per]), s, true)
	}
	r.add(lm.TokenItem(f.Vocab.EOL()), nil, true)
}

// AsContext makes items [from, to) inputs only, not targets: the latents
// (or codes) of an image a sequence reads as context rather than learns to
// draw (recipe.MultimodalOptions.ContextImagesUntrained).
func (r *Row) AsContext(from, to int) {
	for j := from; j < to; j++ {
		r.NotTarget[j] = true
	}
}

// ReadClean makes the backbone read items [from, to), the latents of an
// image read as context, as their σ-VAE mean μ, as captioning and question
// answering give them in use (Model.Caption encodes without noise), while
// their diffusion targets keep the noise (recipe.MultimodalOptions.
// ContextClean). The noise of the σ-VAE (the paper's §2.3) is what
// makes drawing robust to the model's own errors; in an image to be read it
// only hides the strokes, and with C_σ near the latents' own spread it is
// most of their variance.
func (r *Row) ReadClean(from, to int) {
	for j := from; j < to; j++ {
		r.Clean[j] = true
	}
}

// ImageCodes appends a VQ-MLLM's image: <BOL>, the image's codes (Items
// indices into the codebook, vae.Model.Codes) as tokens, and <EOL>.
func (r *Row) ImageCodes(f Format, codes []int32) {
	r.add(lm.TokenItem(f.Vocab.BOL()), nil, true)
	for _, k := range codes[:f.Items] {
		r.add(lm.TokenItem(f.Code(int(k))), nil, true)
	}
	r.add(lm.TokenItem(f.Vocab.EOL()), nil, true)
}

// Batch is rows packed to one length, the inputs of Losses: Ids [B, L],
// Latents and Scales [B, L, C], IsLatent and Valid [B, L] (Valid is 1 where
// the item is a training target; padding and null tokens are 0), Clean
// [B, L] (1 where the backbone reads a latent's mean, Row.ReadClean), and
// HeadRows and HeadRowWeights [K], where the diffusion head runs
// (lm.HeadRows): the positions whose next item is a latent target. Plain
// text rows have none, so in the default mixture the head runs on about
// half the positions instead of all of them.
type Batch struct {
	Rows, Len           int
	Ids                 []int32
	Latents, Scales     []float32
	IsLatent, Valid     []float32
	Clean               []float32
	HeadRows            []int32
	HeadRowWeights      []float32
	Tokens, LatentItems int // targets of each kind
}

// Pack lays rows out at length l, padding short ones; a longer row is an
// error (the caller cuts text to fit).
func (f Format) Pack(rows []Row, l int) (*Batch, error) {
	c := f.Channels
	b := &Batch{Rows: len(rows), Len: l,
		Ids: make([]int32, len(rows)*l), Latents: make([]float32, len(rows)*l*c), Scales: make([]float32, len(rows)*l*c),
		IsLatent: make([]float32, len(rows)*l), Valid: make([]float32, len(rows)*l), Clean: make([]float32, len(rows)*l)}
	for i, r := range rows {
		if len(r.Items) > l {
			return nil, fmt.Errorf("multimodal: sequence %d has %d items, more than the length %d", i, len(r.Items), l)
		}
		for j, it := range r.Items {
			k := i*l + j
			if !r.NotTarget[j] {
				b.Valid[k] = 1
			}
			// The first item is never predicted: it has nothing before it.
			target := j > 0 && !r.NotTarget[j]
			if it.IsLatent() {
				if len(it.Latent) != c {
					return nil, fmt.Errorf("multimodal: sequence %d item %d: latent of %d values, want %d", i, j, len(it.Latent), c)
				}
				b.IsLatent[k] = 1
				copy(b.Latents[k*c:(k+1)*c], it.Latent)
				if s := r.Scales[j]; s != nil {
					copy(b.Scales[k*c:(k+1)*c], s)
				}
				if j < len(r.Clean) && r.Clean[j] {
					b.Clean[k] = 1
				}
				if target {
					b.LatentItems++
				}
				continue
			}
			b.Ids[k] = int32(it.Token)
			if target {
				b.Tokens++
			}
		}
	}
	b.HeadRows, b.HeadRowWeights = lm.HeadRows(b.IsLatent, b.Valid, b.Rows, l)
	return b, nil
}

// Inputs are the batch as the graph inputs of Losses, in the order
// InputsOf reads them back: ids, latents (the σ-VAE means), their noise
// scales, isLatent and valid, then Clean where clean is set, then HeadRows
// and HeadRowWeights where headRows is; channels is the latent width.
func (b *Batch) Inputs(channels int, clean, headRows bool) []any {
	n, l, c := b.Rows, b.Len, channels
	in := []any{
		tensors.FromFlatDataAndDimensions(b.Ids, n, l),
		tensors.FromFlatDataAndDimensions(b.Latents, n, l, c),
		tensors.FromFlatDataAndDimensions(b.Scales, n, l, c),
		tensors.FromFlatDataAndDimensions(b.IsLatent, n, l),
		tensors.FromFlatDataAndDimensions(b.Valid, n, l),
	}
	if clean {
		in = append(in, tensors.FromFlatDataAndDimensions(b.Clean, n, l))
	}
	if headRows {
		k := len(b.HeadRows)
		in = append(in, tensors.FromFlatDataAndDimensions(b.HeadRows, k), tensors.FromFlatDataAndDimensions(b.HeadRowWeights, k))
	}
	return in
}

// Inputs are a batch's tensors in a training graph, the arguments of
// Losses. Clean, HeadRows and HeadRowWeights may be nil: then every latent
// is read as its draw, and the head runs on every position.
type Inputs struct {
	Ids, Mu, Scale, IsLatent, Valid *Node
	Clean                           *Node
	HeadRows, HeadRowWeights        *Node
}

// Read is what the backbone reads of the latents lat [B, L, C] (draws of
// the batch's σ-VAE moments): the mean μ where Clean is set
// (Row.ReadClean), the draw elsewhere, and lat itself without Clean.
func (in Inputs) Read(lat *Node) *Node {
	if in.Clean == nil {
		return lat
	}
	read := BroadcastToDims(InsertAxes(GreaterThan(in.Clean, ScalarZero(lat.Graph(), in.Clean.DType())), -1), lat.Shape().Dimensions...)
	return Where(read, in.Mu, lat)
}

// InputsOf reads back the graph inputs that Batch.Inputs laid out with the
// same clean and headRows.
func InputsOf(in []*Node, clean, headRows bool) Inputs {
	x := Inputs{Ids: in[0], Mu: in[1], Scale: in[2], IsLatent: in[3], Valid: in[4]}
	rest := in[5:]
	if clean {
		x.Clean, rest = rest[0], rest[1:]
	}
	if headRows {
		x.HeadRows, x.HeadRowWeights = rest[0], rest[1]
	}
	return x
}

// Losses is the multimodal objective of one batch (docs/DESIGN.md §5.3 and
// §11): 𝓛 = 𝓛_CE + λ·𝓛_diff, with the latents drawn anew from their σ-VAE
// moments (vae.Config.Redraw, the paper's §2.3) and batchMul noise draws
// per latent. in.Clean (Batch.Clean), where set, is 1 where the backbone
// reads a latent's mean μ instead of the draw, which stays its diffusion
// target (Row.ReadClean); in.HeadRows, where set, runs the head on the
// latent targets alone, the same objective for less work
// (lm.LossOptions.HeadRows). It returns the total, then the two terms, the
// order train.Loop.Metrics names them.
func Losses(scope *model.Scope, w nn.Weights, cfg lm.Config, tok vae.Config, sched *diffusion.Schedule, batchMul int, lambda float64, in Inputs) []*Node {
	lat := tok.Redraw(scope, in.Mu, in.Scale)
	opts := lm.LossOptions{HeadRows: in.HeadRows, HeadRowWeights: in.HeadRowWeights}
	if in.Clean != nil {
		opts.InputLatents = in.Read(lat)
	}
	l := cfg.LossWith(scope, w, lm.Items{Ids: in.Ids, Latents: lat, IsLatent: in.IsLatent}, in.Valid, sched, batchMul, opts)
	return []*Node{Add(l.CE, MulScalar(l.Diffusion, lambda)), l.CE, l.Diffusion}
}

// CodeLosses is the objective of a VQ-MLLM: the cross-entropy of the
// softmax head at every position whose next item is a target (valid
// [B, L]), text and image codes alike — next-token prediction over one
// vocabulary, the VQ-MLLM of the paper's Table 3. ids [B, L] hold every
// item (a VQ-MLLM has no latents). It returns the total and the
// cross-entropy, the order train.Loop.Metrics names them. A guide
// [B, L, L] (nil for none) adds the guided attention penalty
// (lm.LossOptions.Guide) to the total, and is returned third.
func CodeLosses(w nn.Weights, cfg lm.Config, ids, valid, guide *Node) []*Node {
	g := ids.Graph()
	dims := ids.Shape().Dimensions
	b, l := dims[0], dims[1]
	it := lm.Items{Ids: ids, Latents: Zeros(g, nn.Shape(dtypes.Float32, b, l, cfg.Latent)), IsLatent: Zeros(g, nn.Shape(dtypes.Float32, b, l))}
	h, align := cfg.GuidedBackbone(w, it.Slice(0, l-1), lm.Positions(g, dtypes.Float32, 0, l-1), guide)
	ce := nn.CrossEntropy(cfg.Logits(w, h), SliceAxis(ids, 1, AxisRange(1, l)), SliceAxis(valid, 1, AxisRange(1, l)))
	if align == nil {
		return []*Node{ce, ce}
	}
	return []*Node{Add(ce, align), ce, align}
}
