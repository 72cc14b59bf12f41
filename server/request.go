package server

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
	"unicode/utf8"
)

// ImagesRequest is the body of POST /v1/images. Fields left out take the
// defaults (n 1, steps 20, cfg 4, seed 1, temperature 1, or for a prompt the
// multimodal checkpoint's own: multimodal.Model.SampleTemperature); model may be left
// out when the server holds one model of the request's kind. A request has
// either a class (class-conditional models; Prompt is then empty) or a
// prompt (multimodal models; Class is then −1).
type ImagesRequest struct {
	Model       string  `json:"model"`
	Class       int     `json:"class"`
	Prompt      string  `json:"prompt"`
	N           int     `json:"n"`
	Steps       int     `json:"steps"`
	CFG         float64 `json:"cfg"`
	Seed        int64   `json:"seed"`
	Temperature float64 `json:"temperature"`
	Stream      bool    `json:"stream"`
	// temperatureGiven says the request named its temperature; a prompt
	// left without one takes the multimodal checkpoint's own
	// (multimodal.Model.SampleTemperature).
	temperatureGiven bool
}

// wireRequest is what the decoder reads: pointers tell a field left out
// from a zero.
type wireRequest struct {
	Model       *string  `json:"model"`
	Class       *int     `json:"class"`
	Prompt      *string  `json:"prompt"`
	N           *int     `json:"n"`
	Steps       *int     `json:"steps"`
	CFG         *float64 `json:"cfg"`
	Seed        *int64   `json:"seed"`
	Temperature *float64 `json:"temperature"`
	Stream      *bool    `json:"stream"`
}

// FieldError is a refused request: its status, the JSON field at fault
// ("body" for the body as a whole) and a message.
type FieldError struct {
	Status  int
	Field   string
	Message string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Message }

func bad(field, format string, args ...any) *FieldError {
	return &FieldError{Status: http.StatusBadRequest, Field: field, Message: fmt.Sprintf(format, args...)}
}

// writeFieldError answers a refused request.
func writeFieldError(w http.ResponseWriter, ferr *FieldError) {
	writeError(w, ferr.Status, ferr.Field, ferr.Message)
}

// setIf sets *v to the value of a request's field, f, where it is given.
func setIf[T any](v *T, f *T) {
	if f != nil {
		*v = *f
	}
}

// intField sets *v from the integer field name, f, where it is given, and
// checks that it is in lo…hi.
func intField[T int | int64](name string, v *T, f *T, lo, hi T) *FieldError {
	setIf(v, f)
	if *v < lo || *v > hi {
		return bad(name, "%d out of range %d…%d", *v, lo, hi)
	}
	return nil
}

// samplingFields sets the solver steps, guidance scale and seed of a
// request that draws with the diffusion head from its fields steps, cfg
// and seed, where given, and checks each: steps 1…MaxSteps, cfg 0…MaxCFG,
// seed 0…MaxSeed.
func samplingFields(steps *int, cfg *float64, seed *int64, fSteps *int, fCFG *float64, fSeed *int64) *FieldError {
	if ferr := intField("steps", steps, fSteps, 1, MaxSteps); ferr != nil {
		return ferr
	}
	setIf(cfg, fCFG)
	if math.IsNaN(*cfg) || math.IsInf(*cfg, 0) || *cfg < 0 || *cfg > MaxCFG {
		return bad("cfg", "%v out of range 0…%d", *cfg, MaxCFG)
	}
	return intField("seed", seed, fSeed, 0, MaxSeed)
}

// textField is the string field name, f, which must be given and not
// empty; what is what it holds ("the text to continue"), for the messages.
func textField(name string, f *string, what string) (string, *FieldError) {
	switch {
	case f == nil:
		return "", bad(name, "required: %s", what)
	case *f == "":
		return "", bad(name, "empty: give %s", what)
	}
	return *f, nil
}

// DecodeRequest reads an ImagesRequest from body: one JSON object of valid
// UTF-8, no unknown fields, every value of its type and inside its range
// (the model and class are checked against the served models by the
// server). It reads at most MaxBodyBytes.
func DecodeRequest(body io.Reader) (ImagesRequest, error) {
	req, ferr := decodeRequest(io.LimitReader(body, MaxBodyBytes+1), "")
	if ferr != nil {
		return req, ferr
	}
	return req, nil
}

// imagesFields are the fields of POST /v1/images and what each must be.
var imagesFields = fieldKinds{{"model", "a string"}, {"class", "an integer"}, {"prompt", "a string"}, {"n", "an integer"},
	{"steps", "an integer"}, {"cfg", "a number"}, {"seed", "an integer"}, {"temperature", "a number"}, {"stream", "true or false"}}

func decodeRequest(body io.Reader, contentType string) (ImagesRequest, *FieldError) {
	req := ImagesRequest{N: DefaultN, Steps: DefaultSteps, CFG: DefaultCFG, Seed: DefaultSeed, Temperature: DefaultTemperature, Class: -1}
	var w wireRequest
	if ferr := decodeBody(body, contentType, MaxBodyBytes, `{"class": 3}`, imagesFields, &w); ferr != nil {
		return req, ferr
	}
	setIf(&req.Model, w.Model)
	switch {
	case w.Class != nil && w.Prompt != nil:
		return req, bad("prompt", "give either class (class-conditional models) or prompt (multimodal models), not both")
	case w.Prompt != nil:
		req.Prompt = *w.Prompt
		if req.Prompt == "" {
			return req, bad("prompt", "empty: give the caption to draw")
		}
	case w.Class == nil:
		return req, bad("class", "required: the class to draw, 0 to the model's classes − 1 (or, for a multimodal model, a prompt)")
	default:
		req.Class = *w.Class
		if req.Class < 0 {
			return req, bad("class", "%d out of range: want ≥ 0", req.Class)
		}
	}
	if ferr := intField("n", &req.N, w.N, 1, MaxImages); ferr != nil {
		return req, ferr
	}
	if ferr := samplingFields(&req.Steps, &req.CFG, &req.Seed, w.Steps, w.CFG, w.Seed); ferr != nil {
		return req, ferr
	}
	setIf(&req.Temperature, w.Temperature)
	req.temperatureGiven = w.Temperature != nil
	if math.IsNaN(req.Temperature) || math.IsInf(req.Temperature, 0) || req.Temperature <= 0 || req.Temperature > MaxTemperature {
		return req, bad("temperature", "%v out of range: want > 0 and ≤ %d", req.Temperature, MaxTemperature)
	}
	setIf(&req.Stream, w.Stream)
	return req, nil
}

// fieldKinds lists a request's fields in order, each with what it must be
// ("an integer"), for the messages of decoding errors.
type fieldKinds [][2]string

func (k fieldKinds) want(field string) string {
	for _, f := range k {
		if f[0] == field {
			return f[1]
		}
	}
	return ""
}

func (k fieldKinds) names() string {
	var n []string
	for _, f := range k {
		n = append(n, f[0])
	}
	return strings.Join(n, ", ")
}

// decodeBody reads one JSON object of at most limit bytes into w (a pointer
// to a struct of pointer fields): of content type application/json when
// contentType is not empty, valid UTF-8, no unknown fields, no trailing
// data. example is a minimal request, for the message of an empty body.
func decodeBody(body io.Reader, contentType string, limit int, example string, fields fieldKinds, w any) *FieldError {
	if contentType != "" {
		// application/json only: a browser must then ask (CORS preflight)
		// before another site's page may post here, which this server
		// never allows.
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/json" {
			return &FieldError{Status: http.StatusUnsupportedMediaType, Field: "body", Message: fmt.Sprintf("content type %q: send application/json (curl --json, or -H 'Content-Type: application/json')", contentType)}
		}
	}
	raw, err := io.ReadAll(io.LimitReader(body, int64(limit)+1))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || len(raw) > limit {
		return &FieldError{Status: http.StatusRequestEntityTooLarge, Field: "body", Message: fmt.Sprintf("body over %d bytes", limit)}
	}
	if err != nil {
		return bad("body", "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return bad("body", "empty body: send a JSON object such as %s", example)
	}
	// encoding/json would quietly turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(raw) {
		i := 0
		for i < len(raw) {
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			i += n
		}
		return bad("body", "not valid UTF-8 (byte %d): JSON text is UTF-8", i)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(w); err != nil {
		return jsonError(err, fields)
	}
	if dec.More() {
		return bad("body", "trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("body", "trailing data after the JSON object")
	}
	return nil
}

// jsonError names the field of a decoding error.
func jsonError(err error, fields fieldKinds) *FieldError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return bad("body", "want a JSON object, got %s", te.Value)
		}
		want := fields.want(field)
		if want == "" {
			want = te.Type.String()
		}
		return bad(field, "got %s, want %s in range", te.Value, want)
	case errors.As(err, &se):
		return bad("body", "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF):
		return bad("body", "truncated JSON")
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		if name == "" {
			return bad("body", "unknown field with an empty name")
		}
		return bad(name, "unknown field (known: %s)", fields.names())
	}
	return bad("body", "%s", strings.TrimPrefix(msg, "json: "))
}

// check refuses a request the served models cannot answer. A request that
// names no model gets the only one of its kind (class-conditional for a
// class, multimodal for a prompt), if the server holds one.
func (s *Server) check(req *ImagesRequest) *FieldError {
	if req.Prompt != "" {
		mm, ferr := s.multimodalFor(req.Model, "a prompt")
		if ferr != nil {
			return ferr
		}
		req.Model = mm.name
		return nil
	}
	if req.Model == "" {
		if len(s.names) != 1 {
			if len(s.names) == 0 {
				if len(s.mmNames) == 0 {
					return bad("model", "this server holds no image model: its models speak (POST /v1/speech): %s", strings.Join(s.speechNames, ", "))
				}
				return bad("class", "this server holds no class-conditional model: send a prompt to %s", strings.Join(s.mmNames, ", "))
			}
			return bad("model", "required: one of %s", strings.Join(s.names, ", "))
		}
		req.Model = s.names[0]
	}
	g := s.models[req.Model]
	if g == nil {
		if s.multimodal[req.Model] != nil {
			return bad("class", "model %s is multimodal: send a prompt (the caption to draw), not a class", req.Model)
		}
		if s.speech[req.Model] != nil {
			return bad("model", "model %s is text-to-speech: it draws no images; POST text to /v1/speech", req.Model)
		}
		return bad("model", "unknown model %q: want one of %s", req.Model, strings.Join(s.names, ", "))
	}
	if req.Class >= g.Classes() {
		return bad("class", "%d out of range 0…%d for model %s", req.Class, g.Classes()-1, req.Model)
	}
	return nil
}
