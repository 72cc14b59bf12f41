package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/lm"
	"github.com/latentlm/latentlm/recipe"
)

func init() {
	register("export", "write a model's weights for the public PyTorch LatentLM (--format pytorch)", runExport)
	register("import", "make a checkpoint from the public PyTorch LatentLM's weights (--format pytorch)", runImport)
}

// checkFormat accepts the only interchange format there is.
func checkFormat(format string) error {
	if format != "pytorch" {
		return fmt.Errorf("--format %q: want pytorch", format)
	}
	return nil
}

func runExport(args []string) error {
	fs := newFlags("export", "export --format pytorch --model DIR --out FILE.safetensors")
	format := fs.String("format", "pytorch", "interchange format: pytorch (the state dict of microsoft/unilm LatentLM/models/Transformer.py)")
	modelDir := fs.String("model", "", "LatentLM checkpoint to export (layout public, head_dim = dim, target eps)")
	out := fs.String("out", "", "output safetensors file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if err := checkFormat(*format); err != nil {
		return err
	}
	if *modelDir == "" || *out == "" {
		return errors.New("--model and --out are required")
	}
	if err := guard.CheckOutputFormat(*out, ".safetensors", *modelDir); err != nil {
		return err
	}
	if err := lm.ExportPyTorch(*modelDir, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s: the public PyTorch weights of %s\n", *out, *modelDir)
	return nil
}

func runImport(args []string) error {
	fs := newFlags("import", "import --format pytorch FILE.safetensors --config CONFIG.json --out DIR [--vae DIR]").takesArgs()
	format := fs.String("format", "pytorch", "interchange format: pytorch (the state dict of microsoft/unilm LatentLM/models/Transformer.py)")
	cfgPath := fs.String("config", "", "the architecture: a checkpoint's config.json, or its \"config\" object alone (layout public)")
	out := fs.String("out", "", "checkpoint folder to create (missing or empty)")
	vaeDir := fs.String("vae", "", "tokenizer to record in the checkpoint (default: none; sampling then needs --vae)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	files := fs.Args()
	if err := checkFormat(*format); err != nil {
		return err
	}
	if len(files) != 1 {
		return fmt.Errorf("want one safetensors file of public weights, got %d", len(files))
	}
	src := files[0]
	if *cfgPath == "" || *out == "" {
		return errors.New("--config and --out are required")
	}
	cfg, err := lm.ReadConfigFile(*cfgPath)
	if err != nil {
		return err
	}
	if err := cfg.PyTorchCompatible(); err != nil {
		return fmt.Errorf("%s: %w", *cfgPath, err)
	}
	inputs := []string{src, *cfgPath}
	if *vaeDir != "" {
		inputs = append(inputs, *vaeDir)
	}
	if err := guard.CheckOutputDir(*out, inputs...); err != nil {
		return err
	}
	var tok lm.Tokenizer
	if *vaeDir != "" {
		if tok, err = recipe.TokenizerRecord(*vaeDir, cfg); err != nil {
			return err
		}
	}
	sum, err := checkpoint.FileSHA256(src)
	if err != nil {
		return err
	}
	info := map[string]any{"imported_from": map[string]any{"format": "pytorch", "file": filepath.Base(src), "sha256": sum}}
	if err := lm.ImportPyTorch(src, cfg, tok, info, *out); err != nil {
		return err
	}
	fmt.Printf("wrote %s from %s\n", *out, src)
	return nil
}
