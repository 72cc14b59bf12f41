// Package flopcount counts the matrix-product work of a built GoMLX graph,
// so that tests can check the FLOP formulas of the models (lm.Config and
// dit.Config SampleFLOPs) against the graphs the samplers really run rather
// than against a restatement of the formulas.
package flopcount

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	. "github.com/gomlx/gomlx/core/graph"
)

var contracting = regexp.MustCompile(`lhsContractingAxes=\[([0-9 ]*)\]`)

// Matmul counts 2 FLOPs per multiply-add of the products (DotGeneral) in
// g: the output size times the size of the contracted axes. Products with
// a constant operand (RoPE's pair swap) or with a 0/1 matrix made by a
// comparison and a conversion (a KV cache's slot write) move data rather
// than compute, and are left out.
func Matmul(g *Graph) (float64, error) {
	var f float64
	for _, n := range g.Nodes() {
		if n.Type() != NodeTypeDotGeneral {
			continue
		}
		lhs, rhs := n.Inputs()[0], n.Inputs()[1]
		if dataMovement(lhs) || dataMovement(rhs) {
			continue
		}
		m := contracting.FindStringSubmatch(n.String())
		if m == nil {
			return 0, fmt.Errorf("flopcount: no contracting axes in %s", n)
		}
		k := 1
		for _, a := range strings.Fields(m[1]) {
			i, err := strconv.Atoi(a)
			if err != nil || i >= lhs.Rank() {
				return 0, fmt.Errorf("flopcount: contracting axis %q of %s", a, n)
			}
			k *= lhs.Shape().Dimensions[i]
		}
		f += 2 * float64(n.Shape().Size()) * float64(k)
	}
	return f, nil
}

func dataMovement(n *Node) bool {
	return n.Type() == NodeTypeConstant || n.Type() == NodeTypeConvertDType
}
