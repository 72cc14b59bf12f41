package main

import (
	"fmt"
	"strings"

	"github.com/latentlm/latentlm/checkpoint"
)

func init() {
	register("average", "average the weights of checkpoints of one model (a uniform model soup)", runAverage)
}

func runAverage(args []string) error {
	fs := newFlags("average", "average --out DIR MODEL MODEL [MODEL...]\n\n"+
		"Writes a checkpoint whose weights are the mean of the MODELs' (of one kind and\n"+
		"architecture, trained on one tokenizer): warm restarts or snapshots of one run").takesArgs()
	out := fs.String("out", "", "the folder of the averaged checkpoint (required; must not hold a checkpoint)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	models := fs.Args()
	switch {
	case *out == "":
		return fmt.Errorf("--out is required")
	case len(models) < 2:
		return fmt.Errorf("want at least two model folders to average, got %d", len(models))
	}
	if err := checkpoint.Average(*out, models); err != nil {
		return err
	}
	kind, err := checkpoint.ReadKind(*out)
	if err != nil {
		return err
	}
	fmt.Printf("wrote %s: a %s model, the mean of the weights of %s\n", *out, kind, strings.Join(models, ", "))
	return nil
}
