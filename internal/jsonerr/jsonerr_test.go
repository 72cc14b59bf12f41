package jsonerr

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

type config struct {
	Dim   int               `json:"dim"`
	Vocab struct{ N uint }  `json:"vocab"`
	Names []string          `json:"names"`
	Info  map[string]string `json:"info"`
	Rate  *float64          `json:"rate"`
}

func TestDescribe(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{`[1, 2]`, "want an object, found array"},
		{`{"dim": "wide"}`, `field "dim": want an integer, found string`},
		{`{"dim": 1.5}`, `field "dim": want an integer, found number 1.5`},
		{`{"vocab": {"N": -1}}`, `field "vocab.N": want a non-negative integer, found number -1`},
		{`{"names": {}}`, `field "names": want an array, found object`},
		{`{"info": []}`, `field "info": want an object, found array`},
		{`{"rate": "fast"}`, `field "rate": want a number, found string`},
		{`{"dim": 1,}`, "at byte 11"},
	} {
		var v config
		err := Describe(json.Unmarshal([]byte(c.in), &v))
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "Go ") {
			t.Errorf("%s: %v, want %q and no Go type", c.in, err, c.want)
		}
	}
	other := errors.New("disk on fire")
	if Describe(other) != other || Describe(nil) != nil {
		t.Error("other errors are not passed through")
	}
}
