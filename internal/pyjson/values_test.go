package pyjson

import (
	"encoding/json"
	"testing"
)

func TestStrIsPythonStr(t *testing.T) {
	tests := map[string]string{
		"0": "0", "-0": "0", "123": "123", "-7": "-7",
		"123456789012345678901234567890": "123456789012345678901234567890",
		"1.0":                            "1.0", "1.5": "1.5", "-0.0": "-0.0", "1e5": "100000.0", "1E5": "100000.0",
		"1e16": "1e+16", "1.5e-7": "1.5e-07", "0.0001": "0.0001", "0.00001": "1e-05",
		"123456789.123": "123456789.123", "1e400": "inf", "-1e400": "-inf", "2.5e+300": "2.5e+300",
	}
	for in, want := range tests {
		if got := Str(json.Number(in)); got != want {
			t.Errorf("Str(%s) = %s, want %s", in, got, want)
		}
	}
}
