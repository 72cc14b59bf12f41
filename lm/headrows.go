package lm

import "math"

// HeadRows lays out LossOptions.HeadRows and HeadRowWeights on the host for
// a batch of batch rows of length items, from the same isLatent and valid
// [batch·length] the loss reads: the predicting positions b·(length−1)+t
// whose next item t+1 is a latent target (IsLatent and Valid), in order,
// then padding (row 0, weight 0) up to a bucket size K (HeadRowBucket), so
// that a training run compiles a step graph for a few sizes of K instead of
// one per batch.
func HeadRows(isLatent, valid []float32, batch, length int) (rows []int32, weights []float32) {
	for b := range batch {
		for t := range length - 1 {
			k := b*length + t + 1
			if isLatent[k] != 0 && valid[k] != 0 {
				rows = append(rows, int32(b*(length-1)+t))
			}
		}
	}
	n := len(rows)
	k := HeadRowBucket(n, batch*(length-1))
	weights = make([]float32, k)
	for i := range n {
		weights[i] = 1
	}
	return append(rows, make([]int32, k-n)...), weights
}

// HeadRowBucket is the K that HeadRows pads n targets to: the smallest of
// 16·2^(i/3), rounded up to a multiple of 8, that holds n (so at most
// 26% of n, plus 8, rows of padding), but never more than limit, the predicting
// positions of the batch (beyond which gathering saves nothing). That
// leaves at most 3·log₂(limit/16)+2 sizes, within the 32 step graphs a
// GoMLX executable keeps up to limit 16 384 (32 rows of 512 items).
func HeadRowBucket(n, limit int) int {
	for i := 0; ; i++ {
		k := int(math.Ceil(16*math.Pow(2, float64(i)/3)/8)) * 8
		if k >= limit {
			return max(limit, n)
		}
		if k >= n {
			return k
		}
	}
}
