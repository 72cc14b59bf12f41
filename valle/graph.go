package valle

import (
	"fmt"

	"github.com/gomlx/compute/dtypes"
	. "github.com/gomlx/gomlx/core/graph" //nolint:staticcheck
	"github.com/gomlx/gomlx/core/tensors"

	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
)

// NARInputs is a NARBatch as graph nodes (see NARBatch for the shapes).
type NARInputs struct {
	Ids, Codes, Use, IsFrame, Stage, Last *Node
}

// NARLogits is the NAR over a batch: logits [B, L, CodebookSize] of the
// codebook each row's stage predicts, at every item (only the speech
// frames' mean anything). The input of item t is its token's embedding,
// or at a frame the sum of the embeddings of the codebooks Use marks,
// plus the stage's embedding everywhere; the blocks attend in both
// directions over the items up to each row's Last (padding is never
// seen), with rotary positions; the logits are the final hidden states
// against codebook Stage's embedding table (tied, as VALL-E's).
func (c Config) NARLogits(w nn.Weights, in NARInputs) *Node {
	g := in.Ids.Graph()
	dims := in.Ids.Shape().Dimensions
	b, l, n, k, d := dims[0], dims[1], c.Codebooks, c.CodebookSize, c.LM.Dim
	isFrame := InsertAxes(in.IsFrame, -1)
	x := Mul(nn.Embed(w.Get(narTokens), in.Ids), OneMinus(isFrame))
	tables := make([]*Node, n)
	for j := range n {
		tables[j] = w.Get("%s", narCodes(j))
		code := Reshape(SliceAxis(in.Codes, 2, AxisElem(j)), b, l)
		use := SliceAxis(in.Use, 2, AxisElem(j)) // [B, L, 1]
		x = Add(x, Mul(nn.Embed(tables[j], code), use))
	}
	stage := OneHot(in.Stage, n, x.DType())                    // [B, N]
	x = Add(x, InsertAxes(MatMul(stage, w.Get(narStages)), 1)) // + stage embedding [B, 1, d]
	pos := Iota(g, nn.Shape(x.DType(), l), 0)                  // [L]
	visible := BroadcastToDims(InsertAxes(in.Last, -1), b, l)  // [B, L]: every item sees 0…Last
	blk := c.narBlock()
	for i := range c.NARDepth {
		x, _ = blk.ForwardWith(w, fmt.Sprintf("nar.blocks.%d", i), x, nn.AttentionOptions{Pos: pos, RoPE: true, Causal: true, Visible: visible})
	}
	h := nn.RMSNorm(x)
	all := Reshape(Stack(tables, 0), n, k*d)    // [N, K·d]
	out := Reshape(MatMul(stage, all), b, k, d) // the stage's table, per row
	return Einsum("bld,bkd->blk", h, out)
}

// Losses is the baseline's objective on one batch: the AR's cross-entropy
// over its targets (the first codebook's codes and <EOL>,
// multimodal.CodeLosses) plus the NAR's over the codes of each row's
// stage at the speech frames. It returns the total, then the two terms.
// With a guide [B, L, L] (Format.ARGuide; nil for none) the objective also
// has align·𝓛_align, 𝓛_align the AR's guided attention penalty averaged
// over the guided layers, as LatentLM's text-to-speech trains with
// (tts.Losses), returned fourth: so the comparison can give both models
// the same help in finding where they are in the text.
func (c Config) Losses(w nn.Weights, arIds, arValid *Node, nar NARInputs, targets, mask, guide *Node, align float64) []*Node {
	terms := multimodal.CodeLosses(w, c.LM, arIds, arValid, guide)
	ar := terms[1]
	nc := nn.CrossEntropy(c.NARLogits(w, nar), targets, mask)
	if guide == nil {
		return []*Node{Add(ar, nc), ar, nc}
	}
	mean := DivScalar(terms[2], float64(c.LM.GuidedLayers()))
	return []*Node{Add(Add(ar, nc), MulScalar(mean, align)), ar, nc, mean}
}

// TrainingInputs are the inputs of one training step, in the order
// TrainingLosses reads them: the AR batch (ids, valid), the NAR batch (ids,
// codes, use, is-frame, stage, last, targets, mask) and, when not nil, the
// AR's guide (Format.ARGuide).
func TrainingInputs(ar *ARBatch, nar *NARBatch, guide []float32) []any {
	b, l, n := ar.Rows, ar.Len, len(nar.Codes)/(nar.Rows*nar.Len)
	in := []any{
		tensors.FromFlatDataAndDimensions(ar.Ids, b, l), tensors.FromFlatDataAndDimensions(ar.Valid, b, l),
		tensors.FromFlatDataAndDimensions(nar.Ids, b, l), tensors.FromFlatDataAndDimensions(nar.Codes, b, l, n),
		tensors.FromFlatDataAndDimensions(nar.Use, b, l, n), tensors.FromFlatDataAndDimensions(nar.IsFrame, b, l),
		tensors.FromFlatDataAndDimensions(nar.Stage, b), tensors.FromFlatDataAndDimensions(nar.Last, b),
		tensors.FromFlatDataAndDimensions(nar.Targets, b, l), tensors.FromFlatDataAndDimensions(nar.Mask, b, l),
	}
	if guide != nil {
		in = append(in, tensors.FromFlatDataAndDimensions(guide, b, l, l))
	}
	return in
}

// TrainingLosses is Losses over the graph inputs of TrainingInputs, the
// guide the eleventh when there is one.
func (c Config) TrainingLosses(w nn.Weights, in []*Node, align float64) []*Node {
	var guide *Node
	if len(in) > 10 {
		guide = in[10]
	}
	return c.Losses(w, in[0], in[1], NARInputs{Ids: in[2], Codes: in[3], Use: in[4], IsFrame: in[5], Stage: in[6], Last: in[7]}, in[8], in[9], guide, align)
}

// ARLogits is the AR's teacher-forced softmax head over ids [B, L]:
// logits [B, L, Vocab] for the item after each (the full forward pass
// that KV-cache decoding must agree with).
func (c Config) ARLogits(w nn.Weights, ids *Node) *Node {
	g := ids.Graph()
	b, l := ids.Shape().Dimensions[0], ids.Shape().Dimensions[1]
	it := lm.Items{Ids: ids, Latents: Zeros(g, nn.Shape(dtypes.Float32, b, l, c.LM.Latent)), IsLatent: Zeros(g, nn.Shape(dtypes.Float32, b, l))}
	h, _ := c.LM.Backbone(w, it, lm.Positions(g, dtypes.Float32, 0, l), nil)
	return c.LM.Logits(w, h)
}
