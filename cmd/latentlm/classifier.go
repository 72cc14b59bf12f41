package main

import (
	"cmp"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/gomlx/compute"

	"github.com/latentlm/latentlm/classifier"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/recipe"
)

func init() {
	register("classifier", "train and evaluate the CNN that the evaluation scores images with", runClassifier)
}

func runClassifier(args []string) error {
	return dispatch("classifier", "usage: latentlm classifier train|eval [flags]\n\n"+
		"  train  train the evaluation classifier on mnist, fashion or a canvas set, or an emoji judge\n"+
		"         (--data emoji --target subcategory|tone); prints its test accuracy\n"+
		"  eval   test accuracy of a classifier checkpoint",
		map[string]func([]string) error{"train": classifierTrain, "eval": classifierEval}, args)
}

// loadClassifier reads dir, or the shipped classifier of the data set.
func loadClassifier(b compute.Backend, dir, dataName string) (*classifier.Model, string, error) {
	if dir == "" {
		var err error
		if dir, err = weightsDir("classifier-" + dataName); err != nil {
			return nil, "", err
		}
	}
	return evaluate.LoadClassifier(b, dir, dataName)
}

// testAccuracy is the classifier's accuracy on the whole test split.
func testAccuracy(m *classifier.Model, dataName string) (float64, error) {
	return evaluate.TestAccuracy(m, dataName)
}

func classifierEval(args []string) error {
	fs := newFlags("classifier eval", "classifier eval --data mnist|fashion|mnist-canvas|fashion-canvas|emoji [--classifier DIR]")
	backendName := fs.String("backend", "", "compute backend: onnx, go or xla")
	dataName := fs.String("data", "mnist", "data set: mnist, fashion, mnist-canvas, fashion-canvas or emoji")
	dir := fs.String("classifier", "", "classifier checkpoint (default: the shipped weights/classifier-<data>; emoji: weights/judge-emoji-<target>)")
	target := fs.String("target", "", "the emoji judge: subcategory or tone (default: the --classifier's)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dataName == recipe.EmojiData {
		return emojiJudgeEval(*backendName, *dir, *target)
	}
	if err := checkDataName(*dataName); err != nil {
		return err
	}
	b, _, err := openBackend(*backendName)
	if err != nil {
		return err
	}
	m, path, err := loadClassifier(b, *dir, *dataName)
	if err != nil {
		return err
	}
	t0 := time.Now()
	acc, err := testAccuracy(m, *dataName)
	if err != nil {
		return err
	}
	fmt.Printf("classifier %s on %s test: accuracy %.2f%% (%s)\n", path, *dataName, 100*acc, time.Since(t0).Round(time.Millisecond))
	return nil
}

// emojiJudgeEval prints an emoji judge's accuracy on the test split and on
// its held-out emoji/skin-tone combinations.
func emojiJudgeEval(backendName, dir, target string) error {
	if dir == "" {
		if target == "" {
			return errors.New("--target or --classifier is needed for the emoji: subcategory or tone")
		}
		var err error
		if dir, err = weightsDir("judge-emoji-" + target); err != nil {
			return err
		}
	}
	b, _, err := openBackend(backendName)
	if err != nil {
		return err
	}
	m, err := classifier.Load(b, dir)
	if err != nil {
		return err
	}
	defer m.Close()
	t, _ := m.Info["target"].(string)
	if d, _ := m.Info["data"].(string); d != recipe.EmojiData || (target != "" && t != target) {
		return fmt.Errorf("classifier %s is not an emoji %s judge (data %q, target %q)", dir, cmp.Or(target, "subcategory or tone"), d, t)
	}
	_, o := recipe.ImageDataOf(m.Info)
	t0 := time.Now()
	acc, err := recipe.EmojiJudgeAccuracy(m, t, o, os.Stderr)
	if err != nil {
		return err
	}
	fmt.Printf("emoji %s judge %s: test accuracy %.2f%% (%d/%d); held-out emoji/skin-tone combinations %.2f%% (%d/%d), unseen emoji %.2f%% (%d/%d) (%s)\n",
		t, dir, 100*acc.Test.Rate, acc.Test.Correct, acc.Test.N, 100*acc.HeldOut.Rate, acc.HeldOut.Correct, acc.HeldOut.N,
		100*acc.Unseen.Rate, acc.Unseen.Correct, acc.Unseen.N, time.Since(t0).Round(time.Millisecond))
	return nil
}
