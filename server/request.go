package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"mime"
	"net/http"
	"strings"
)

// ImagesRequest is the body of POST /v1/images. Fields left out take the
// defaults (n 1, steps 20, cfg 4, seed 1, temperature 1); model may be left
// out when the server holds one model, class is required.
type ImagesRequest struct {
	Model       string  `json:"model"`
	Class       int     `json:"class"`
	N           int     `json:"n"`
	Steps       int     `json:"steps"`
	CFG         float64 `json:"cfg"`
	Seed        int64   `json:"seed"`
	Temperature float64 `json:"temperature"`
	Stream      bool    `json:"stream"`
}

// wireRequest is what the decoder reads: pointers tell a field left out
// from a zero.
type wireRequest struct {
	Model       *string  `json:"model"`
	Class       *int     `json:"class"`
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

// DecodeRequest reads an ImagesRequest from body: one JSON object, no
// unknown fields, every value of its type and inside its range (the model
// and class are checked against the served models by the server). It reads
// at most MaxBodyBytes.
func DecodeRequest(body io.Reader) (ImagesRequest, error) {
	req, ferr := decodeRequest(io.LimitReader(body, MaxBodyBytes+1), "")
	if ferr != nil {
		return req, ferr
	}
	return req, nil
}

func decodeRequest(body io.Reader, contentType string) (ImagesRequest, *FieldError) {
	req := ImagesRequest{N: DefaultN, Steps: DefaultSteps, CFG: DefaultCFG, Seed: DefaultSeed, Temperature: DefaultTemperature, Class: -1}
	if contentType != "" {
		// application/json only: a browser must then ask (CORS preflight)
		// before another site's page may post here, which this server
		// never allows.
		mt, _, err := mime.ParseMediaType(contentType)
		if err != nil || mt != "application/json" {
			return req, &FieldError{Status: http.StatusUnsupportedMediaType, Field: "body", Message: fmt.Sprintf("content type %q: send application/json (curl --json, or -H 'Content-Type: application/json')", contentType)}
		}
	}
	raw, err := io.ReadAll(body)
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) || len(raw) > MaxBodyBytes {
		return req, &FieldError{Status: http.StatusRequestEntityTooLarge, Field: "body", Message: fmt.Sprintf("body over %d bytes", MaxBodyBytes)}
	}
	if err != nil {
		return req, bad("body", "reading the body: %v", err)
	}
	if len(strings.TrimSpace(string(raw))) == 0 {
		return req, bad("body", "empty body: send a JSON object such as {\"class\": 3}")
	}
	dec := json.NewDecoder(strings.NewReader(string(raw)))
	dec.DisallowUnknownFields()
	var w wireRequest
	if err := dec.Decode(&w); err != nil {
		return req, jsonError(err)
	}
	if dec.More() {
		return req, bad("body", "trailing data after the JSON object")
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, bad("body", "trailing data after the JSON object")
	}
	if w.Model != nil {
		req.Model = *w.Model
	}
	if w.Class == nil {
		return req, bad("class", "required: the class to draw, 0 to the model's classes − 1")
	}
	req.Class = *w.Class
	if req.Class < 0 {
		return req, bad("class", "%d out of range: want ≥ 0", req.Class)
	}
	if w.N != nil {
		req.N = *w.N
	}
	if req.N < 1 || req.N > MaxImages {
		return req, bad("n", "%d out of range 1…%d", req.N, MaxImages)
	}
	if w.Steps != nil {
		req.Steps = *w.Steps
	}
	if req.Steps < 1 || req.Steps > MaxSteps {
		return req, bad("steps", "%d out of range 1…%d", req.Steps, MaxSteps)
	}
	if w.CFG != nil {
		req.CFG = *w.CFG
	}
	if math.IsNaN(req.CFG) || math.IsInf(req.CFG, 0) || req.CFG < 0 || req.CFG > MaxCFG {
		return req, bad("cfg", "%v out of range 0…%d", req.CFG, MaxCFG)
	}
	if w.Seed != nil {
		req.Seed = *w.Seed
	}
	if req.Seed < 0 || req.Seed > MaxSeed {
		return req, bad("seed", "%d out of range 0…%d", req.Seed, int64(MaxSeed))
	}
	if w.Temperature != nil {
		req.Temperature = *w.Temperature
	}
	if math.IsNaN(req.Temperature) || math.IsInf(req.Temperature, 0) || req.Temperature <= 0 || req.Temperature > MaxTemperature {
		return req, bad("temperature", "%v out of range: want > 0 and ≤ %d", req.Temperature, MaxTemperature)
	}
	if w.Stream != nil {
		req.Stream = *w.Stream
	}
	return req, nil
}

// jsonError names the field of a decoding error.
func jsonError(err error) *FieldError {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			return bad("body", "want a JSON object, got %s", te.Value)
		}
		want := map[string]string{"model": "a string", "class": "an integer", "n": "an integer", "steps": "an integer",
			"cfg": "a number", "seed": "an integer", "temperature": "a number", "stream": "true or false"}[field]
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
		return bad(name, "unknown field (known: model, class, n, steps, cfg, seed, temperature, stream)")
	}
	return bad("body", "%s", strings.TrimPrefix(msg, "json: "))
}

// check refuses a request the served models cannot answer.
// A request that names no model gets the only one, if the server holds one.
func (s *Server) check(req *ImagesRequest) *FieldError {
	if req.Model == "" {
		if len(s.names) != 1 {
			return bad("model", "required: one of %s", strings.Join(s.names, ", "))
		}
		req.Model = s.names[0]
	}
	g := s.models[req.Model]
	if g == nil {
		return bad("model", "unknown model %q: want one of %s", req.Model, strings.Join(s.names, ", "))
	}
	if req.Class >= g.Classes() {
		return bad("class", "%d out of range 0…%d for model %s", req.Class, g.Classes()-1, req.Model)
	}
	return nil
}
