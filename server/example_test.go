package server_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"image/png"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/latentlm/latentlm"
	"github.com/latentlm/latentlm/server"
)

// Serve the shipped MNIST model over HTTP and ask it for two threes. A
// Server is an http.Handler, so httptest (or http.ListenAndServe) runs it;
// GET /v1/models lists what it serves, and POST /v1/images answers with
// base64 PNGs.
func Example() {
	dir, err := latentlm.ShippedWeights("latentlm-mnist")
	if err != nil {
		log.Fatal(err)
	}
	g, err := latentlm.Load(dir)
	if err != nil {
		log.Fatal(err)
	}
	defer g.Close()
	s, err := server.New([]server.Model{{Name: "mnist", Gen: g}}, server.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	ts := httptest.NewServer(s)
	defer ts.Close()

	r, err := http.Get(ts.URL + "/v1/models")
	if err != nil {
		log.Fatal(err)
	}
	var models struct{ Models []server.ModelInfo }
	err = json.NewDecoder(r.Body).Decode(&models)
	r.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	for _, m := range models.Models {
		fmt.Printf("%s: %s, %d classes, %d×%d images\n", m.Name, m.Kind, m.Classes, m.ImageSize, m.ImageSize)
	}

	r, err = http.Post(ts.URL+"/v1/images", "application/json", strings.NewReader(`{"class": 3, "n": 2, "steps": 10}`))
	if err != nil {
		log.Fatal(err)
	}
	var out server.ImagesResponse
	err = json.NewDecoder(r.Body).Decode(&out)
	r.Body.Close()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(r.Status, out.Model, "class", out.Class, "seed", out.Seed)
	for _, b64 := range out.Images {
		raw, err := base64.StdEncoding.DecodeString(b64)
		if err != nil {
			log.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(raw))
		if err != nil {
			log.Fatal(err)
		}
		fmt.Println("PNG", img.Bounds().Dx(), "×", img.Bounds().Dy())
	}
	// Output:
	// mnist: latentlm, 10 classes, 28×28 images
	// 200 OK mnist class 3 seed 1
	// PNG 28 × 28
	// PNG 28 × 28
}
