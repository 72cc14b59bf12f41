package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/latentlm/latentlm/benchmark"
	"github.com/latentlm/latentlm/canvas"
	"github.com/latentlm/latentlm/checkpoint"
	"github.com/latentlm/latentlm/data"
	"github.com/latentlm/latentlm/evaluate"
	"github.com/latentlm/latentlm/internal/guard"
	"github.com/latentlm/latentlm/multimodal"
	"github.com/latentlm/latentlm/nn"
	"github.com/latentlm/latentlm/recipe"
	"github.com/latentlm/latentlm/text"
	"github.com/latentlm/latentlm/transfusion"
)

// The comparison of issue 16 (LatentLM, the VQ-MLLM and Transfusion at
// equal training FLOPs): `sweep --over train --task multimodal` scores
// every snapshot of multimodal runs of any arch on the canvas tasks and
// plots each metric against training tokens (the paper's Figure 8), and
// `bench generate` times text → image sampling of a checkpoint of any
// arch. scripts/multimodal_compare.sh runs it all.

// canvasModel is a multimodal checkpoint of any arch, opened for scoring.
type canvasModel struct {
	evaluate.MultimodalModel
	Text *text.Tokenizer
	Info map[string]any
	// Arch is latentlm, vq or transfusion.
	Arch string
	// Params counts the weights.
	Params int
	// sampleFLOPs counts the matmul FLOPs of drawing one image after a
	// prefix of prefix items (<|endoftext|> caption <BOL>).
	sampleFLOPs func(prefix int) float64
	// memory estimates the bytes of drawing n images at once (as generate
	// counts them).
	memory func(n int) float64
	close  func()
}

func (m *canvasModel) Close() { m.close() }

// openCanvasModel loads the multimodal checkpoint dir, of any arch, with
// the sampling flags of mf and batch images at once; greedy text.
func openCanvasModel(mf modelFlags, dir string, batch int) (*canvasModel, error) {
	kind, err := checkpoint.ReadKind(dir)
	if err != nil {
		return nil, err
	}
	o := multimodal.Options{SampleOptions: mf.sample.options(), TextTemperature: 0, TopP: *mf.topP, MaxTokens: *mf.maxTokens, Batch: batch, TopK: *mf.topK}
	b, _, err := openBackend(*mf.backend)
	if err != nil {
		return nil, err
	}
	steps := o.Steps
	if steps == 0 {
		steps = 1000 // DDPM
	}
	if kind == transfusion.Kind {
		o.TopK = 0 // Transfusion draws latents
		m, err := transfusion.Load(b, dir, *mf.vae, o)
		if err != nil {
			return nil, err
		}
		c, items, pixels := m.Config, m.Format.Items, float64(m.Image.Config.Pixels())
		return &canvasModel{MultimodalModel: m, Text: m.Text, Info: m.Info, Arch: transfusion.Arch, Params: nn.CountParams(c.Specs()),
			sampleFLOPs: func(prefix int) float64 { return c.SampleFLOPs(prefix, items, steps) },
			memory:      func(n int) float64 { return float64(n)*pixels*4*4 + c.Activations(2*n, 0, items, false) }, close: m.Close}, nil
	}
	m, err := multimodal.Load(b, dir, *mf.vae, o)
	if err != nil {
		return nil, err
	}
	mc := multimodal.Config{LM: m.Config, Arch: m.Arch, Codes: m.Format.Codes}
	items := m.Format.Items
	cm := &canvasModel{MultimodalModel: m, Text: m.Text, Info: m.Info, Arch: m.Arch.String(), Params: nn.CountParams(mc.Specs()), close: m.Close}
	cfg, pixels := m.Config, float64(m.Image.Config.Pixels())
	cm.memory = func(n int) float64 { return float64(n)*pixels*4*4 + cfg.Activations(2*n, cfg.MaxLen, 1, false) }
	if m.Arch == multimodal.VQ {
		// Per guidance stream, one backbone step and one softmax over the
		// vocabulary for every prefix item and code, attention over the
		// whole fixed-length cache (as computed): the forward of a
		// training sequence of MaxLen, per item.
		perItem := mc.ForwardFLOPs(1, cfg.MaxLen, 0) / float64(cfg.MaxLen)
		cm.sampleFLOPs = func(prefix int) float64 { return 2 * float64(prefix+items) * perItem }
	} else {
		// lm.Config.SampleFLOPs counts a one-item prefix ([class] or
		// <BOL>); the caption's other items cost a backbone step each.
		cm.sampleFLOPs = func(prefix int) float64 {
			backbone := cfg.SampleFLOPs(items+1, 0) - cfg.SampleFLOPs(items, 0) // both streams
			return cfg.SampleFLOPs(items, steps) + float64(prefix-1)*backbone
		}
	}
	return cm, nil
}

// canvasScorer holds what scoring canvas tasks needs, loaded once: the
// test split, the checked judge and the validation text.
type canvasScorer struct {
	data                 string
	names                canvas.Names
	test                 *data.Dataset
	judge                evaluate.Judge
	seenFeats            [][]float32 // the judge's features of the real canvases (t2i's FD)
	docs                 []string
	n, perSeen, perHeld  int
	judgeDir, backendArg string
}

// prepare loads what the tasks need.
func (s *canvasScorer) prepare(ctx context.Context, tasks []string, texts []string) error {
	var err error
	if s.names, err = canvas.NamesOf(s.data); err != nil {
		return err
	}
	if slices.Contains(tasks, "text") {
		if len(texts) > 0 {
			s.docs, err = text.ReadFiles(texts)
		} else {
			_, s.docs, err = text.Fortunes(text.FortunesDir)
		}
		if err != nil {
			return err
		}
	}
	if slices.ContainsFunc(tasks, func(t string) bool { return t != "text" }) {
		if s.test, err = recipe.LoadSplit(s.data, "test", 0); err != nil {
			return err
		}
	}
	if slices.Contains(tasks, "t2i") {
		if s.judge, err = canvasJudge(ctx, s.backendArg, s.judgeDir, s.data, s.test); err != nil {
			return err
		}
		if s.seenFeats, err = s.judge.SeenFeatures(ctx, s.test); err != nil {
			return err
		}
	}
	return nil
}

// score runs one task on m, as eval --task does.
func (s *canvasScorer) score(ctx context.Context, m *canvasModel, task string) (evaluate.MultimodalReport, error) {
	switch task {
	case "text":
		return evaluate.TextBitsPerByteOf(m, m.Text, s.docs)
	case "t2i":
		return evaluate.TextToImageWith(ctx, m, s.judge, s.names, s.test, s.perSeen, s.perHeld, s.seenFeats)
	case "i2t":
		return evaluate.ImageToText(ctx, m, s.names, s.test, s.n)
	case "vqa":
		return evaluate.VisualQuestions(ctx, m, s.names, s.test, s.n)
	}
	return evaluate.MultimodalReport{}, fmt.Errorf("unknown task %q: want text, t2i, i2t or vqa", task)
}

// parseTasks reads a comma-separated list of canvas tasks.
func parseTasks(s string) ([]string, error) {
	var tasks []string
	for _, t := range strings.Split(s, ",") {
		t = strings.TrimSpace(t)
		if !slices.Contains([]string{"text", "t2i", "i2t", "vqa"}, t) {
			return nil, fmt.Errorf("task %q: want text, t2i, i2t or vqa", t)
		}
		if !slices.Contains(tasks, t) {
			tasks = append(tasks, t)
		}
	}
	return tasks, nil
}

const sweepMultimodalSynopsis = `sweep --over train --task multimodal [--tasks text,t2i,i2t,vqa] --json OUT.json --out PLOT.png NAME=RUN ...
       latentlm sweep --task multimodal --from OUT.json --out PLOT.png [--y METRIC,...] [--x tokens|step|gflop]

Scores every snapshot step-NNNNNN of multimodal training runs (train
--task multimodal --snapshot-every N; any --arch: latentlm, vq or
transfusion) on the canvas tasks, as eval --task does (--n, --per-seen,
--per-held-out, --judge and the sampling flags are eval's), one row per
snapshot, and draws one panel per metric with one line per run against
the training tokens (the paper's Figure 8), or the steps or GFLOP.

The JSON is rewritten after every row; --resume keeps the rows it holds of
the same snapshots and settings and scores only the others (a sweep stopped
midway goes on where it stopped); --from replots it. Metrics for --y:
` + "bits_per_byte, t2i_seen, t2i_held_out, t2i_layout, fd, i2t_seen, i2t_held_out, i2t_layout, vqa_seen, vqa_held_out."

func runSweepMultimodal(args []string) error {
	fs := newFlags("sweep", sweepMultimodalSynopsis).takesArgs()
	mf := addModelFlags(fs)
	over := fs.String("over", evaluate.OverTrain, "train: the snapshots of each run (the only sweep of multimodal models)")
	taskList := fs.String("tasks", "text,t2i,i2t,vqa", "comma-separated canvas tasks to score")
	dataName := fs.String("data", "mnist-canvas", "canvas data set the runs were trained on")
	judgeDir := fs.String("judge", "", "canvas classifier, or a folder of several (default: the shipped weights/judge-<data>)")
	n := fs.Int("n", 1000, "test canvases (i2t, vqa)")
	perSeen := fs.Int("per-seen", 2, "images per training scene (t2i)")
	perHeld := fs.Int("per-held-out", 8, "images per held-out scene (t2i)")
	var texts stringList
	fs.Var(&texts, "text", "score these UTF-8 files instead of the fortunes' validation split (text)")
	jsonOut := fs.String("json", "", "where to write the rows (JSON)")
	resume := fs.Bool("resume", false, "keep the rows --json already holds for the same snapshots, tasks and settings; score only the others")
	from := fs.String("from", "", "replot this saved sweep instead of evaluating")
	plotOut := fs.String("out", "", "PNG figure to write")
	yList := fs.String("y", "", "comma-separated metrics, one panel each (default: every metric scored)")
	xName := fs.String("x", evaluate.XTokens, "X axis: tokens, step or gflop")
	title := fs.String("title", "", "figure title")
	fs.bound("n", 1, 1<<20, false)
	fs.bound("per-seen", 0, 1<<16, false)
	fs.bound("per-held-out", 0, 1<<16, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *plotOut == "" {
		return errors.New("--out PLOT.png is required")
	}
	if *xName != evaluate.XTokens && *xName != evaluate.XSteps && *xName != evaluate.XGFLOP {
		return fmt.Errorf("--x %q: want tokens, step or gflop", *xName)
	}
	var metrics []string
	if *yList != "" {
		for _, y := range strings.Split(*yList, ",") {
			if y = strings.TrimSpace(y); !slices.Contains(evaluate.MultimodalSweepMetrics, y) {
				return fmt.Errorf("--y %q: want one of %s", y, strings.Join(evaluate.MultimodalSweepMetrics, ", "))
			}
			metrics = append(metrics, y)
		}
	}
	if err := guard.CheckOutputFormat(*plotOut, ".png", *from, *jsonOut); err != nil {
		return err
	}
	if *from != "" {
		rows, err := evaluate.ReadMultimodalSweep(*from)
		if err != nil {
			return err
		}
		return plotMultimodalSweep(*plotOut, *title, rows, metrics, *xName)
	}
	if *over != evaluate.OverTrain {
		return fmt.Errorf("--over %q: multimodal models are swept over their training snapshots only (train)", *over)
	}
	if *jsonOut == "" {
		return errors.New("--json OUT.json is required (or --from to replot)")
	}
	if fs.NArg() == 0 || fs.isSet("model") {
		return errors.New("give the training runs as NAME=RUN arguments (at least one)")
	}
	tasks, err := parseTasks(*taskList)
	if err != nil {
		return fmt.Errorf("--tasks: %w", err)
	}
	if !canvas.IsCanvas(*dataName) {
		return fmt.Errorf("--data %q: a canvas set (mnist-canvas or fashion-canvas)", *dataName)
	}
	sw := evaluate.Sweep{Over: evaluate.OverTrain}
	var points []evaluate.Point
	for _, arg := range fs.Args() {
		name, dir, ok := strings.Cut(arg, "=")
		if !ok || name == "" || dir == "" {
			return fmt.Errorf("argument %q: want NAME=RUN", arg)
		}
		ps, err := sw.Points(name, dir)
		if err != nil {
			return err
		}
		points = append(points, ps...)
	}
	settings := fmt.Sprintf("data=%s judge=%s n=%d per-seen=%d per-held-out=%d text=%v steps=%d cfg=%g temperature=%g seed=%d text-temperature=%g top-p=%g top-k=%d max-tokens=%d",
		*dataName, *judgeDir, *n, *perSeen, *perHeld, texts, *mf.sample.steps, *mf.sample.cfg, *mf.sample.temperature, *mf.sample.seed,
		*mf.textTemp, *mf.topP, *mf.topK, *mf.maxTokens)
	done := map[string]evaluate.MultimodalSweepRow{}
	if *resume {
		if done, err = resumableRows(*jsonOut, settings, tasks); err != nil {
			return err
		}
	}
	s := &canvasScorer{data: *dataName, n: *n, perSeen: *perSeen, perHeld: *perHeld, judgeDir: *judgeDir, backendArg: *mf.backend}
	ctx, cancel := signalContext()
	defer cancel()
	if len(done) < len(points) {
		if err := s.prepare(ctx, tasks, texts); err != nil {
			return err
		}
	}
	var rows []evaluate.MultimodalSweepRow
	for i, p := range points {
		fmt.Fprintf(os.Stderr, "[%d/%d] %s step %g (%s)...", i+1, len(points), p.Series, p.TrainSteps, p.Model)
		if row, ok := done[p.Model]; ok {
			row.Series = p.Series
			rows = append(rows, row)
			fmt.Fprintln(os.Stderr, " scored before (--resume)")
			continue
		}
		t0 := time.Now()
		row, err := sweepSnapshot(ctx, mf, s, p, tasks)
		if err != nil {
			fmt.Fprintln(os.Stderr)
			return fmt.Errorf("%s: %s", p.Model, strings.TrimPrefix(err.Error(), "latentlm: "))
		}
		row.Seconds, row.Settings = time.Since(t0).Seconds(), settings
		var got []string
		for _, t := range tasks {
			r := row.Reports[t]
			if t == "text" {
				got = append(got, fmt.Sprintf("%.3f bits/byte", r.BitsPerByte))
			} else {
				got = append(got, fmt.Sprintf("%s %.1f%%/%.1f%%", t, 100*r.Seen.Rate, 100*r.HeldOut.Rate))
			}
		}
		fmt.Fprintf(os.Stderr, " %s (%.0f s)\n", strings.Join(got, ", "), row.Seconds)
		rows = append(rows, row)
		if err := evaluate.WriteMultimodalSweep(*jsonOut, rows); err != nil {
			return err
		}
	}
	return plotMultimodalSweep(*plotOut, *title, rows, metrics, *xName)
}

// resumableRows are the rows of the sweep JSON at path (none when it does
// not exist yet) that a resumed sweep keeps, by snapshot folder: those
// scored with settings on every task. A row of other settings is an error,
// since keeping it would mix two scorings in one figure.
func resumableRows(path, settings string, tasks []string) (map[string]evaluate.MultimodalSweepRow, error) {
	out := map[string]evaluate.MultimodalSweepRow{}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return out, nil
	}
	rows, err := evaluate.ReadMultimodalSweep(path)
	if err != nil {
		return nil, fmt.Errorf("--resume: %w", err)
	}
	for _, r := range rows {
		if r.Settings != settings {
			return nil, fmt.Errorf("--resume: %s: the row of %s was scored with other settings (%q; now %q): score into a new --json", path, r.Model, r.Settings, settings)
		}
		complete := true
		for _, t := range tasks {
			_, ok := r.Reports[t]
			complete = complete && ok
		}
		if complete {
			out[r.Model] = r
		}
	}
	return out, nil
}

// sweepSnapshot scores one snapshot on the tasks, holding its model only
// while it does.
func sweepSnapshot(ctx context.Context, mf modelFlags, s *canvasScorer, p evaluate.Point, tasks []string) (evaluate.MultimodalSweepRow, error) {
	row := evaluate.MultimodalSweepRow{Series: p.Series, Model: p.Model, TrainSteps: p.TrainSteps, TrainGFLOP: p.TrainGFLOP,
		TrainTokens: p.TrainTokens, Reports: map[string]evaluate.MultimodalReport{}}
	m, err := openCanvasModel(mf, p.Model, *mf.sample.batch)
	if err != nil {
		return row, err
	}
	defer m.Close()
	if d, _ := m.Info["data"].(string); d != s.data {
		return row, fmt.Errorf("a model of %q, not of --data %s", d, s.data)
	}
	for _, t := range tasks {
		r, err := s.score(ctx, m, t)
		if err != nil {
			return row, fmt.Errorf("%s: %w", t, err)
		}
		r.Examples = nil // one row per snapshot: the scores alone
		row.Reports[t] = r
	}
	return row, nil
}

// plotMultimodalSweep draws the figure and says so.
func plotMultimodalSweep(out, title string, rows []evaluate.MultimodalSweepRow, metrics []string, x string) error {
	if err := evaluate.PlotMultimodalSweep(out, title, rows, metrics, x); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s (%d rows) at %s\n", out, len(rows), time.Now().Format(time.TimeOnly))
	return nil
}

const benchGenerateSynopsis = `bench generate --model DIR [--batches 1,16,64] [--reps 3] [--prompt CAPTION] [--steps 20] [--cfg 4] [--json]

Times text → image sampling of a multimodal checkpoint of any arch
(latentlm, vq or transfusion): for each batch size n, n images of the
caption at once, once to compile and then --reps times (the median is
kept), pixels decoded; images/s and the counted matmul GFLOP per image
(both guidance streams; the image decoder is not counted).`

// benchCaption is the caption bench generate draws by default: a training
// scene of the MNIST canvases.
const benchCaption = "the digit 7 is to the left of the digit 2"

func runBenchGenerate(args []string) error {
	fs := newFlags("bench generate", benchGenerateSynopsis)
	mf := addModelFlags(fs)
	batchList := fs.String("batches", "1,16,64", "comma-separated batch sizes")
	reps := fs.Int("reps", 3, "timed calls per batch size (after one compiling call)")
	prompt := fs.String("prompt", benchCaption, "the caption drawn")
	asJSON := fs.Bool("json", false, "print results as JSON")
	fs.bound("reps", 1, 1000, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *mf.model == "" {
		return errors.New("--model DIR is required")
	}
	if fs.isSet("batch") {
		return errors.New("--batch: give the batch sizes with --batches")
	}
	sizes, err := parseInts(*batchList)
	if err != nil {
		return fmt.Errorf("--batches: %w", err)
	}
	b, name, err := openBackend(*mf.backend)
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	var results []benchmark.Result
	for _, n := range sizes {
		m, err := openCanvasModel(mf, *mf.model, n)
		if err != nil {
			return err
		}
		if err := fs.checkMemory(fmt.Sprintf("bench generate (batch %d)", n), m.memory(n)); err != nil {
			m.Close()
			return err
		}
		prefix := len(m.Text.Encode(*prompt)) + 2 // <|endoftext|> caption <BOL>
		perImage := m.sampleFLOPs(prefix)
		captions := make([]string, n)
		for i := range captions {
			captions[i] = *prompt
		}
		steps := *mf.sample.steps
		if steps == 0 {
			steps = 1000
		}
		if m.Arch == multimodal.VQ.String() {
			steps = 0 // codes are drawn by softmax, no solver
		}
		res := benchmark.Result{Name: fmt.Sprintf("%s_generate_b%d", m.Arch, n), Arch: m.Arch, Batch: n, Params: m.Params,
			SolverSteps: steps, GFLOPPerImage: perImage / 1e9}
		r, err := benchmark.Measure(b, res, perImage*float64(n), n, *reps, func() error {
			_, err := m.ImagesFor(ctx, captions)
			return err
		})
		m.Close()
		if err != nil {
			return err
		}
		r.Backend = name
		results = append(results, r)
		if !*asJSON {
			fmt.Printf("%-28s backend=%s batch=%d params=%d first=%.2fs median=%.3fs images/s=%.2f GFLOP/image=%.3f GFLOP/s=%.1f\n",
				r.Name, r.Backend, r.Batch, r.Params, r.FirstCallS, r.MedianS, r.ItemsPerS, r.GFLOPPerImage, r.GFLOPs)
		}
	}
	if *asJSON {
		return printJSON(results)
	}
	return nil
}
