package recipe_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"

	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/train"
)

// Training the tokenizer, then LatentLM on its latents, as `latentlm demo
// --train` does; Ctrl-C saves the run, and the same call with Resume
// continues it.
func Example() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	tok := recipe.DefaultTokenizerOptions()
	tok.Out, tok.Model.Channels, tok.Log = "runs/my-vae", 4, os.Stdout
	if _, err := recipe.Tokenizer(ctx, tok); err != nil {
		var ie *train.InterruptedError
		if errors.As(err, &ie) {
			fmt.Println("stopped; resume from", ie.Dir)
		}
		return
	}

	o := recipe.DefaultLatentLMOptions()
	o.Tokenizer, o.Out, o.Log = tok.Out, "runs/my-latentlm", os.Stderr
	res, err := recipe.LatentLM(ctx, o)
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("trained", res.Dir)
}
