// Package pyjson reproduces what CPython's json module says about a request body:
// the error message DRF's JSONParser reports, and the Python values (str(),
// type names, strings with lone surrogates) json.loads makes of it.
package pyjson

import (
	"strconv"
	"unicode/utf8"
)

// MaxDepth is the deepest container nesting Error accepts.
//
// CPython's C scanner recurses once per '[' or '{' and raises RecursionError
// when the interpreter's recursion limit (1000 frames, shared with the Python
// frames already on the stack) is reached. Run under DRF's JSONParser in a
// bare process that happens after about 990 levels; inside a Django request
// the stack is deeper, so the real limit is somewhat lower and varies. We
// cut off at a fixed 900 instead. RecursionError is not a ValueError, so DRF
// itself answers such a body with a 500, not a 400.
const MaxDepth = 900

// IntMaxDigits is CPython 3.11's default sys.get_int_max_str_digits():
// converting a JSON integer with more digits raises ValueError.
const IntMaxDigits = 4300

// Error reports why Django REST Framework's JSONParser would reject
// body. It returns "" when DRF 3.14 on CPython 3.11 would accept body, that
// is when json.load(codecs.getreader("utf-8")(stream),
// parse_constant=strict_constant) succeeds, and otherwise str(exc) of the
// ValueError it raises, which DRF reports as
// {"detail": "JSON parse error - " + Error(body)}.
//
// Reproduced in order:
//   - UTF-8 decoding with the incremental (final=False) decoder that
//     codecs.StreamReader.read() uses: the first invalid sequence anywhere in
//     the body gives e.g. "'utf-8' codec can't decode byte 0xff in position 0:
//     invalid start byte" (positions are byte offsets in the body), while a
//     truncated but otherwise valid sequence at the very end is silently
//     dropped, so "unexpected end of data" never occurs.
//   - A leading U+FEFF (UTF-8 BOM) is rejected.
//   - The C scanner of Lib/json (Modules/_json.c) with strict=True: messages
//     such as "Expecting value: line 1 column 13 (char 12)", where char is
//     an index in code points.
//   - NaN, Infinity and -Infinity raise DRF's strict_constant error;
//     integers with more than 4300 digits raise CPython's int conversion
//     limit error.
//
// Known difference: nesting deeper than MaxDepth returns
// "maximum recursion depth exceeded while decoding a JSON array (or object)
// from a unicode string", the text of the RecursionError CPython raises at a
// depth that depends on its stack (about 990 in a bare process); DRF does
// not catch that error and answers 500.
//
// The scanner is iterative (explicit stack), O(len(body)) in time and memory.
func Error(body []byte) string {
	if msg := checkUTF8(body); msg != "" {
		return msg
	}
	s := Runes(body)
	if len(s) > 0 && s[0] == '\ufeff' {
		return posMsg("Unexpected UTF-8 BOM (decode using utf-8-sig)", s, 0)
	}
	return scan(s)
}

func isCont(b byte) bool { return b >= 0x80 && b <= 0xBF }

// checkUTF8 mirrors CPython's utf8_decode / unicode_decode_utf8 with
// consumed != NULL (StreamReader passes final=False). It returns the
// UnicodeDecodeError message for the first invalid sequence, or "".
func checkUTF8(b []byte) string {
	n := len(b)
	for i := 0; i < n; {
		c := b[i]
		if c < 0x80 {
			i++
			continue
		}
		left := n - i
		bad := 0 // 1: invalid start byte; k>=2: invalid continuation, k-1 bytes reported
		switch {
		case c < 0xC2:
			bad = 1
		case c < 0xE0:
			if left < 2 {
				return "" // truncated at end: kept in the buffer, never decoded
			}
			if !isCont(b[i+1]) {
				bad = 2
			} else {
				i += 2
				continue
			}
		case c < 0xF0:
			if left < 2 {
				return ""
			}
			c2 := b[i+1]
			if !isCont(c2) || (c == 0xE0 && c2 < 0xA0) || (c == 0xED && c2 >= 0xA0) {
				if left == 2 && c == 0xED && c2 >= 0xA0 && c2 <= 0xBF {
					// CPython treats a truncated surrogate at the end as
					// incomplete input rather than an error.
					return ""
				}
				bad = 2
			} else if left < 3 {
				return ""
			} else if !isCont(b[i+2]) {
				bad = 3
			} else {
				i += 3
				continue
			}
		case c < 0xF5:
			if left < 2 {
				return ""
			}
			c2 := b[i+1]
			if !isCont(c2) || (c == 0xF0 && c2 < 0x90) || (c == 0xF4 && c2 >= 0x90) {
				bad = 2
			} else if left < 3 {
				return ""
			} else if !isCont(b[i+2]) {
				bad = 3
			} else if left < 4 {
				return ""
			} else if !isCont(b[i+3]) {
				bad = 4
			} else {
				i += 4
				continue
			}
		default:
			bad = 1
		}
		reason := "invalid continuation byte"
		end := i + bad - 1
		if bad == 1 {
			reason = "invalid start byte"
			end = i + 1
		}
		if end == i+1 {
			return "'utf-8' codec can't decode byte 0x" + hex2(c) +
				" in position " + strconv.Itoa(i) + ": " + reason
		}
		return "'utf-8' codec can't decode bytes in position " + strconv.Itoa(i) +
			"-" + strconv.Itoa(end-1) + ": " + reason
	}
	return ""
}

func hex2(c byte) string {
	const hex = "0123456789abcdef"
	return string([]byte{hex[c>>4], hex[c&15]})
}

// Runes decodes b, which checkUTF8 accepted, dropping a
// truncated sequence at the end the way the incremental decoder does.
func Runes(b []byte) []rune {
	out := make([]rune, 0, len(b))
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		if r == utf8.RuneError && size <= 1 {
			break // only possible for the incomplete tail
		}
		out = append(out, r)
		i += size
	}
	return out
}

// posMsg formats like json.JSONDecodeError.
func posMsg(msg string, s []rune, pos int) string {
	line, last := 1, -1
	for i := 0; i < pos && i < len(s); i++ {
		if s[i] == '\n' {
			line++
			last = i
		}
	}
	return msg + ": line " + strconv.Itoa(line) + " column " + strconv.Itoa(pos-last) +
		" (char " + strconv.Itoa(pos) + ")"
}

func isWS(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

func isHex(r rune) bool {
	return (r >= '0' && r <= '9') || (r >= 'a' && r <= 'f') || (r >= 'A' && r <= 'F')
}

func hexVal(s []rune) rune {
	var v rune
	for _, r := range s {
		v <<= 4
		switch {
		case r <= '9':
			v |= r - '0'
		case r >= 'a':
			v |= r - 'a' + 10
		default:
			v |= r - 'A' + 10
		}
	}
	return v
}

func match(s []rune, idx int, lit string) bool {
	if idx+len(lit) > len(s) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		if s[idx+i] != rune(lit[i]) {
			return false
		}
	}
	return true
}

// scanString mirrors scanstring_unicode with strict=True; idx is the
// index just after the opening quote. It returns the index after the
// closing quote, or an error message.
func scanString(s []rune, idx int) (int, string) {
	n := len(s)
	begin := idx - 1
	end := idx
	for {
		next := end
		var c rune
		for ; next < n; next++ {
			c = s[next]
			if c == '"' || c == '\\' {
				break
			}
			if c <= 0x1f {
				return 0, posMsg("Invalid control character at", s, next)
			}
		}
		if next >= n {
			return 0, posMsg("Unterminated string starting at", s, begin)
		}
		next++
		if c == '"' {
			return next, ""
		}
		if next == n {
			return 0, posMsg("Unterminated string starting at", s, begin)
		}
		c = s[next]
		if c != 'u' {
			end = next + 1
			switch c {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			default:
				return 0, posMsg(`Invalid \escape`, s, end-2)
			}
			continue
		}
		next++
		end = next + 4
		if end >= n {
			return 0, posMsg(`Invalid \uXXXX escape`, s, next-1)
		}
		for i := next; i < end; i++ {
			if !isHex(s[i]) {
				return 0, posMsg(`Invalid \uXXXX escape`, s, end-5)
			}
		}
		u := hexVal(s[next:end])
		if u >= 0xD800 && u <= 0xDBFF && end+6 < n && s[end] == '\\' && s[end+1] == 'u' {
			end += 6
			for i := end - 4; i < end; i++ {
				if !isHex(s[i]) {
					return 0, posMsg(`Invalid \uXXXX escape`, s, end-5)
				}
			}
			if u2 := hexVal(s[end-4 : end]); u2 < 0xDC00 || u2 > 0xDFFF {
				end -= 6 // not a pair: the second escape is scanned again
			}
		}
	}
}

// scanNumber mirrors _match_number_unicode. ok=false means
// StopIteration (reported by the caller as "Expecting value" at idx).
func scanNumber(s []rune, start int) (next int, ok bool, msg string) {
	endIdx := len(s) - 1
	idx := start
	isDigit := func(i int) bool { return s[i] >= '0' && s[i] <= '9' }
	if s[idx] == '-' {
		idx++
		if idx > endIdx {
			return 0, false, ""
		}
	}
	switch {
	case s[idx] >= '1' && s[idx] <= '9':
		idx++
		for idx <= endIdx && isDigit(idx) {
			idx++
		}
	case s[idx] == '0':
		idx++
	default:
		return 0, false, ""
	}
	isFloat := false
	if idx < endIdx && s[idx] == '.' && isDigit(idx+1) {
		isFloat = true
		idx += 2
		for idx <= endIdx && isDigit(idx) {
			idx++
		}
	}
	if idx < endIdx && (s[idx] == 'e' || s[idx] == 'E') {
		eStart := idx
		idx++
		if idx < endIdx && (s[idx] == '-' || s[idx] == '+') {
			idx++
		}
		for idx <= endIdx && isDigit(idx) {
			idx++
		}
		if isDigit(idx - 1) {
			isFloat = true
		} else {
			idx = eStart
		}
	}
	if !isFloat {
		digits := idx - start
		if s[start] == '-' {
			digits--
		}
		if digits > IntMaxDigits {
			return 0, true, "Exceeds the limit (" + strconv.Itoa(IntMaxDigits) +
				" digits) for integer string conversion: value has " + strconv.Itoa(digits) +
				" digits; use sys.set_int_max_str_digits() to increase the limit"
		}
	}
	return idx, true, ""
}

// scan mirrors JSONDecoder.decode and scan_once_unicode, with the
// recursion over containers replaced by an explicit stack.
func scan(s []rune) string {
	n := len(s)
	skipWS := func(i int) int {
		for i < n && isWS(s[i]) {
			i++
		}
		return i
	}
	strictConst := func(c string) string {
		return "Out of range float values are not JSON compliant: '" + c + "'"
	}
	var stack []rune // '[' or '{' for each open container
	idx := skipWS(0)

	// value: parse one JSON term at idx (whitespace already skipped).
value:
	if idx >= n {
		return posMsg("Expecting value", s, idx)
	}
	switch c := s[idx]; c {
	case '"':
		next, msg := scanString(s, idx+1)
		if msg != "" {
			return msg
		}
		idx = next
		goto after
	case '{', '[':
		if len(stack) >= MaxDepth {
			kind := "array"
			if c == '{' {
				kind = "object"
			}
			return "maximum recursion depth exceeded while decoding a JSON " + kind + " from a unicode string"
		}
		closer := rune(']')
		if c == '{' {
			closer = '}'
		}
		idx = skipWS(idx + 1)
		if idx < n && s[idx] == closer {
			idx++
			goto after
		}
		stack = append(stack, c)
		if c == '{' {
			goto key
		}
		goto value
	case 'n':
		if match(s, idx, "null") {
			idx += 4
			goto after
		}
	case 't':
		if match(s, idx, "true") {
			idx += 4
			goto after
		}
	case 'f':
		if match(s, idx, "false") {
			idx += 5
			goto after
		}
	case 'N':
		if match(s, idx, "NaN") {
			return strictConst("NaN")
		}
	case 'I':
		if match(s, idx, "Infinity") {
			return strictConst("Infinity")
		}
	case '-':
		if match(s, idx, "-Infinity") {
			return strictConst("-Infinity")
		}
	}
	{
		next, ok, msg := scanNumber(s, idx)
		if msg != "" {
			return msg
		}
		if !ok {
			return posMsg("Expecting value", s, idx)
		}
		idx = next
		goto after
	}

	// key: expect `"name" :` at idx inside an object, then a value.
key:
	if idx >= n || s[idx] != '"' {
		return posMsg("Expecting property name enclosed in double quotes", s, idx)
	}
	{
		next, msg := scanString(s, idx+1)
		if msg != "" {
			return msg
		}
		idx = skipWS(next)
	}
	if idx >= n || s[idx] != ':' {
		return posMsg("Expecting ':' delimiter", s, idx)
	}
	idx = skipWS(idx + 1)
	goto value

	// after: a term ended at idx; continue the enclosing container.
after:
	if len(stack) == 0 {
		idx = skipWS(idx)
		if idx != n {
			return posMsg("Extra data", s, idx)
		}
		return ""
	}
	{
		top := stack[len(stack)-1]
		closer := rune(']')
		if top == '{' {
			closer = '}'
		}
		idx = skipWS(idx)
		if idx < n && s[idx] == closer {
			stack = stack[:len(stack)-1]
			idx++
			goto after
		}
		if idx >= n || s[idx] != ',' {
			return posMsg("Expecting ',' delimiter", s, idx)
		}
		idx = skipWS(idx + 1)
		if top == '{' {
			goto key
		}
		goto value
	}
}
