// Package jsonerr words encoding/json's decoding errors for the people who
// wrote the file: a value of the wrong kind is named by its JSON field and
// the kind of JSON wanted ("field \"dim\": want a number, found string"),
// not by the Go type that was to hold it ("Go struct field Config.dim of
// type int", "Go value of type text.fileJSON"), and a syntax error says at
// which byte it is (counted from 1).
package jsonerr

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
)

// Describe rewords err if it is a json type or syntax error, and returns
// it unchanged otherwise (nil included).
func Describe(err error) error {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a value of another kind"
		if te.Type != nil {
			want = kind(te.Type)
		}
		if te.Field == "" {
			return fmt.Errorf("want %s, found %s", want, te.Value)
		}
		return fmt.Errorf("field %q: want %s, found %s", te.Field, want, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Errorf("%v (at byte %d)", se, se.Offset)
	}
	return err
}

// kind is the JSON kind that decodes into a Go value of type t.
func kind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return "an integer"
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return "a non-negative integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Pointer:
		return kind(t.Elem())
	}
	return "a value of another kind"
}
